package httpd

import (
	"net"
	"net/netip"
)

// ACLListener returns a listener that applies the host ACL to every accepted
// connection before anything is read from it (so before TLS). allowed gets
// the peer address with IPv4-mapped IPv6 addresses unmapped; it is called for
// each connection, so a reload that swaps the policy behind it applies to the
// next connection at once. A denied connection is closed without a byte of
// response and reported to denied (PVE logs it as `"-" 403 -`); a peer
// without an IP address is denied without asking allowed. A nil allowed
// admits everyone; a nil denied is not called.
func ACLListener(inner net.Listener, allowed func(netip.Addr) bool, denied func(netip.AddrPort)) net.Listener {
	return &aclListener{Listener: inner, allowed: allowed, denied: denied}
}

type aclListener struct {
	net.Listener
	allowed func(netip.Addr) bool
	denied  func(netip.AddrPort)
}

func (l *aclListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := peerOf(c.RemoteAddr())
		if l.allowed == nil || (peer.IsValid() && l.allowed(peer.Addr())) {
			return c, nil
		}
		_ = c.Close() // nothing was sent; a close error changes nothing
		if l.denied != nil {
			l.denied(peer)
		}
	}
}
