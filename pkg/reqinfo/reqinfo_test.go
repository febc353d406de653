package reqinfo

import (
	"context"
	"net/netip"
	"sync"
	"testing"
)

func TestNilInfo(t *testing.T) {
	var i *Info
	i.SetUser("root@pam")
	i.SetClientIP(netip.MustParseAddr("192.0.2.1"))
	if got := i.User(); got != "" {
		t.Errorf("nil User() = %q; want empty", got)
	}
	if got := i.ClientIP(); got.IsValid() {
		t.Errorf("nil ClientIP() = %v; want invalid", got)
	}
	if got := i.Peer(); got.IsValid() {
		t.Errorf("nil Peer() = %v; want invalid", got)
	}
	if got := FromContext(context.Background()); got != nil {
		t.Errorf("FromContext(empty) = %v; want nil", got)
	}
}

func TestInfo(t *testing.T) {
	peer := netip.MustParseAddrPort("[2001:db8::1]:40000")
	i := New(peer)
	ctx := NewContext(context.Background(), i)
	got := FromContext(ctx)
	if got != i {
		t.Fatalf("FromContext = %p; want %p", got, i)
	}
	if got.Peer() != peer {
		t.Errorf("Peer() = %v; want %v", got.Peer(), peer)
	}
	if got.ClientIP() != peer.Addr() {
		t.Errorf("ClientIP() = %v; want peer address %v", got.ClientIP(), peer.Addr())
	}
	real := netip.MustParseAddr("198.51.100.7")
	got.SetClientIP(real)
	got.SetUser("root@pam")
	if got.ClientIP() != real {
		t.Errorf("ClientIP() after set = %v; want %v", got.ClientIP(), real)
	}
	if got.User() != "root@pam" {
		t.Errorf("User() = %q; want root@pam", got.User())
	}
	if got.Peer() != peer {
		t.Errorf("Peer() changed to %v; want %v", got.Peer(), peer)
	}
}

func TestConcurrent(t *testing.T) {
	i := New(netip.MustParseAddrPort("127.0.0.1:1"))
	var wg sync.WaitGroup
	for n := range 8 {
		wg.Go(func() {
			for range 100 {
				i.SetUser("u")
				_ = i.User()
				i.SetClientIP(netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}))
				_ = i.ClientIP()
			}
		})
	}
	wg.Wait()
}
