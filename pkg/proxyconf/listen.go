package proxyconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenAddrs returns the addresses to bind for port, in order of preference:
// with LISTEN_IP set, that address alone ("192.0.2.1:8006",
// "[fe80::1%eth0]:8006"); without it, the dual-stack wildcard "[::]:port" and
// the IPv4 fallback "0.0.0.0:port". Listen binds the first that works; only
// one socket results.
func (c *Config) ListenAddrs(port int) []string {
	p := strconv.Itoa(port)
	if c.ListenIP.IsValid() {
		return []string{net.JoinHostPort(c.ListenIP.String(), p)}
	}
	return []string{net.JoinHostPort("::", p), net.JoinHostPort("0.0.0.0", p)}
}

// Listen binds the TCP socket of cfg on port (see the package documentation).
// The wildcard IPv6 socket is made dual-stack explicitly. The result holds
// one listener; it is a slice so that callers need not change if a
// configuration ever needs several.
func Listen(ctx context.Context, cfg *Config, port int) ([]net.Listener, error) {
	addrs := cfg.ListenAddrs(port)
	if cfg.ListenIP.IsValid() {
		network := "tcp4"
		if cfg.ListenIP.Is6() {
			network = "tcp6"
		}
		// An explicit "::" means the same as no LISTEN_IP: dual-stack.
		ln, err := listen(ctx, network, addrs[0], cfg.ListenIP.Is6() && cfg.ListenIP.IsUnspecified())
		if err != nil {
			return nil, fmt.Errorf("listen on LISTEN_IP %s: %w", addrs[0], err)
		}
		return []net.Listener{ln}, nil
	}
	ln, err6 := listen(ctx, "tcp6", addrs[0], true)
	if err6 == nil {
		return []net.Listener{ln}, nil
	}
	ln, err4 := listen(ctx, "tcp4", addrs[1], false)
	if err4 != nil {
		return nil, fmt.Errorf("listen on port %d: %w", port, errors.Join(err6, err4))
	}
	return []net.Listener{ln}, nil
}

// listen binds one TCP socket; dualStack clears IPV6_V6ONLY before bind.
func listen(ctx context.Context, network, addr string, dualStack bool) (net.Listener, error) {
	var lc net.ListenConfig
	if dualStack {
		lc.Control = clearV6Only
	}
	return lc.Listen(ctx, network, addr)
}

// clearV6Only makes an IPv6 socket accept IPv4-mapped connections whatever
// net.ipv6.bindv6only says. Go's own default for "tcp6" is IPv6-only.
func clearV6Only(network, _ string, rc syscall.RawConn) error {
	if network != "tcp6" {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("clear IPV6_V6ONLY: %w", serr)
	}
	return nil
}
