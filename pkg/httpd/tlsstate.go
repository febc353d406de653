package httpd

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// tlsConnKey is the context key of a connection's *tls.Conn.
type tlsConnKey struct{}

// withTLSConn remembers the TLS connection under c (which ReasonListener
// hides from net/http) in the connection's context.
func withTLSConn(ctx context.Context, c net.Conn) context.Context {
	if rc, ok := c.(*reasonConn); ok {
		c = rc.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		return context.WithValue(ctx, tlsConnKey{}, tc)
	}
	return ctx
}

// TLSState returns the TLS state of r's connection: r.TLS, or, behind
// ReasonListener (where r.TLS is nil), the state of the TLS connection
// under it; nil for a plain connection.
func TLSState(r *http.Request) *tls.ConnectionState {
	if r.TLS != nil {
		return r.TLS
	}
	if tc, ok := r.Context().Value(tlsConnKey{}).(*tls.Conn); ok {
		cs := tc.ConnectionState()
		return &cs
	}
	return nil
}
