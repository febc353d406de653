package spiceproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/spicehandoff"
)

// sink is a loopback TCP listener that reads everything as fast as it can
// and reports each connection's byte count on done.
func sink(b *testing.B) (addr string, port int, done chan int64) {
	b.Helper()
	sp := newSpicePort(b, nil)
	sp.ln.Close() // only to pick a free port in the SPICE range
	ln, err := net.Listen("tcp", sp.ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	done = make(chan int64, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Large reads, as a viewer's TLS stack would not do 8 KiB ones
				// (io.Discard's own ReadFrom would).
				n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, c, make([]byte, benchChunk))
				c.Close()
				done <- n
			}()
		}
	}()
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port, done
}

const benchChunk = 1 << 20

// send writes b.N chunks to c, closes its write half and waits for the
// sink's count.
func send(b *testing.B, c net.Conn, done chan int64) {
	chunk := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if n := <-done; n != int64(b.N)*benchChunk {
		b.Fatalf("sink got %d bytes; want %d", n, int64(b.N)*benchChunk)
	}
	b.StopTimer()
}

// BenchmarkLoopbackDirect is the baseline: the same bytes straight into
// the sink over loopback.
func BenchmarkLoopbackDirect(b *testing.B) {
	addr, _, done := sink(b)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	send(b, c, done)
}

// BenchmarkTunnel sends the bytes through a spiceproxy tunnel to the sink.
func BenchmarkTunnel(b *testing.B) {
	_, port, done := sink(b)
	p := startProxy(b, Config{Port: 3128})
	h := ticketFor(100, "pve1", port, time.Now())
	c, _, status := connect(b, p.addr, connectHead(h, h))
	if status != "HTTP/1.1 200 OK" {
		b.Fatalf("status %q", status)
	}
	send(b, c, done)
}

// BenchmarkHandoff sends the bytes through spiceproxy to a VM of this
// node, the default path: after the CONNECT the connection is handed over
// (pkg/spicehandoff, over a real Unix socket with SCM_RIGHTS) to the
// receiver, which reads it as QEMU's SPICE server does after add_client;
// the proxy is no longer in the path. (QEMU itself is the receiver in
// test/e2e TestSpiceConsole; here the same sink as the direct copy reads,
// so the two figures compare.)
func BenchmarkHandoff(b *testing.B) {
	_, port, _ := sink(b)
	path := filepath.Join(b.TempDir(), "handoff.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int64, 1)
	hs := &spicehandoff.Server{Handle: func(ctx context.Context, ticket string, f *os.File) error {
		c, err := net.FileConn(f)
		if err != nil {
			return err
		}
		go func() {
			n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, c, make([]byte, benchChunk))
			c.Close()
			done <- n
		}()
		return nil
	}}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(hs.Close)
	p := startProxy(b, Config{Port: 3128, Handoff: (&spicehandoff.Client{Socket: path}).Handoff})
	h := ticketFor(100, "pve1", port, time.Now())
	c, _, status := connect(b, p.addr, connectHead(h, h))
	if status != "HTTP/1.1 200 OK" {
		b.Fatalf("status %q", status)
	}
	send(b, c, done)
}

// BenchmarkSlowReaderRSS sends 1 GiB through a tunnel into a reader that
// reads slowly and reports the largest resident set of this process
// (proxy, client and reader together) seen meanwhile. Run with
// -benchtime=1x.
func BenchmarkSlowReaderRSS(b *testing.B) {
	for i := 0; i < b.N; i++ {
		maxRSS := measureSlowTunnel(b, 1<<30, vmRSS)
		b.ReportMetric(float64(maxRSS)/(1<<20), "maxRSS-MiB")
	}
}

// vmRSS returns VmRSS of this process in bytes (0 if unknown).
func vmRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseUint(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	return 0
}
