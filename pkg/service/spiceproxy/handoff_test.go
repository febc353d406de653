package spiceproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/spicehandoff"
)

// handoffServer is pvedaemon's side of pkg/spicehandoff with a handler
// standing in for QEMU's add_client: it serves each connection handed to
// it by writing "handed:" and echoing (the QEMU case is shown by
// test/e2e TestSpiceConsole and pkg/vmm TestSpice). refuse makes it
// refuse every request.
func handoffServer(t *testing.T, refuse error) (client *spicehandoff.Client, handed chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handoff.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	handed = make(chan string, 8)
	s := &spicehandoff.Server{Handle: func(ctx context.Context, ticket string, f *os.File) error {
		if refuse != nil {
			return refuse
		}
		c, err := net.FileConn(f)
		if err != nil {
			return err
		}
		handed <- ticket
		go func() {
			defer c.Close()
			// Like a SPICE server: nothing before the client speaks.
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			_, _ = c.Write(append([]byte("handed:"), buf...))
			_, _ = io.Copy(c, c)
		}()
		return nil
	}}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Close)
	return &spicehandoff.Client{Socket: path}, handed
}

// TestHandoff: a tunnel to a VM of this node is handed over when
// pvedaemon takes it (the SPICE port is never dialled, the proxy holds no
// connection afterwards), tunnelled when pvedaemon refuses or the client
// sent bytes after its head, and closed when the outcome is unknown.
func TestHandoff(t *testing.T) {
	t.Run("handed over", func(t *testing.T) {
		sp := newSpicePort(t, nil)
		hc, handed := handoffServer(t, nil)
		p := startProxy(t, Config{Port: 3128, Handoff: hc.Handoff})
		host := ticketFor(100, "pve1", sp.port, time.Now())
		c, br, status := connect(t, p.addr, connectHead(host, host))
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		if got := <-handed; got != host {
			t.Errorf("handed with ticket %q; want %q", got, host)
		}
		if _, err := c.Write([]byte("REDQ")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len("handed:REDQ"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "handed:REDQ" {
			t.Fatalf("after the handoff: %q, %v", got, err)
		}
		if n := sp.accepted.Load(); n != 0 {
			t.Errorf("SPICE port dialled %d times; want 0", n)
		}
		// The proxy let go of the connection.
		deadline := time.Now().Add(5 * time.Second)
		for {
			p.mu.Lock()
			n := len(p.conns)
			p.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy still tracks %d connections", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		checkEcho(t, c, br) // still alive without the proxy
		if l := p.log.all(); len(l) != 1 || !strings.HasSuffix(l[0], " 200") {
			t.Errorf("access log %q", l)
		}
	})
	t.Run("refused: tunnel", func(t *testing.T) {
		sp := newSpicePort(t, nil)
		hc, _ := handoffServer(t, errors.New("VM 100 not running"))
		p := startProxy(t, Config{Port: 3128, Handoff: hc.Handoff})
		host := ticketFor(100, "pve1", sp.port, time.Now())
		c, br, status := connect(t, p.addr, connectHead(host, host))
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		checkEcho(t, c, br)
		if sp.accepted.Load() != 1 {
			t.Errorf("SPICE port dialled %d times; want 1", sp.accepted.Load())
		}
	})
	t.Run("no pvedaemon: tunnel", func(t *testing.T) {
		sp := newSpicePort(t, nil)
		hc := &spicehandoff.Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
		p := startProxy(t, Config{Port: 3128, Handoff: hc.Handoff})
		host := ticketFor(100, "pve1", sp.port, time.Now())
		c, br, status := connect(t, p.addr, connectHead(host, host))
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		checkEcho(t, c, br)
	})
	t.Run("bytes after the head: tunnel", func(t *testing.T) {
		sp := newSpicePort(t, nil)
		hc, handed := handoffServer(t, nil)
		p := startProxy(t, Config{Port: 3128, Handoff: hc.Handoff})
		host := ticketFor(100, "pve1", sp.port, time.Now())
		c, br, status := connect(t, p.addr, connectHead(host, host)+"REDQ")
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 4)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "REDQ" {
			t.Fatalf("echo of the early bytes: %q, %v", got, err)
		}
		if len(handed) != 0 {
			t.Error("handed over although the proxy had read the client's bytes")
		}
	})
	t.Run("unknown outcome: closed", func(t *testing.T) {
		sp := newSpicePort(t, nil)
		unknown := func(ctx context.Context, conn syscall.Conn, connect string) error {
			return errors.New("read pvedaemon's answer: EOF")
		}
		p := startProxy(t, Config{Port: 3128, Handoff: unknown})
		host := ticketFor(100, "pve1", sp.port, time.Now())
		_, _, status := connect(t, p.addr, connectHead(host, host))
		if status != "" || sp.accepted.Load() != 0 {
			t.Errorf("status %q, SPICE port dialled %d times; want the connection closed", status, sp.accepted.Load())
		}
	})
	t.Run("other node: no handoff", func(t *testing.T) {
		hc, handed := handoffServer(t, nil)
		p := startProxy(t, Config{Port: 3128, Handoff: hc.Handoff})
		host := ticketFor(100, "pve2", PortMin, time.Now())
		_, _, status := connect(t, p.addr, connectHead(host, host))
		if !strings.Contains(status, " 500 ") || len(handed) != 0 {
			t.Errorf("status %q, handed %d; want 500 (no such node), none", status, len(handed))
		}
	})
}
