package vmm

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/nettest"

	"github.com/pvenode/pvenode/pkg/qemu/spicetest"
	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

func TestSpice(t *testing.T) {
	const vmid = 905
	m, cfg := setup(t, vmid, nil)
	nd := tlstest.NewNodeDir(t)
	m.cfg.SpiceKeyFile = filepath.Join(nd.Dir, "pve-ssl.key")
	m.cfg.SpiceCertFile = filepath.Join(nd.Dir, "pve-ssl.pem")
	m.cfg.SpiceCACertFile = filepath.Join(filepath.Dir(nd.Dir), "pve-root-ca.pem")
	cfg.Props["vga"] = "qxl"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A port in use is skipped.
	busy, err := m.spice.alloc("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m.spice.release(busy)

	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(ctx, vmid, 10*time.Second)
	port, err := m.SpicePort(ctx, vmid)
	if err != nil {
		t.Fatal(err)
	}
	if port < SpicePortMin || port > SpicePortMax || port == busy {
		t.Fatalf("SpicePort = %d; want in %d-%d, not %d", port, SpicePortMin, SpicePortMax, busy)
	}
	if len(m.spice.reserved) != 0 {
		t.Errorf("reserved after start = %v; want none", m.spice.reserved)
	}

	addr := "127.0.0.1:" + strconv.Itoa(port)
	tc := nd.ClientConfig()
	if r, err := spicetest.Dial(addr, tc, "anything"); err != nil || r == 0 {
		t.Errorf("link without password set = %d, %v; want refused", r, err)
	}
	if err := m.SetSpicePassword(ctx, vmid, "s3cret", "+30"); err != nil {
		t.Fatal(err)
	}
	if r, err := spicetest.Dial(addr, tc, "wrong"); err != nil || r == 0 {
		t.Errorf("link with wrong password = %d, %v; want refused", r, err)
	}
	if r, err := spicetest.Dial(addr, tc, "s3cret"); err != nil || r != 0 {
		t.Errorf("link with password = %d, %v; want 0 (ok)", r, err)
	}
	// An untrusted server certificate is refused by the client.
	if _, err := spicetest.Dial(addr, &tls.Config{ServerName: "localhost"}, "s3cret"); err == nil {
		t.Error("link trusting the system roots succeeded; want a certificate error")
	}
	// A connection handed over (add_client): the link and its password
	// check happen in QEMU as for one it accepted itself.
	for _, tc2 := range []struct {
		name string
		pw   string
		ok   bool
	}{{"right password", "s3cret", true}, {"wrong password", "wrong", false}} {
		client, server := nettest.TCPPair(t)
		f, err := server.File()
		if err != nil {
			t.Fatal(err)
		}
		err = m.AddSpiceClient(ctx, vmid, port, f)
		f.Close()
		server.Close()
		if err != nil {
			t.Fatalf("%s: AddSpiceClient: %v", tc2.name, err)
		}
		r, err := spicetest.Link(client, tc, tc2.pw)
		if err != nil || (r == spicetest.LinkOK) != tc2.ok {
			t.Errorf("%s: link over the handed-over connection = %d, %v; want ok %v", tc2.name, r, err, tc2.ok)
		}
		client.Close()
	}
	// A ticket for another port is not this VM's.
	_, server := nettest.TCPPair(t)
	f, err := server.File()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddSpiceClient(ctx, vmid, port+1, f); err == nil || !strings.Contains(err.Error(), "not this VM's") {
		t.Errorf("AddSpiceClient with another port: %v; want refused", err)
	}
	f.Close()
	if err := m.SetSpicePassword(ctx, vmid, "s3cret", "now"); err != nil {
		t.Fatal(err)
	}
	if r, err := spicetest.Dial(addr, tc, "s3cret"); err != nil || r == 0 {
		t.Errorf("link with expired password = %d, %v; want refused", r, err)
	}
}

func TestSpicePortsConcurrent(t *testing.T) {
	var s spicePorts
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.alloc("127.0.0.1")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[p] {
				t.Errorf("port %d allocated twice", p)
			}
			seen[p] = true
		}()
	}
	wg.Wait()
}

// TestSpiceBindFailed: the start error QEMU 7.2 gives when its SPICE port
// was taken between allocation and bind is recognised for a retry, and
// other start errors are not.
func TestSpiceBindFailed(t *testing.T) {
	for msg, want := range map[string]bool{
		"start VM 100: qemu exited: exit status 1\nqemu-system-x86_64: warning: ...\nbinding socket to 127.0.0.1:61001 failed": true,
		"start VM 100: qemu exited: exit status 1\nqemu-system-x86_64: -drive file=x: Could not open 'x'":                      false,
		"start VM 100: QMP did not answer: context deadline exceeded":                                                          false,
	} {
		if got := spiceBindFailed(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}
