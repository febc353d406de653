package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/spiceticket"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// TestSpiceproxy runs the real spiceproxy binary (as root, dropping to
// www-data) against a stand-in for QEMU's SPICE TLS port: a TCP listener
// on 127.0.0.1 in PVE's SPICE range. The SPICE link handshake with a real
// QEMU through the proxy belongs to the SPICE-in-QEMU work of issue 6.
func TestSpiceproxy(t *testing.T) {
	env(t)
	n := newNode(t, nodeOpts{noStart: true})
	port := freePort(t, "tcp", ":0")
	if _, stderr, err := n.run("spiceproxy", "start", "--prefix", n.prefix, "--port", strconv.Itoa(port), "--node", n.name); err != nil {
		t.Fatalf("start spiceproxy: %v: %s", err, stderr)
	}
	t.Cleanup(func() {
		if _, stderr, err := n.run("spiceproxy", "stop", "--prefix", n.prefix); err != nil {
			t.Errorf("stop spiceproxy: %v: %s", err, stderr)
		}
	})
	pidb, err := os.ReadFile(filepath.Join(n.prefix, "run/pveproxy/spiceproxy.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	key, err := n.root.ReadFile("pve-www.key")
	if err != nil {
		t.Fatal(err)
	}
	secret := ticket.CSRFSecret(key)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	var accepted atomic.Int32
	var received atomic.Int64
	spice := spiceListener(t, func(c net.Conn) {
		accepted.Add(1)
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "slow\n" { // read slowly whatever comes next
			buf := make([]byte, 256<<10)
			for {
				n, err := br.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
		_, _ = io.WriteString(c, "echo "+line)
	})
	host := func(at time.Time) string {
		tk, _ := spiceticket.Assemble(secret, adminUser, 100, n.name, spice, at)
		return tk + ":" + strconv.Itoa(spice)
	}

	t.Run("privilege drop", func(t *testing.T) {
		st := procStatus(t, pid)
		for _, f := range []string{"Uid", "Gid"} {
			want := strconv.Itoa(h.wwwUID)
			if f == "Gid" {
				want = strconv.Itoa(h.wwwGID)
			}
			if got := st[f]; len(got) != 4 || slices.IndexFunc(got, func(s string) bool { return s != want }) >= 0 {
				t.Errorf("spiceproxy %s: %v; want all four %s", f, got, want)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		good := host(time.Now())
		forged := good[:strings.Index(good, "::")+2] + strings.Repeat("0", 40) + ":" + strconv.Itoa(spice)
		for _, tt := range []struct{ name, head, want string }{
			{"forged", "CONNECT " + forged + " HTTP/1.1\r\nHost: " + forged + "\r\n\r\n", "HTTP/1.1 401 invalid ticket"},
			{"expired", "CONNECT x HTTP/1.1\r\nHost: " + host(time.Now().Add(-time.Minute)) + "\r\n\r\n", "HTTP/1.1 401 invalid ticket"},
			{"no Host", "CONNECT " + good + " HTTP/1.1\r\n\r\n", "HTTP/1.1 401 invalid ticket"},
			{"GET", "GET / HTTP/1.1\r\nHost: " + good + "\r\n\r\n", "HTTP/1.1 501 method 'GET' not available"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c, _, status := spiceConnect(t, addr, tt.head)
				c.Close()
				if status != tt.want {
					t.Errorf("status %q; want %q", status, tt.want)
				}
			})
		}
		if got := accepted.Load(); got != 0 {
			t.Errorf("the SPICE port saw %d connections; want none", got)
		}
	})
	t.Run("tunnel", func(t *testing.T) {
		hs := host(time.Now())
		c, br, status := spiceConnect(t, addr, "CONNECT "+hs+" HTTP/1.1\r\nHost: "+hs+"\r\n\r\n")
		defer c.Close()
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		_, _ = io.WriteString(c, "hello\n")
		_ = c.SetReadDeadline(time.Now().Add(reqTimeout))
		if got, err := br.ReadString('\n'); got != "echo hello\n" {
			t.Fatalf("through the tunnel: %q, %v", got, err)
		}
	})
	t.Run("reload", func(t *testing.T) {
		if _, stderr, err := n.run("spiceproxy", "reload", "--prefix", n.prefix); err != nil {
			t.Fatalf("reload: %v: %s", err, stderr)
		}
		hs := host(time.Now())
		c, _, status := spiceConnect(t, addr, "CONNECT "+hs+" HTTP/1.1\r\nHost: "+hs+"\r\n\r\n")
		c.Close()
		if status != "HTTP/1.1 200 OK" {
			t.Errorf("after reload: status %q", status)
		}
	})
	t.Run("backpressure", func(t *testing.T) {
		const total = 256 << 20
		hs := host(time.Now())
		c, _, status := spiceConnect(t, addr, "CONNECT "+hs+" HTTP/1.1\r\nHost: "+hs+"\r\n\r\n")
		defer c.Close()
		if status != "HTTP/1.1 200 OK" {
			t.Fatalf("status %q", status)
		}
		before := rssOf(t, pid)
		_, _ = io.WriteString(c, "slow\n")
		received.Store(0)
		var maxRSS atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			chunk := make([]byte, 1<<20)
			for sent := 0; sent < total; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		deadline := time.Now().Add(2 * time.Minute)
		for received.Load() < total && time.Now().Before(deadline) {
			if r := rssOf(t, pid); r > maxRSS.Load() {
				maxRSS.Store(r)
			}
			time.Sleep(20 * time.Millisecond)
		}
		<-done
		t.Logf("spiceproxy VmRSS: %d KiB before, at most %d KiB while 256 MiB went into a slow reader", before>>10, maxRSS.Load()>>10)
		if received.Load() != total {
			t.Fatalf("the SPICE port got %d bytes; want %d", received.Load(), total)
		}
		if maxRSS.Load() > 50<<20 {
			t.Errorf("spiceproxy RSS grew to %d MiB", maxRSS.Load()>>20)
		}
	})
	t.Run("host ACL", func(t *testing.T) {
		// pveproxy's file, pveproxy's rules: loopback denied after a reload.
		n.writeDefaults(t, "DENY_FROM=\"127.0.0.0/8\"\nPOLICY=allow\n")
		defer func() {
			n.writeDefaults(t, "POLICY=allow\n")
			if _, stderr, err := n.run("spiceproxy", "reload", "--prefix", n.prefix); err != nil {
				t.Errorf("reload: %v: %s", err, stderr)
			}
		}()
		if _, stderr, err := n.run("spiceproxy", "reload", "--prefix", n.prefix); err != nil {
			t.Fatalf("reload: %v: %s", err, stderr)
		}
		// reload only sends SIGHUP: retry until the new policy applies.
		status := "-"
		for deadline := time.Now().Add(10 * time.Second); status != "" && time.Now().Before(deadline); {
			hs := host(time.Now())
			var c net.Conn
			c, _, status = spiceConnect(t, addr, "CONNECT "+hs+" HTTP/1.1\r\nHost: "+hs+"\r\n\r\n")
			c.Close()
			if status != "" {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if status != "" {
			t.Errorf("denied peer got an answer: %q", status)
		}
	})
	t.Run("access log", func(t *testing.T) {
		time.Sleep(1500 * time.Millisecond) // lines are flushed every second
		b, err := os.ReadFile(filepath.Join(n.prefix, "var/log/pveproxy/access.log"))
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		for _, want := range []string{`"CONNECT pvespiceproxy:`, `HTTP/1.1" 200 -`, `HTTP/1.1" 401 14`, `"GET / HTTP/1.1" 501 -`, `"-" 403 -`} {
			if !strings.Contains(log, want) {
				t.Errorf("access log lacks %q:\n%s", want, log)
			}
		}
	})
}

// spiceListener serves each connection to 127.0.0.1:<port in PVE's SPICE
// range> with fn and returns the port.
func spiceListener(t *testing.T, fn func(net.Conn)) int {
	t.Helper()
	var ln net.Listener
	var err error
	for p := 61000 + int(time.Now().UnixNano()%900); p <= 61999; p++ {
		if ln, err = net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			break
		}
	}
	if ln == nil {
		t.Fatalf("no free port in the SPICE range: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// spiceConnect sends head and returns the connection and the answer's
// status line, its head read.
func spiceConnect(t *testing.T, addr, head string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(reqTimeout))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, br, strings.TrimRight(status, "\r\n")
}

// rssOf returns VmRSS of pid in bytes.
func rssOf(t *testing.T, pid int) int64 {
	f := procStatus(t, pid)["VmRSS"]
	if len(f) == 0 {
		return 0
	}
	kb, _ := strconv.ParseInt(f[0], 10, 64)
	return kb << 10
}
