package httpd

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

func TestRealIP(t *testing.T) {
	ln := listen(t, "127.0.0.1")
	got := make(chan netip.Addr, 1)
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- reqinfo.FromContext(r.Context()).ClientIP()
	})
	var trustLoopback = func(a netip.Addr) bool { return a.IsLoopback() }
	var trustNone = func(netip.Addr) bool { return false }
	mux := http.NewServeMux()
	mux.Handle("/any/", RealIP("X-Real-IP", nil)(report))
	mux.Handle("/loopback/", RealIP("x-real-ip", trustLoopback)(report))
	mux.Handle("/none/", RealIP("X-Real-IP", trustNone)(report))
	mux.Handle("/off/", RealIP("", nil)(report))
	serve(t, ln, mux)

	peer := netip.MustParseAddr("127.0.0.1")
	for _, tt := range []struct {
		name, path string
		values     []string
		want       netip.Addr
	}{
		{"accepted v4", "/any/", []string{"203.0.113.9"}, netip.MustParseAddr("203.0.113.9")},
		{"accepted v6 with spaces", "/any/", []string{"  2001:db8::1 "}, netip.MustParseAddr("2001:db8::1")},
		{"trusted peer", "/loopback/", []string{"198.51.100.1"}, netip.MustParseAddr("198.51.100.1")},
		{"untrusted peer", "/none/", []string{"198.51.100.1"}, peer},
		{"no header", "/any/", nil, peer},
		{"empty value", "/any/", []string{""}, peer},
		{"invalid value", "/any/", []string{"not-an-ip"}, peer},
		{"two IPs in one value", "/any/", []string{"203.0.113.9, 198.51.100.1"}, peer},
		{"two header lines", "/any/", []string{"203.0.113.9", "198.51.100.1"}, peer},
		{"CIDR", "/any/", []string{"203.0.113.0/24"}, peer},
		{"with port", "/any/", []string{"203.0.113.9:80"}, peer},
		{"with zone", "/any/", []string{"fe80::1%eth0"}, peer},
		{"header name unset", "/off/", []string{"203.0.113.9"}, peer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, "GET", "http://"+ln.Addr().String()+tt.path, nil)
			for _, v := range tt.values {
				req.Header.Add("X-Real-IP", v)
			}
			do(t, plainClient(nil), req)
			if ip := <-got; ip != tt.want {
				t.Errorf("client IP with X-Real-IP %q = %v; want %v", tt.values, ip, tt.want)
			}
		})
	}
}
