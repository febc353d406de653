package api

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebSocketAccept(t *testing.T) {
	// RFC 6455 section 1.3's example.
	if got := WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("WebSocketAccept = %q", got)
	}
}

func TestCheckUpgrade(t *testing.T) {
	for _, c := range []struct {
		upgrade, version, key, want string
	}{
		{"websocket", "13", "k", ""},
		{"WebSocket", "13", "k", ""},
		{"h2c", "13", "k", "unable to upgrade to protocol 'h2c'"},
		{"websocket", "8", "k", "unsupported websocket-version '8'"},
		{"websocket", "13", "", "missing websocket-key"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Upgrade", c.upgrade)
		r.Header.Set("Sec-WebSocket-Version", c.version)
		if c.key != "" {
			r.Header.Set("Sec-WebSocket-Key", c.key)
		}
		_, err := checkUpgrade(r)
		got := ""
		if err != nil {
			e := asError(err)
			got = strings.TrimSpace(e.Message)
			if e.Status != http.StatusBadRequest {
				t.Errorf("%+v: status %d", c, e.Status)
			}
		}
		if got != c.want {
			t.Errorf("%+v: %q, want %q", c, got, c.want)
		}
	}
}

// relayPair runs RelayWebSocket between a client and a backend pipe and
// returns the test's ends.
func relayPair(t *testing.T) (client net.Conn, crd *bufio.Reader, backend net.Conn, done chan error) {
	t.Helper()
	c1, c2 := net.Pipe()
	b1, b2 := net.Pipe()
	done = make(chan error, 1)
	go func() { done <- RelayWebSocket(c2, nil, b2) }()
	t.Cleanup(func() { c1.Close(); b1.Close() })
	return c1, bufio.NewReader(c1), b1, done
}

// clientFrame is a masked frame; fin false makes it a fragment.
func clientFrame(op byte, p []byte, fin bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch {
	case len(p) <= 125:
		f = append(f, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		f = append(f, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(len(p)))
	}
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	f = append(f, mask[:]...)
	for i, c := range p {
		f = append(f, c^mask[i&3])
	}
	return f
}

func serverFrame(t *testing.T, rd *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 != 0 {
		t.Fatalf("frame header %x", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(rd, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(rd, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(rd, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, p
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	go func() { _, _ = c.Write(b) }() // the pipe blocks until the relay reads
}

func TestRelayBothWays(t *testing.T) {
	client, crd, backend, done := relayPair(t)
	// client → backend: masked binary and text frames, payload unmasked.
	write(t, client, append(clientFrame(opBinary, []byte("hello "), true), clientFrame(opText, []byte("world"), true)...))
	got := make([]byte, 11)
	if _, err := io.ReadFull(backend, got); err != nil || string(got) != "hello world" {
		t.Fatalf("backend got %q, %v", got, err)
	}
	// backend → client: binary frames of at most 128 KiB.
	big := bytes.Repeat([]byte("x"), 300<<10)
	go func() { _, _ = backend.Write(big) }()
	var total int
	for total < len(big) {
		op, p := serverFrame(t, crd)
		if op != opBinary || len(p) > MaxWebSocketPayload || len(p) == 0 {
			t.Fatalf("frame op %d len %d", op, len(p))
		}
		total += len(p)
	}
	// ping → pong.
	write(t, client, clientFrame(opPing, []byte("p1"), true))
	if op, p := serverFrame(t, crd); op != opPong || string(p) != "p1" {
		t.Errorf("pong: %d %q", op, p)
	}
	// pong from the client is ignored; close is answered and ends it.
	write(t, client, append(clientFrame(opPong, nil, true), clientFrame(opClose, []byte{0x03, 0xE8}, true)...))
	if op, p := serverFrame(t, crd); op != opClose || !bytes.Equal(p, []byte{0x03, 0xE8}) {
		t.Errorf("close: %d %x", op, p)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("relay: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after close")
	}
}

func TestRelayRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"fragmented", clientFrame(opBinary, []byte("ab"), false), 1002},
		{"continuation", clientFrame(0, []byte("ab"), true), 1002},
		{"rsv", func() []byte { f := clientFrame(opBinary, []byte("ab"), true); f[0] |= 0x40; return f }(), 1002},
		{"unmasked", []byte{0x82, 0x02, 'a', 'b'}, 1002},
		{"oversize", clientFrame(opBinary, make([]byte, MaxWebSocketPayload+1), true), 1009},
		{"opcode", clientFrame(0x3, nil, true), 1002},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, crd, backend, done := relayPair(t)
			write(t, client, c.frame)
			op, p := serverFrame(t, crd)
			if op != opClose || len(p) != 2 || binary.BigEndian.Uint16(p) != c.code {
				t.Errorf("answer op %d %x, want close %d", op, p, c.code)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Error("relay ended without error")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("relay did not end")
			}
			// Nothing reached the backend.
			_ = backend.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, _ := backend.Read(make([]byte, 10)); n != 0 {
				t.Errorf("backend got %d bytes", n)
			}
		})
	}
}

// TestRelayBackpressure: a client that does not read holds the backend
// back after one buffer; nothing piles up in the relay.
func TestRelayBackpressure(t *testing.T) {
	_, _, backend, _ := relayPair(t)
	var written atomic.Int64
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := backend.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if w := written.Load(); w > 2*MaxWebSocketPayload {
		t.Errorf("relay took %d bytes from the backend for a client that reads nothing", w)
	}
}
