package reqinfo

import (
	"context"
	"net/netip"
	"sync"
)

// Info is the per-request record shared between the HTTP front, the API
// layer and the access log. Create it with New.
type Info struct {
	peer netip.AddrPort // set by New, never changed
	// reason receives the reason phrase for the response (set by the HTTP
	// front before the handler runs, never changed afterwards).
	reason func(string)

	mu       sync.Mutex // guards user and clientIP
	user     string
	clientIP netip.Addr
}

// New returns an Info for a request from peer. The client IP starts out as
// the peer's address. peer is stored as given; callers normalise
// IPv4-mapped IPv6 addresses first if they want that.
func New(peer netip.AddrPort) *Info {
	return &Info{peer: peer, clientIP: peer.Addr()}
}

// Peer returns the TCP peer of the connection, or the zero AddrPort for a
// nil Info or a peer that has no IP address (a Unix socket).
func (i *Info) Peer() netip.AddrPort {
	if i == nil {
		return netip.AddrPort{}
	}
	return i.peer
}

// ClientIP returns the address to report for the client: the peer's address
// unless SetClientIP replaced it. It is the zero Addr for a nil Info.
func (i *Info) ClientIP() netip.Addr {
	if i == nil {
		return netip.Addr{}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.clientIP
}

// SetClientIP replaces the address reported for the client. It does nothing
// on a nil Info.
func (i *Info) SetClientIP(a netip.Addr) {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.clientIP = a
}

// User returns the authenticated user ID (for example "root@pam" or
// "admin@pve!token"), or "" if none was recorded.
func (i *Info) User() string {
	if i == nil {
		return ""
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.user
}

// SetUser records the authenticated user ID. It does nothing on a nil Info.
func (i *Info) SetUser(u string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.user = u
}

// ctxKey is the context key under which the *Info is stored.
type ctxKey struct{}

// NewContext returns a copy of ctx that carries i.
func NewContext(ctx context.Context, i *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, i)
}

// FromContext returns the Info carried by ctx, or nil if there is none. The
// result can be used without a nil check.
func FromContext(ctx context.Context) *Info {
	i, _ := ctx.Value(ctxKey{}).(*Info)
	return i
}

// WithReason returns a copy of i's peer in a new Info whose SetReason hands
// the reason phrase to sink. The HTTP front uses it to connect the API layer
// to the connection that writes the status line.
func (i *Info) WithReason(sink func(string)) *Info {
	n := New(i.Peer())
	n.reason = sink
	return n
}

// SetReason asks for msg as the HTTP reason phrase of the response to this
// request, as PVE puts an error's first line there. It does nothing when the
// connection cannot do it (or for a nil Info).
func (i *Info) SetReason(msg string) {
	if i == nil || i.reason == nil {
		return
	}
	i.reason(msg)
}

// Reset forgets what an earlier request on the same connection recorded
// (user, client IP), so that a connection-level Info can serve each of its
// requests in turn: HTTP/1.1 requests on one connection never overlap.
func (i *Info) Reset() {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.user = ""
	i.clientIP = i.peer.Addr()
	i.mu.Unlock()
}
