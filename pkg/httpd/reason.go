package httpd

import (
	"bytes"
	"net"
	"strings"
	"sync/atomic"
)

// ReasonListener wraps the connections of inner so that a handler can choose
// the reason phrase of its response's status line (reqinfo.Info.SetReason).
// PVE's server puts the first line of an error message there
// ("HTTP/1.1 401 No ticket"), and clients show it; net/http always writes the
// standard text. The wrapper rewrites the status line of the next response
// written on the connection; responses are written one after the other on an
// HTTP/1.1 connection, so the reason cannot reach another response.
//
// Wrap the listener after TLS (on the plain-text side). net/http then does
// not see a *tls.Conn: the handshake happens on the first read, bounded by
// ReadHeaderTimeout, and Request.TLS is nil.
func ReasonListener(inner net.Listener) net.Listener { return reasonListener{inner} }

type reasonListener struct{ net.Listener }

func (l reasonListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &reasonConn{Conn: c}, nil
}

// reasonConn is a connection whose next status line may be rewritten.
type reasonConn struct {
	net.Conn
	pending atomic.Pointer[string]
}

// setReason records the reason phrase for the next status line.
func (c *reasonConn) setReason(msg string) {
	r := sanitizeReason(msg)
	if r == "" {
		return
	}
	c.pending.Store(&r)
}

func (c *reasonConn) Write(p []byte) (int, error) {
	r := c.pending.Swap(nil)
	if r == nil {
		return c.Conn.Write(p)
	}
	q, ok := rewriteStatusLine(p, *r)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// rewriteStatusLine replaces the reason phrase of the status line at the
// start of p.
func rewriteStatusLine(p []byte, reason string) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if len(p) < len(proto)+4 || string(p[:len(proto)]) != proto || p[len(proto)+3] != ' ' {
		return nil, false
	}
	end := bytes.Index(p, []byte("\r\n"))
	if end < 0 {
		return nil, false
	}
	head := len(proto) + 4 // "HTTP/1.1 NNN "
	out := make([]byte, 0, len(p)-end+head+len(reason))
	out = append(out, p[:head]...)
	out = append(out, reason...)
	return append(out, p[end:]...), true
}

// sanitizeReason keeps the first line of msg, trimmed, with anything but
// printable ASCII replaced, at most 200 bytes.
func sanitizeReason(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	line = strings.TrimSpace(line)
	if len(line) > 200 {
		line = line[:200]
	}
	b := []byte(line)
	for i, ch := range b {
		if ch < 0x20 || ch > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
