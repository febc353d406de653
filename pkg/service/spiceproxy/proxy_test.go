package spiceproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/spiceticket"
)

const testSecret = "dGVzdC1zZWNyZXQtZm9yLXNwaWNlcHJveHk"

// logRecorder is a LineLogger keeping the lines' status codes.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Line(client netip.Addr, user, requestLine string, status int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %q %d", client, requestLine, status))
}

func (l *logRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// spicePort is a stand-in for QEMU's SPICE TLS port: a TCP listener on
// 127.0.0.1 in PVE's SPICE range that counts connections and serves each
// with fn (echo by default). The real SPICE link handshake through the
// proxy is tested with QEMU by the SPICE-in-QEMU work (issue 6).
type spicePort struct {
	ln       net.Listener
	port     int
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func newSpicePort(t testing.TB, fn func(net.Conn)) *spicePort {
	t.Helper()
	if fn == nil {
		fn = func(c net.Conn) {
			_, _ = io.Copy(c, c)
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}
	var ln net.Listener
	var err error
	for port := PortMin + int(time.Now().UnixNano()%500); port <= PortMax; port++ {
		if ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			break
		}
	}
	if ln == nil {
		t.Fatalf("no free port in the SPICE range: %v", err)
	}
	sp := &spicePort{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sp.accepted.Add(1)
			sp.wg.Add(1)
			go func() {
				defer sp.wg.Done()
				defer c.Close()
				fn(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return sp
}

type testProxy struct {
	*Proxy
	addr string
	log  *logRecorder
}

func startProxy(t testing.TB, cfg Config) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	if cfg.Node == "" {
		cfg.Node = "pve1"
	}
	if cfg.Secret == nil {
		cfg.Secret = func() string { return testSecret }
	}
	cfg.AccessLog = rec
	cfg.Log = slog.New(slog.DiscardHandler)
	p := NewProxy(cfg)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		p.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testProxy{Proxy: p, addr: ln.Addr().String(), log: rec}
}

func ticketFor(vmid int, node string, port int, at time.Time) string {
	tk, _ := spiceticket.Assemble(testSecret, "root@pam", vmid, node, port, at)
	return tk + ":" + strconv.Itoa(port)
}

// connect sends head and returns the connection and the answer's status
// line ("" if the connection closed without one).
func connect(t testing.TB, addr, head string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br, strings.TrimRight(status, "\r\n")
}

func connectHead(target, host string, extra ...string) string {
	h := "CONNECT " + target + " HTTP/1.1\r\n"
	if host != "" {
		h += "Host: " + host + "\r\n"
	}
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

func checkEcho(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	msg := []byte("REDQ\x02\x00\x00\x00hello through the tunnel")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

func TestTunnel(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128})
	now := time.Now()
	for _, tt := range []struct {
		name, host string
	}{
		{"this node", ticketFor(100, "pve1", sp.port, now)},
		{"this node, other case", ticketFor(100, "PVE1", sp.port, now)},
		{"localhost", ticketFor(100, "localhost", sp.port, now)},
		{"old form", func() string {
			tk, _ := spiceticket.Assemble(testSecret, "root@pam", 100, "pve1", 0, now)
			return tk + ":" + strconv.Itoa(sp.port)
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, br, status := connect(t, p.addr, connectHead(tt.host, tt.host))
			if status != "HTTP/1.1 200 OK" {
				t.Fatalf("status %q; want HTTP/1.1 200 OK", status)
			}
			checkEcho(t, c, br)
			// Half-close: the VM side sees EOF, ends, and the client sees EOF.
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after half-close: read %d, %v; want EOF", n, err)
			}
		})
	}
	if got := sp.accepted.Load(); got != 4 {
		t.Errorf("SPICE port saw %d connections; want 4", got)
	}
	if l := p.log.all(); len(l) != 4 || !strings.HasSuffix(l[0], " 200") || !strings.HasPrefix(l[0], "127.0.0.1 \"CONNECT pvespiceproxy:") {
		t.Errorf("access log %q", l)
	}
}

// TestTunnelEarlyData: bytes the client sends right behind the head (read
// with it) go through first.
func TestTunnelEarlyData(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128})
	host := ticketFor(100, "pve1", sp.port, time.Now())
	c, br, status := connect(t, p.addr, connectHead(host, host)+"early")
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "early" {
		t.Fatalf("got %q, %v; want early", got, err)
	}
	_ = c
}

func TestRefused(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128})
	now := time.Now()
	good := ticketFor(100, "pve1", sp.port, now)
	otherVM := func() string { // VM 101's ticket, port 61999 signed, used for our port
		tk, _ := spiceticket.Assemble(testSecret, "root@pam", 101, "pve1", PortMax, now)
		return tk + ":" + strconv.Itoa(sp.port)
	}()
	forged := "pvespiceproxy:" + fmt.Sprintf("%08x", now.Unix()) + ":100:pve1:" + strconv.Itoa(sp.port) +
		"::" + strings.Repeat("ab", 20) + ":" + strconv.Itoa(sp.port)
	for _, tt := range []struct {
		name, head, want string
	}{
		{"forged", connectHead(forged, forged), "HTTP/1.1 401 invalid ticket"},
		{"expired", connectHead(good, ticketFor(100, "pve1", sp.port, now.Add(-time.Minute))), "HTTP/1.1 401 invalid ticket"},
		{"future", connectHead(good, ticketFor(100, "pve1", sp.port, now.Add(time.Minute))), "HTTP/1.1 401 invalid ticket"},
		{"another VM's ticket", connectHead(otherVM, otherVM), "HTTP/1.1 401 invalid ticket"},
		{"ticket in target only", connectHead(good, ""), "HTTP/1.1 401 invalid ticket"},
		{"other secret", connectHead(good, good), "HTTP/1.1 401 invalid ticket"}, // run with a proxy of another secret below
		{"plain GET", "GET / HTTP/1.1\r\nHost: " + good + "\r\n\r\n", "HTTP/1.1 501 method 'GET' not available"},
		{"HTTP/1.0 POST", "POST /api2/json HTTP/1.0\r\n\r\n", "HTTP/1.0 501 method 'POST' not available"},
		{"garbage", "hello\r\n\r\n", "HTTP/1.0 400 bad request"},
		{"HTTP/2", "CONNECT x HTTP/2.0\r\n\r\n", "HTTP/1.0 506 http protocol version 2.0 not supported"},
		{"bad header", "CONNECT x HTTP/1.1\r\n: x\r\n\r\n", "HTTP/1.1 506 unable to parse request header"},
		{"header too large", "CONNECT x HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeadBytes) + "\r\n\r\n", "HTTP/1.1 431 http header too large"},
		{"too many header lines", "CONNECT x HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", MaxHeadLines) + "\r\n", "HTTP/1.1 431 too many http header lines"},
		{"port out of range", func() string {
			h := ticketFor(100, "pve1", 5900, now)
			return connectHead(h, h)
		}(), "HTTP/1.1 500 SPICE Port 5900 is not in allowed range (61000, 61999)"},
		{"other node, loop", func() string {
			h := ticketFor(100, "pve2", sp.port, now)
			return connectHead(h, h, "PVEDisableProxy: true")
		}(), "HTTP/1.1 500 proxy loop detected"},
		{"unknown node", func() string {
			h := ticketFor(100, "pve9", sp.port, now)
			return connectHead(h, h)
		}(), "HTTP/1.1 500 unable to get remote IP address for node 'pve9'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := p.addr
			if tt.name == "other secret" {
				addr = startProxy(t, Config{Port: 3128, Secret: func() string { return "other" }}).addr
			}
			_, _, status := connect(t, addr, tt.head)
			if status != tt.want {
				t.Errorf("status %q; want %q", status, tt.want)
			}
		})
	}
	if got := sp.accepted.Load(); got != 0 {
		t.Errorf("SPICE port saw %d connections; want none", got)
	}
}

