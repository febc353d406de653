package httpd

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// RealIP returns a middleware that takes the client address from header
// (PROXY_REAL_IP_HEADER) when the peer is trusted (PROXY_REAL_IP_ALLOW_FROM;
// a nil trusted trusts every peer). The header must occur once and its value,
// trimmed, must be exactly one IP address without zone; anything else is
// ignored and the client IP stays the peer's. The result replaces the client
// IP in the request's reqinfo.Info, which PVE uses for the access log only;
// it is not an identity: ACLs and authentication keep using the peer. With
// an empty header name the middleware does nothing.
func RealIP(header string, trusted func(netip.Addr) bool) func(http.Handler) http.Handler {
	header = http.CanonicalHeaderKey(strings.TrimSpace(header))
	return func(next http.Handler) http.Handler {
		if header == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ApplyRealIP(r, header, trusted)
			next.ServeHTTP(w, r)
		})
	}
}

// ApplyRealIP is RealIP's work for one request, for callers whose header
// and trusted peers change at reload; header must be canonical
// (http.CanonicalHeaderKey) and non-empty.
func ApplyRealIP(r *http.Request, header string, trusted func(netip.Addr) bool) {
	if ip, ok := realIP(r, header, trusted); ok {
		reqinfo.FromContext(r.Context()).SetClientIP(ip)
	}
}

func realIP(r *http.Request, header string, trusted func(netip.Addr) bool) (netip.Addr, bool) {
	vals := r.Header[header]
	if len(vals) != 1 {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(vals[0]))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	if trusted != nil {
		peer := reqinfo.FromContext(r.Context()).Peer()
		if !peer.IsValid() || !trusted(peer.Addr()) {
			return netip.Addr{}, false
		}
	}
	return ip, true
}
