package nodename

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Addrs returns the node's own addresses: the
// non-loopback addresses node resolves to (PVE uses the address the node
// name resolves to), or else the global unicast addresses of the host's
// interfaces. The result may be empty.
func Addrs(ctx context.Context, node string) []netip.Addr {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out []netip.Addr
	if addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", node); err == nil {
		for _, a := range addrs {
			a = a.Unmap()
			if !a.IsLoopback() && !a.IsUnspecified() && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, ia := range ifAddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		a := pfx.Addr().Unmap()
		if a.IsGlobalUnicast() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Address is the address this node advertises: the first of Addrs, or
// 127.0.0.1 when it has none.
func Address(ctx context.Context, node string) string {
	if addrs := Addrs(ctx, node); len(addrs) > 0 {
		return addrs[0].String()
	}
	return "127.0.0.1"
}