// TestNoSecret: without pve-www.key every ticket is refused (a forged one
// signed with the empty secret too).
func TestNoSecret(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128, Secret: func() string { return "" }})
	tk, _ := spiceticket.Assemble("", "root@pam", 100, "pve1", sp.port, time.Now())
	h := tk + ":" + strconv.Itoa(sp.port)
	if _, _, status := connect(t, p.addr, connectHead(h, h)); status != "HTTP/1.1 401 invalid ticket" {
		t.Errorf("status %q; want 401", status)
	}
}

// TestOtherNode: a ticket for another node goes through that node's
// spiceproxy, which checks the ticket again and tunnels to its VM.
func TestOtherNode(t *testing.T) {
	sp := newSpicePort(t, nil)
	p2 := startProxy(t, Config{Node: "pve2"})
	_, p2port, _ := net.SplitHostPort(p2.addr)
	port2, _ := strconv.Atoi(p2port)
	p1 := startProxy(t, Config{Node: "pve1", Port: port2, Lookup: func(n string) (string, bool) {
		return "127.0.0.1", n == "pve2"
	}})
	h := ticketFor(100, "pve2", sp.port, time.Now())
	c, br, status := connect(t, p1.addr, connectHead(h, h))
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	checkEcho(t, c, br)
	c.Close()
	// A node whose secret differs refuses the ticket; pve1 relays its
	// status line and closes.
	p3 := startProxy(t, Config{Node: "pve3", Secret: func() string { return "other" }})
	_, p3port, _ := net.SplitHostPort(p3.addr)
	port3, _ := strconv.Atoi(p3port)
	p1b := startProxy(t, Config{Node: "pve1", Port: port3, Lookup: func(n string) (string, bool) {
		return "127.0.0.1", n == "pve3"
	}})
	h3 := ticketFor(100, "pve3", sp.port, time.Now())
	if _, _, status = connect(t, p1b.addr, connectHead(h3, h3)); status != "HTTP/1.1 401 invalid ticket" {
		t.Errorf("refused by pve3: status %q; want its 401 relayed", status)
	}
	if got := sp.accepted.Load(); got != 1 {
		t.Errorf("SPICE port saw %d connections; want 1", got)
	}
	if l := p2.log.all(); len(l) != 1 || !strings.HasSuffix(l[0], " 200") {
		t.Errorf("pve2 access log %q", l)
	}
}

