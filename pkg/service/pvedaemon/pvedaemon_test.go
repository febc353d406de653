package pvedaemon

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/pvenode/pvenode/pkg/api"
)

func TestForwardedClientIPTrustsOnlyTheSocket(t *testing.T) {
	for _, tt := range []struct {
		name   string
		local  net.Addr
		remote string
		header string
		want   string
	}{
		{"unix socket: header trusted", &net.UnixAddr{Name: "/run/pvedaemon/api.sock", Net: "unix"}, "@", "203.0.113.7", "203.0.113.7"},
		{"unix socket: v4-mapped header unmapped", &net.UnixAddr{Name: "/x", Net: "unix"}, "@", "::ffff:203.0.113.7", "203.0.113.7"},
		{"unix socket: no header", &net.UnixAddr{Name: "/x", Net: "unix"}, "@", "", "127.0.0.1"},
		{"tcp 127.0.0.1:85: header ignored", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 85}, "127.0.0.1:40000", "203.0.113.7", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api2/json/version", nil)
			r.RemoteAddr = tt.remote
			if tt.header != "" {
				r.Header.Set(api.HeaderClientIP, tt.header)
			}
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			if got := forwardedClientIP(r); got != netip.MustParseAddr(tt.want) {
				t.Errorf("forwardedClientIP = %v; want %s", got, tt.want)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:85": true, "127.0.0.1:8585": true,
		"0.0.0.0:85": false, "127.0.0.2:85": false, "[::1]:85": false, "localhost:85": false,
	} {
		if err := CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v; want ok %v", addr, err, ok)
		}
	}
}
