package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCompression checks gzip answers: only when asked for, only for bodies
// over 1 KiB, and never with COMPRESSION=0.
func TestCompression(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{proxyFG: true})
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)

	// A body over 1 KiB: the permission tree of the administrator or the
	// node status (CPU flags), whichever is larger than 1 KiB.
	big := ""
	for _, p := range []string{"/api2/json/access/permissions", "/api2/json/nodes/" + nodeName + "/status"} {
		if r := c.get(p); r.status == http.StatusOK && len(r.body) > 1024 {
			big = p
			break
		}
	}
	if big == "" {
		t.Fatal("no API answer over 1 KiB to test compression with")
	}
	gz := http.Header{"Accept-Encoding": {"gzip, deflate"}}

	// The access log is flushed once a second, so its lines are checked at
	// the end, all at once: marker -> bytes sent.
	sent := map[string]int{}
	check := func(t *testing.T, path string, hdr http.Header, wantGzip bool) {
		t.Helper()
		marker := strconv.FormatInt(time.Now().UnixNano(), 10)
		full := path + "?_dc=" + marker
		r := c.as(t).must(http.MethodGet, full, nil, hdr)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, r.status)
		}
		body := r.body
		if got := r.header.Get("Content-Encoding"); (got == "gzip") != wantGzip {
			t.Fatalf("GET %s (Accept-Encoding %q): Content-Encoding %q; want gzip=%v", path, hdr.Get("Accept-Encoding"), got, wantGzip)
		}
		if wantGzip {
			zr, err := gzip.NewReader(bytes.NewReader(r.body))
			if err != nil {
				t.Fatalf("gzip body: %v", err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("gzip body: %v", err)
			}
		}
		if !json.Valid(body) {
			t.Errorf("GET %s: body is not JSON: %.200q", path, body)
		}
		sent[marker] = len(r.body)
	}
	t.Run("Gzip", func(t *testing.T) { check(t, big, gz, true) })
	t.Run("NotAsked", func(t *testing.T) { check(t, big, nil, false) })
	t.Run("SmallBody", func(t *testing.T) { check(t, "/api2/json/version", gz, false) })
	t.Run("CompressionOff", func(t *testing.T) {
		n.writeDefaults(t, "COMPRESSION=0\n")
		n.mustReload(t)
		check(t, big, gz, false)
		n.writeDefaults(t, "COMPRESSION=1\n")
		n.mustReload(t)
		check(t, big, gz, true)
	})
	t.Run("AccessLogBytes", func(t *testing.T) {
		// PVE logs the bytes after compression.
		for marker, size := range sent {
			l := n.waitAccess(t, "for marker "+marker, func(l accessLine) bool { return strings.Contains(l.request, marker) })
			if l.bytes != strconv.Itoa(size) {
				t.Errorf("access log %q: bytes %s; want the %d bytes sent", l.raw, l.bytes, size)
			}
		}
	})
}

// TestRealIP checks PROXY_REAL_IP_HEADER and PROXY_REAL_IP_ALLOW_FROM: the
// header's address replaces the client's in the access log when the peer may
// set it and the value is one IP address.
func TestRealIP(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{
		proxyFG:  true,
		daemonFG: true,
		defaults: "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n",
	})
	rows := []struct {
		name, src, value, want string
	}{
		{"TrustedPeer", "127.0.0.1", "203.0.113.7", "203.0.113.7"},
		{"TrustedPeerIPv6Value", "127.0.0.1", "2001:db8::7", "2001:db8::7"},
		{"UntrustedPeer", "127.0.0.2", "203.0.113.7", "127.0.0.2"},
		{"TwoAddresses", "127.0.0.1", "1.2.3.4, 5.6.7.8", "127.0.0.1"},
		{"NotAnAddress", "127.0.0.1", "client.example", "127.0.0.1"},
		{"NoHeader", "127.0.0.1", "", "127.0.0.1"},
	}
	// The access log is flushed once a second, so the requests are sent
	// first and their lines checked at the end: marker -> row.
	type sentReq struct{ marker, name, src, value, want string }
	var sent []sentReq
	send := func(t *testing.T, name, src, value, want string) {
		t.Helper()
		c := n.client(t, clientOpts{src: src})
		marker := strconv.FormatInt(time.Now().UnixNano(), 10)
		hdr := http.Header{}
		if value != "" {
			hdr.Set("X-Real-IP", value)
		}
		if r := c.must(http.MethodGet, "/?_e2e="+marker, nil, hdr); r.status != http.StatusOK {
			t.Fatalf("GET /: status %d", r.status)
		}
		sent = append(sent, sentReq{marker, name, src, value, want})
	}
	for _, row := range rows {
		send(t, row.name, row.src, row.value, row.want)
	}
	n.writeDefaults(t, "PROXY_REAL_IP_HEADER=X-Real-IP\n")
	n.mustReload(t)
	send(t, "AnyPeerWhenAllowFromUnset", "127.0.0.2", "203.0.113.8", "203.0.113.8")
	n.writeDefaults(t, "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n")
	n.mustReload(t)
	for _, req := range sent {
		t.Run(req.name, func(t *testing.T) {
			l := n.waitAccess(t, "for marker "+req.marker, func(l accessLine) bool { return strings.Contains(l.request, req.marker) })
			if l.client != req.want {
				t.Errorf("client %s, X-Real-IP %q: logged as %s; want %s", req.src, req.value, l.client, req.want)
			}
		})
	}
	t.Run("FailedLoginRhost", func(t *testing.T) {
		// Deliberate difference from PVE (docs/pveproxy.md): the address
		// pveproxy passes to pvedaemon as PVEClientIP, and so the rhost= of
		// the failed-login line fail2ban reads, is the real-IP header's value
		// only when PROXY_REAL_IP_ALLOW_FROM names the trusted proxies; with
		// any peer allowed to set the header it stays the peer's address, so
		// a client cannot get another address banned.
		failedLogin := func(t *testing.T, realIP, wantRhost string) {
			t.Helper()
			c := n.client(t, clientOpts{})
			r := c.must(http.MethodPost, "/api2/json/access/ticket",
				url.Values{"username": {adminUser}, "password": {"wrong"}}, http.Header{"X-Real-IP": {realIP}})
			if r.status != http.StatusUnauthorized {
				t.Fatalf("failed login: status %d; want 401", r.status)
			}
			log := n.daemonLog(t)
			want := "rhost=" + wantRhost + " user=" + adminUser
			deadline := time.Now().Add(logWait)
			for time.Now().Before(deadline) {
				for _, l := range log.lines("authentication failure; rhost=") {
					if strings.Contains(l, want) {
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("no failed-login line with %q; log:\n%s", want, log.String())
		}
		failedLogin(t, "203.0.113.9", "203.0.113.9")
		n.writeDefaults(t, "PROXY_REAL_IP_HEADER=X-Real-IP\n")
		n.mustReload(t)
		failedLogin(t, "203.0.113.10", "127.0.0.1")
		n.writeDefaults(t, "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n")
		n.mustReload(t)
	})
}