// TestConnLimit: at the limit the proxy accepts nothing more until a
// connection ends.
func TestConnLimit(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128, MaxConns: 2})
	h := ticketFor(100, "pve1", sp.port, time.Now())
	c1, _, s1 := connect(t, p.addr, connectHead(h, h))
	_, _, s2 := connect(t, p.addr, connectHead(h, h))
	if s1 != "HTTP/1.1 200 OK" || s2 != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q %q", s1, s2)
	}
	c3, err := net.Dial("tcp", p.addr) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	_, _ = io.WriteString(c3, connectHead(h, h))
	_ = c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	br := bufio.NewReader(c3)
	if _, err := br.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered beyond the limit (err %v)", err)
	}
	c1.Close()
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := br.ReadString('\n'); err != nil || l != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("third connection after one closed: %q, %v", l, err)
	}
}

// TestShutdownClosesTunnels: Close ends open tunnels.
func TestShutdownClosesTunnels(t *testing.T) {
	sp := newSpicePort(t, nil)
	p := startProxy(t, Config{Port: 3128})
	h := ticketFor(100, "pve1", sp.port, time.Now())
	c, br, status := connect(t, p.addr, connectHead(h, h))
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	p.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("tunnel still open after Close: %v", err)
	}
}

// TestBackpressure pushes 256 MiB through a tunnel into a reader that
// reads slowly: the proxy must not buffer (heap stays flat).
func TestBackpressure(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB")
	}
	const total = 256 << 20
	maxHeap := measureSlowTunnel(t, total, func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	})
	t.Logf("max heap in use: %.1f MiB", float64(maxHeap)/(1<<20))
	if maxHeap > 32<<20 {
		t.Errorf("heap grew to %d MiB while 256 MiB went into a slow reader", maxHeap>>20)
	}
}

// measureSlowTunnel sends total bytes from a client through a tunnel into a
// SPICE port that reads slowly, sampling mem every 20 ms, and returns the
// largest sample.
func measureSlowTunnel(t testing.TB, total int64, mem func() uint64) uint64 {
	var got atomic.Int64
	sp := newSpicePort(t, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond) // slower than the writer (at most 256 MB/s)
		}
	})
	p := startProxy(t, Config{Port: 3128})
	h := ticketFor(100, "pve1", sp.port, time.Now())
	c, _, status := connect(t, p.addr, connectHead(h, h))
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	stop := make(chan struct{})
	var maxMem atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if m := mem(); m > maxMem.Load() {
				maxMem.Store(m)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	chunk := make([]byte, 1<<20)
	for sent := int64(0); sent < total; sent += int64(len(chunk)) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got.Load() != total {
		t.Fatalf("SPICE port got %d bytes; want %d", got.Load(), total)
	}
	return maxMem.Load()
}

func TestLookupNode(t *testing.T) {
	path := t.TempDir() + "/cluster.state"
	r := clusterstate.NewReader(path)
	if _, ok := lookupNode(r, "pve2"); ok {
		t.Fatal("lookup without a view succeeded")
	}
	v := &clusterstate.View{LocalNode: "pve1", Members: []clusterstate.Member{
		{Name: "pve1", IP: "192.0.2.1"}, {Name: "PVE2", IP: "192.0.2.2"}, {Name: "pve3"},
	}}
	if err := clusterstate.WriteFile(path, v, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		node, want string
		ok         bool
	}{
		{"pve1", "192.0.2.1", true},
		{"pve2", "192.0.2.2", true}, // tickets carry the name lowercased
		{"pve3", "pve3", true},      // no IP in the view: the name
		{"pve4", "", false},
	} {
		if got, ok := lookupNode(r, tt.node); got != tt.want || ok != tt.ok {
			t.Errorf("lookupNode(%q) = %q, %v; want %q, %v", tt.node, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzReadHead(f *testing.F) {
	f.Add("CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n x\r\n\r\n")
	f.Add("\r\n\r\nGET / HTTP/1.0\r\n\r\n")
	f.Fuzz(func(t *testing.T, head string) {
		r, err := readHead(bufio.NewReaderSize(strings.NewReader(head), MaxHeadBytes))
		if err == nil && (r == nil || r.method == "") {
			t.Fatalf("no error and no request for %q", head)
		}
	})
}
