package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hasIPv6Loopback reports whether ::1 can be used.
func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// aclProbe is one connection attempt from src, which the host ACL must
// admit (allowed) or refuse.
type aclProbe struct {
	src     string
	allowed bool
}

// TestHostACL applies each row of the host ACL decision table with
// `pveproxy reload` and checks who gets in: an admitted client completes the
// TLS handshake and gets /version; a refused one sees its connection closed
// before any byte, logged as `"-" 403 -`.
func TestHostACL(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{proxyFG: true})
	admin := n.client(t, clientOpts{})
	admin.mustLogin(adminUser, h.adminPW)
	v6 := hasIPv6Loopback()

	const a1, a2 = "127.0.0.1", "127.0.0.2"
	rows := []struct {
		name   string
		cfg    string
		probes []aclProbe
		v6     bool
	}{
		// POLICY=allow
		{"AllowPolicy/AllowMatchOnly", "POLICY=allow\nALLOW_FROM=127.0.0.2\n",
			[]aclProbe{{a2, true}, {a1, true}}, false},
		{"AllowPolicy/DenyMatchOnly", "POLICY=allow\nDENY_FROM=127.0.0.2\n",
			[]aclProbe{{a2, false}, {a1, true}}, false},
		{"AllowPolicy/NoMatch", "POLICY=allow\nALLOW_FROM=10.0.0.1\nDENY_FROM=10.0.0.2\n",
			[]aclProbe{{a2, true}, {a1, true}}, false},
		{"AllowPolicy/BothMatch", "POLICY=allow\nALLOW_FROM=127.0.0.2\nDENY_FROM=127.0.0.0/8\n",
			[]aclProbe{{a2, true}, {a1, false}}, false},
		// POLICY=deny
		{"DenyPolicy/AllowMatchOnly", "POLICY=deny\nALLOW_FROM=127.0.0.2-127.0.0.3\n",
			[]aclProbe{{a2, true}, {a1, false}}, false},
		{"DenyPolicy/DenyMatchOnly", "POLICY=deny\nDENY_FROM=127.0.0.0/8\n",
			[]aclProbe{{a2, false}, {a1, false}}, false},
		{"DenyPolicy/NoMatch", "POLICY=deny\nALLOW_FROM=10.0.0.0/8\n",
			[]aclProbe{{a2, false}, {a1, false}}, false},
		{"DenyPolicy/BothMatch", "POLICY=deny\nALLOW_FROM=all\nDENY_FROM=127.0.0.2\n",
			[]aclProbe{{a2, false}, {a1, true}}, false},
		// Default policy (allow) with a quoted list, as operators write it.
		{"DefaultPolicy/QuotedList", "DENY_FROM=\"127.0.0.2,10.0.0.0/8\"\n",
			[]aclProbe{{a2, false}, {a1, true}}, false},
		// IPv6
		{"IPv6/DenyPolicy/AllowMatchOnly", "POLICY=deny\nALLOW_FROM=::1\n",
			[]aclProbe{{"::1", true}, {a1, false}}, true},
		{"IPv6/AllowPolicy/DenyMatchOnly", "POLICY=allow\nDENY_FROM=::1/128\n",
			[]aclProbe{{"::1", false}, {a1, true}}, true},
		{"IPv6/AllowAll", "POLICY=deny\nALLOW_FROM=all\n",
			[]aclProbe{{"::1", true}, {a2, true}}, true},
	}
	refused := map[string]int{} // source -> connections refused so far
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.v6 && !v6 {
				t.Skip("no IPv6 loopback (::1)")
			}
			n.writeDefaults(t, row.cfg)
			n.mustReload(t)
			for _, p := range row.probes {
				if p.allowed {
					probeAllowed(t, n, admin.ticket, p.src)
				} else {
					probeRefused(t, n, p.src)
					refused[p.src] += 2 // probeRefused connects twice
				}
			}
		})
	}

	t.Run("DeniedConnectionsLogged", func(t *testing.T) {
		// Each refused connection is one `<ip> - - [...] "-" 403 -` line.
		deadline := time.Now().Add(logWait)
		var got map[string]int
		for {
			got = map[string]int{}
			for _, l := range n.accessLines(t) {
				if l.request == "-" && l.status == "403" && l.bytes == "-" && l.user == "-" {
					got[l.client]++
				}
			}
			if mapsEqual(got, refused) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !mapsEqual(got, refused) {
			t.Errorf("refused connections in the access log by client: %v; want %v", got, refused)
		}
	})

	t.Run("MalformedReloadKeepsACL", func(t *testing.T) {
		n.writeDefaults(t, "POLICY=allow\nDENY_FROM=127.0.0.2\n")
		n.mustReload(t)
		n.writeDefaults(t, "# operator's typo below\nDENY_FROM=127.0.0.3\nPOLICY=maybe\n")
		r := n.reloadProxy(t)
		if r.ok {
			t.Fatalf("reload with POLICY=maybe succeeded; want it refused")
		}
		if want := n.defaultsPath() + ":3"; !strings.Contains(r.line, want) || !strings.Contains(r.line, "POLICY") {
			t.Errorf("reload error %q; want it to name %s and POLICY", r.line, want)
		}
		probeRefused(t, n, a2) // the old ACL still applies
		probeAllowed(t, n, admin.ticket, "127.0.0.3")
		probeAllowed(t, n, admin.ticket, a1)

		n.writeDefaults(t, "ALLOW_FROM=\"10.0.0.1, 10.0.0.2\"\nPOLICY=deny\n")
		r = n.reloadProxy(t)
		if want := n.defaultsPath() + ":1"; r.ok || !strings.Contains(r.line, want) || !strings.Contains(r.line, "ALLOW_FROM") {
			t.Errorf("reload with a space in ALLOW_FROM: ok=%v, %q; want it refused naming %s and ALLOW_FROM", r.ok, r.line, want)
		}
		probeAllowed(t, n, admin.ticket, a1)
		n.writeDefaults(t, "")
		n.mustReload(t)
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// hostPort is the address of pveproxy for a client at src (same family).
func hostPort(n *node, src string) string {
	if strings.Contains(src, ":") {
		return fmt.Sprintf("[::1]:%d", n.pport)
	}
	return fmt.Sprintf("127.0.0.1:%d", n.pport)
}

// probeAllowed checks that a client at src completes the handshake and gets
// GET /version answered.
func probeAllowed(t *testing.T, n *node, ticket, src string) {
	t.Helper()
	host := "127.0.0.1"
	if strings.Contains(src, ":") {
		host = "::1"
	}
	c := n.client(t, clientOpts{src: src, host: host})
	c.ticket = ticket
	r, err := c.do(http.MethodGet, "/api2/json/version", nil, nil)
	if err != nil {
		t.Errorf("client %s: GET /version: %v; want it admitted", src, err)
		return
	}
	if r.status != http.StatusOK {
		t.Errorf("client %s: GET /version status %d; want 200", src, r.status)
	}
}

// probeRefused checks that a connection from src is closed without a byte
// and that a TLS handshake from there fails. It makes two connections.
func probeRefused(t *testing.T, n *node, src string) {
	t.Helper()
	conn, err := dialer(src).Dial("tcp", hostPort(n, src))
	if err != nil {
		t.Errorf("client %s: connect: %v; want accepted and then closed", src, err)
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(reqTimeout))
	buf := make([]byte, 1)
	k, err := conn.Read(buf)
	conn.Close()
	if k != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("client %s: read %d bytes, %v; want the connection closed without data", src, k, err)
	}

	tc, err := tls.DialWithDialer(dialer(src), "tcp", hostPort(n, src), n.tlsConfig())
	if err == nil {
		tc.Close()
		t.Errorf("client %s: TLS handshake succeeded; want it refused by the host ACL", src)
	}
}
