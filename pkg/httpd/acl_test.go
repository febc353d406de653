package httpd

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dialFrom connects to ln from the local address src ("" = any).
func dialFrom(t *testing.T, ln net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial %s from %q: %v", ln.Addr(), src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends a GET and returns everything the server sends back.
func exchange(t *testing.T, c net.Conn) (string, error) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: pve\r\nConnection: close\r\n\r\n"); err != nil {
		// the server may have closed already
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestACLListener(t *testing.T) {
	alog, lines := testLog(t)
	var policy atomic.Pointer[func(netip.Addr) bool]
	only := func(ok string) {
		f := func(a netip.Addr) bool { return a == netip.MustParseAddr(ok) }
		policy.Store(&f)
	}
	only("127.0.0.1")
	deniedc := make(chan netip.AddrPort, 4)
	ln := ACLListener(listen(t, "127.0.0.1"),
		func(a netip.Addr) bool { return (*policy.Load())(a) },
		func(p netip.AddrPort) { alog.Denied(p); deniedc <- p })
	serve(t, ln, alog.Wrap(okHandler))

	t.Run("allowed", func(t *testing.T) {
		got, err := exchange(t, dialFrom(t, ln, "127.0.0.1"))
		if err != nil || !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Fatalf("allowed peer got %q, %v; want a 200 response", got, err)
		}
	})

	t.Run("denied", func(t *testing.T) {
		got, err := exchange(t, dialFrom(t, ln, "127.0.0.2"))
		if got != "" {
			t.Fatalf("denied peer got %q; want no byte", got)
		}
		if err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("denied peer: %v; want EOF or reset", err)
		}
		select {
		case p := <-deniedc:
			if p.Addr() != netip.MustParseAddr("127.0.0.2") {
				t.Errorf("denied callback got %v; want 127.0.0.2", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("denied callback not called")
		}
	})

	t.Run("policy swap applies to next connection", func(t *testing.T) {
		only("127.0.0.2")
		if got, err := exchange(t, dialFrom(t, ln, "127.0.0.2")); err != nil || !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Fatalf("newly allowed peer got %q, %v; want a 200 response", got, err)
		}
		if got, _ := exchange(t, dialFrom(t, ln, "127.0.0.1")); got != "" {
			t.Fatalf("newly denied peer got %q; want no byte", got)
		}
		<-deniedc
	})

	want := []string{
		`127.0.0.1 - - [24/08/2026:10:15:02 +0200] "GET / HTTP/1.1" 200 2`,
		`127.0.0.2 - - [24/08/2026:10:15:02 +0200] "-" 403 -`,
		`127.0.0.2 - - [24/08/2026:10:15:02 +0200] "GET / HTTP/1.1" 200 2`,
		`127.0.0.1 - - [24/08/2026:10:15:02 +0200] "-" 403 -`,
	}
	got := lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("access log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestACLListenerIPv6(t *testing.T) {
	deniedc := make(chan netip.AddrPort, 1)
	ln := ACLListener(listen(t, "::1"),
		func(a netip.Addr) bool { return a != netip.IPv6Loopback() },
		func(p netip.AddrPort) { deniedc <- p })
	serve(t, ln, okHandler)
	if got, _ := exchange(t, dialFrom(t, ln, "")); got != "" {
		t.Fatalf("denied ::1 got %q; want no byte", got)
	}
	if p := <-deniedc; p.Addr() != netip.IPv6Loopback() {
		t.Errorf("denied callback got %v; want ::1", p)
	}
}

// sliceListener hands out the given conns, then net.ErrClosed.
type sliceListener struct {
	net.Listener
	conns []net.Conn
}

func (l *sliceListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, net.ErrClosed
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}

func TestACLListenerAddresses(t *testing.T) {
	pipe := func(remote net.Addr) net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return fakeConn{Conn: a, remote: remote}
	}
	mapped := pipe(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.10"), Port: 1})
	unix := pipe(&net.UnixAddr{Name: "/run/x", Net: "unix"})
	ok := pipe(&net.TCPAddr{IP: net.ParseIP("192.0.2.11"), Port: 2})
	var asked []netip.Addr
	var denied []netip.AddrPort
	ln := ACLListener(&sliceListener{conns: []net.Conn{mapped, unix, ok}},
		func(a netip.Addr) bool { asked = append(asked, a); return a == netip.MustParseAddr("192.0.2.11") },
		func(p netip.AddrPort) { denied = append(denied, p) })
	c, err := ln.Accept()
	if err != nil || c != ok {
		t.Fatalf("Accept = %v, %v; want the allowed conn", c, err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")}
	if len(asked) != 2 || asked[0] != want[0] || asked[1] != want[1] {
		t.Errorf("policy asked about %v; want %v (v4-mapped unmapped, unix not asked)", asked, want)
	}
	if len(denied) != 2 || denied[0] != netip.MustParseAddrPort("192.0.2.10:1") || denied[1].IsValid() {
		t.Errorf("denied = %v; want [192.0.2.10:1 invalid]", denied)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept at the end = %v; want net.ErrClosed", err)
	}
}
