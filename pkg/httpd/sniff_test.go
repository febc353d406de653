package httpd

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// sniffServer serves okHandler (behind the access log) with TLS and plain
// redirects on a listener of addr.
func sniffServer(t *testing.T, addr string, opts ...SniffOption) (net.Listener, *tls.Config, func() []string) {
	t.Helper()
	srvCfg, pool := testCert(t)
	alog, lines := testLog(t)
	opts = append(opts, WithRedirectLog(alog.Redirected))
	ln := TLSSniffListener(listen(t, addr), srvCfg, nil, opts...)
	serve(t, ln, alog.Wrap(okHandler))
	return ln, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, lines
}

// rawRequest sends raw on a new plain connection and returns the parsed
// response.
func rawRequest(t *testing.T, ln net.Listener, raw string) *http.Response {
	t.Helper()
	c := dialFrom(t, ln, "")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", raw, err)
	}
	resp.Body.Close()
	return resp
}

func TestTLSSniffRedirect(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			ln, clientCfg, lines := sniffServer(t, addr)
			port := ln.Addr().(*net.TCPAddr).Port
			local := netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)).String()
			body := strings.Repeat("x", 100<<10) // still being sent when the answer comes
			for _, tt := range []struct {
				name, raw    string
				wantStatus   int
				wantLocation string
			}{
				{"GET", "GET /pve2/index.html?x=1 HTTP/1.1\r\nHost: pve.example:8006\r\n\r\n",
					301, "https://pve.example:8006/pve2/index.html?x=1"},
				{"HEAD", "HEAD / HTTP/1.1\r\nHost: pve.example:8006\r\n\r\n",
					301, "https://pve.example:8006/"},
				{"POST with body", "POST /api2/json/access/ticket HTTP/1.1\r\nHost: pve.example:8006\r\n" +
					"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 102400\r\n\r\n" + body,
					308, "https://pve.example:8006/api2/json/access/ticket"},
				{"PUT", "PUT /api2/json/x HTTP/1.1\r\nHost: 10.0.0.1:8006\r\nContent-Length: 0\r\n\r\n",
					308, "https://10.0.0.1:8006/api2/json/x"},
				{"scheme in Host stripped", "GET / HTTP/1.1\r\nHost: http://pve:8006\r\n\r\n",
					301, "https://pve:8006/"},
				{"no Host uses local address", "GET /x HTTP/1.0\r\n\r\n",
					301, "https://" + local + "/x"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					resp := rawRequest(t, ln, tt.raw)
					if resp.StatusCode != tt.wantStatus {
						t.Errorf("status = %d; want %d", resp.StatusCode, tt.wantStatus)
					}
					if got := resp.Header.Get("Location"); got != tt.wantLocation {
						t.Errorf("Location = %q; want %q", got, tt.wantLocation)
					}
					if got := resp.Header.Get("Server"); got != ServerName {
						t.Errorf("Server = %q; want %q", got, ServerName)
					}
					if !resp.Close {
						t.Errorf("redirect does not close the connection")
					}
				})
			}

			// A real client following nothing sees the same.
			resp, _ := do(t, plainClient(nil), newRequest(t, "POST", "http://"+local+"/api2/json/nodes", strings.NewReader("a=1")))
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+local+"/api2/json/nodes" {
				t.Errorf("http.Client POST got %d %q; want 308 to https://%s/api2/json/nodes",
					resp.StatusCode, resp.Header.Get("Location"), local)
			}

			// TLS on the same port.
			resp, got := do(t, plainClient(clientCfg), newRequest(t, "GET", "https://"+local+"/tls", nil))
			if resp.StatusCode != http.StatusOK || string(got) != "ok" || resp.TLS == nil {
				t.Errorf("https GET = %d %q (tls %v); want 200 ok over TLS", resp.StatusCode, got, resp.TLS != nil)
			}
			if resp.ProtoMajor != 1 {
				t.Errorf("https GET used %s; want HTTP/1.1", resp.Proto)
			}

			ip := netip.MustParseAddr(addr).String()
			want := []string{
				ip + ` - - [24/08/2026:10:15:02 +0200] "GET /pve2/index.html?x=1 HTTP/1.1" 301 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "HEAD / HTTP/1.1" 301 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "POST /api2/json/access/ticket HTTP/1.1" 308 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "PUT /api2/json/x HTTP/1.1" 308 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "GET / HTTP/1.1" 301 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "GET /x HTTP/1.0" 301 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "POST /api2/json/nodes HTTP/1.1" 308 -`,
				ip + ` - - [24/08/2026:10:15:02 +0200] "GET /tls HTTP/1.1" 200 2`,
			}
			if got := lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("access log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestTLSSniffSilentClientDoesNotBlock(t *testing.T) {
	ln, clientCfg, _ := sniffServer(t, "127.0.0.1")
	silent := dialFrom(t, ln, "") // connects and sends nothing
	_ = silent

	// Both a TLS client and a plain client are served meanwhile.
	resp, got := do(t, plainClient(clientCfg), newRequest(t, "GET", "https://"+ln.Addr().String()+"/", nil))
	if resp.StatusCode != http.StatusOK || string(got) != "ok" {
		t.Errorf("https GET while another client is silent = %d %q; want 200 ok", resp.StatusCode, got)
	}
	if resp := rawRequest(t, ln, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("plain GET while another client is silent = %d; want 301", resp.StatusCode)
	}
}

func TestTLSSniffStalledClientDropped(t *testing.T) {
	ln, _, lines := sniffServer(t, "127.0.0.1", WithSniffTimeout(50*time.Millisecond))
	for _, tt := range []struct{ name, send string }{
		{"silent", ""},
		{"header never finished", "GET / HTTP/1.1\r\nHost: h\r\n"},
		{"not http", "SSH-2.0-OpenSSH_9.2\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, ln, "")
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatalf("write: %v", err)
			}
			b, err := io.ReadAll(c)
			if len(b) != 0 {
				t.Errorf("got %q; want the connection closed without an answer", b)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("connection still open after the sniff timeout")
			}
		})
	}
	if got := lines(); len(got) != 0 {
		t.Errorf("access log has %q; want nothing for dropped connections", got)
	}
}

func TestTLSSniffCloseWithPendingClient(t *testing.T) {
	srvCfg, _ := testCert(t)
	inner := listen(t, "127.0.0.1")
	ln := TLSSniffListener(inner, srvCfg, nil)
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	c := dialFrom(t, ln, "") // silent: stuck in sniffing until Close
	_ = c
	closed := make(chan error, 1)
	go func() { closed <- ln.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a client was being sniffed")
	}
	if err := <-acceptErr; err == nil {
		t.Errorf("Accept after Close returned no error")
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("pending client got %q; want closed without a byte", b)
	}
}

func TestTLSSniffMaxPending(t *testing.T) {
	ln, clientCfg, _ := sniffServer(t, "127.0.0.1", WithMaxPending(1))
	silent := dialFrom(t, ln, "") // takes the only slot
	_ = silent
	// Wait until the slot is taken, then a second connection is refused
	// outright; once the silent client goes, service resumes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialFrom(t, ln, "")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err == nil && len(b) == 0 {
			break // closed at once
		}
		if time.Now().After(deadline) {
			t.Fatalf("second connection not refused while the slot is taken")
		}
	}
	silent.Close()
	for {
		resp, err := plainClient(clientCfg).Get("https://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("after the silent client left: %d; want 200", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after the silent client left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
