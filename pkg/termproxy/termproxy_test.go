package termproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/nettest"
)

// readAll reads c until it ends or 5 s pass.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("not closed within 5 s; got %q", b)
		}
	}
	return string(b)
}

func TestListen(t *testing.T) {
	ln1, p1, err := Listen()
	if err != nil {
		t.Skipf("no free console port: %v", err)
	}
	defer ln1.Close()
	ln2, p2, err := Listen()
	if err != nil {
		t.Skipf("no second free console port: %v", err)
	}
	defer ln2.Close()
	if p1 < PortFirst || p1 > PortLast || p2 < PortFirst || p2 > PortLast || p1 == p2 {
		t.Errorf("ports %d, %d", p1, p2)
	}
	if got := ln1.Addr().String(); got != fmt.Sprintf("127.0.0.1:%d", p1) {
		t.Errorf("listening on %s", got)
	}
}

func TestAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Accept(context.Background(), ln, 50*time.Millisecond); err == nil || err.Error() != "failed waiting for client: timed out" {
		t.Errorf("no client: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("the listener is still open after Accept")
	}

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := Accept(ctx, ln, 10*time.Second); err == nil {
		t.Errorf("canceled: no error")
	}

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := Accept(context.Background(), ln, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestHandshake: the ticket line's cases; only an accepted one gets "OK".
func TestHandshake(t *testing.T) {
	for _, tt := range []struct {
		name, send string
		refuse     bool // the check refuses
		wantErr    string
	}{
		{name: "ok", send: "alice@pve:PVEVNC:1234::sig\n"},
		{name: "ok, ticket with colons and data after", send: "root@pam:a:b:c\n0:2:hi"},
		{name: "refused", send: "alice@pve:PVEVNC:x\n", refuse: true, wantErr: "refused by check"},
		{name: "no colon", send: "garbage\n", wantErr: "failed reading ticket: authentication data is invalid"},
		{name: "closed early", send: "alice@pve:PVEVNC", wantErr: "failed reading ticket: connection closed before authentication"},
		{name: "too long", send: "alice@pve:" + strings.Repeat("x", lineMax) + "\n", wantErr: "failed reading ticket: authentication data is incomplete"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, server := nettest.TCPPair(t)
			var gotUser, gotTicket string
			check := func(user, ticket string) error {
				gotUser, gotTicket = user, ticket
				if tt.refuse {
					return errors.New("refused by check")
				}
				return nil
			}
			go func() {
				_, _ = client.Write([]byte(tt.send))
				if tt.wantErr == "" || strings.Contains(tt.wantErr, "closed") {
					_ = client.CloseWrite()
				}
			}()
			c, err := Handshake(context.Background(), server, check)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if got := readAll(t, client); got != "" {
					t.Errorf("answered %q to a refused client", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			user, ticket, _ := strings.Cut(strings.SplitN(tt.send, "\n", 2)[0], ":")
			if gotUser != user || gotTicket != ticket {
				t.Errorf("check got %q %q", gotUser, gotTicket)
			}
			buf := make([]byte, 2)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "OK" {
				t.Errorf("answer %q %v", buf, err)
			}
			// What followed the line stays for the relay.
			if rest := strings.SplitN(tt.send, "\n", 2)[1]; rest != "" {
				got := make([]byte, len(rest))
				if _, err := io.ReadFull(c.rd, got); err != nil || string(got) != rest {
					t.Errorf("rest %q %v, want %q", got, err, rest)
				}
			}
		})
	}
}

// TestHandshakeTimeout: a client that sends nothing is dropped once the
// context ends.
func TestHandshakeCanceled(t *testing.T) {
	client, server := nettest.TCPPair(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("task stopped")
	time.AfterFunc(50*time.Millisecond, func() { cancel(stop) })
	if _, err := Handshake(ctx, server, func(string, string) error { return nil }); !errors.Is(err, stop) {
		t.Errorf("error %v, want the context's cause", err)
	}
	if got := readAll(t, client); got != "" {
		t.Errorf("answered %q", got)
	}
}

// recorder is a backend end that records resizes.
type recorder struct {
	mu      sync.Mutex
	resizes []string
}

func (r *recorder) resize(cols, rows int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resizes = append(r.resizes, fmt.Sprintf("%dx%d", cols, rows))
	return nil
}

func (r *recorder) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.resizes, " ")
}

// session is a client after "OK" relayed to a backend; term is the
// backend's other end (what a PTY's program or a guest would see).
type session struct {
	client, term net.Conn
	backend      *net.TCPConn // the relay's end of term
	rec          *recorder
	done         chan error // Relay's result
}

func newSession(t *testing.T, ctx context.Context) *session {
	t.Helper()
	client, server := nettest.TCPPair(t)
	term, backend := nettest.TCPPair(t)
	go func() { _, _ = client.Write([]byte("u@pve:t\n")) }()
	c, err := Handshake(context.Background(), server, func(string, string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ok := make([]byte, 2)
	if _, err := io.ReadFull(client, ok); err != nil || string(ok) != "OK" {
		t.Fatalf("answer %q %v", ok, err)
	}
	s := &session{client: client, term: term, backend: backend, rec: &recorder{}, done: make(chan error, 1)}
	go func() { s.done <- c.Relay(ctx, Backend{Conn: backend, Resize: s.rec.resize}) }()
	return s
}

// expect reads exactly len(want) bytes from c.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

func (s *session) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(8 * time.Second):
		t.Fatal("Relay did not return")
		return nil
	}
}

// TestRelay: input, resize, ping and junk from the client; output from
// the backend; the client's end ends the backend's connection.
func TestRelay(t *testing.T) {
	s := newSession(t, context.Background())
	_, _ = s.client.Write([]byte("0:5:hello"))
	expect(t, s.term, "hello")
	_, _ = s.client.Write([]byte("1:100:30:2x0:3:"))
	_, _ = s.client.Write([]byte("a:b"))
	expect(t, s.term, "a:b")
	if got := s.rec.got(); got != "100x30" {
		t.Errorf("resizes %q", got)
	}
	big := strings.Repeat("0123456789", 20000) // more than a buffer
	go func() { _, _ = s.term.Write([]byte(big)) }()
	expect(t, s.client, big)
	s.client.Close()
	if got := readAll(t, s.term); got != "" {
		t.Errorf("backend got %q after the client's end", got)
	}
	if err := s.wait(t); err != nil {
		t.Errorf("Relay: %v", err)
	}
}

// TestRelayBackendEnds: the backend's end ends the client's connection.
func TestRelayBackendEnds(t *testing.T) {
	s := newSession(t, context.Background())
	_, _ = s.term.Write([]byte("bye\r\n"))
	s.term.Close()
	if got := readAll(t, s.client); got != "bye\r\n" {
		t.Errorf("client got %q", got)
	}
	if err := s.wait(t); err != nil {
		t.Errorf("Relay: %v", err)
	}
}

// TestRelayCanceled: the context's end ends both and is Relay's error.
func TestRelayCanceled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := newSession(t, ctx)
	stop := errors.New("task stopped")
	cancel(stop)
	if err := s.wait(t); !errors.Is(err, stop) {
		t.Errorf("Relay: %v, want the context's cause", err)
	}
	readAll(t, s.client)
	readAll(t, s.term)
}

// TestRelayBlockedBackend: the client's end is noticed while the backend
// takes no input (nobody reads term), with the client's input not all
// read yet, and Relay returns.
func TestRelayBlockedBackend(t *testing.T) {
	s := newSession(t, context.Background())
	// The backend's path holds little, the client's more than the relay
	// and the backend's path together: the relay blocks with input left.
	_ = s.backend.SetWriteBuffer(4096)
	_ = s.term.(*net.TCPConn).SetReadBuffer(4096)
	msg := "0:120000:" + strings.Repeat("x", 120000)
	_ = s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.client.Write([]byte(msg)); err != nil {
		t.Fatalf("input not buffered: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // the relay blocks
	s.client.Close()
	start := time.Now()
	if err := s.wait(t); err != nil {
		t.Errorf("Relay: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Relay returned %v after the client's end", d)
	}
}

// TestDecodeInput: the messages of termproxy's protocol, as it parses
// them.
func TestDecodeInput(t *testing.T) {
	for _, tt := range []struct {
		name, in, data, resizes string
	}{
		{"data", "0:3:abc", "abc", ""},
		{"two", "0:1:a0:2:bc", "abc", ""},
		{"empty data", "0:0:0:1:x", "x", ""},
		{"resize", "1:80:24:", "", "80x24"},
		{"ping and junk skipped", "22xyz\n0:1:a", "a", ""},
		{"bad length skipped", "0:a1:bc0:1:d", "d", ""},
		{"long number dropped", "0:" + strings.Repeat("9", 30) + ":0:1:e", "e", ""},
		{"bad resize", "1:x:24:0:1:f", "f", ""},
		{"resize beyond 16 bits", "1:70000:5:", "", "70000x5"},
		{"data cut short", "0:10:abc", "abc", ""},
		{"number cut short", "0:12", "", ""},
		{"any separator byte", "0x2:ab", "ab", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var data strings.Builder
			var rs []string
			err := decodeInput(bufio.NewReader(strings.NewReader(tt.in)),
				func(p []byte) error { data.Write(p); return nil },
				func(c, r int) { rs = append(rs, fmt.Sprintf("%dx%d", c, r)) })
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v", err)
			}
			if data.String() != tt.data || strings.Join(rs, " ") != tt.resizes {
				t.Errorf("data %q resizes %q, want %q %q", data.String(), rs, tt.data, tt.resizes)
			}
		})
	}
	// A write error ends the decoding with it.
	werr := os.ErrClosed
	if err := decodeInput(bufio.NewReader(strings.NewReader("0:1:a0:1:b")), func([]byte) error { return werr }, func(int, int) {}); err != werr {
		t.Errorf("write error: %v", err)
	}
}

// FuzzDecodeInput: any input decodes without panic, writes no more than
// it holds and passes only numbers that were in it.
func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{"0:3:abc", "1:80:24:", "2", "0:99999999999999999999999:x", "1:1:", "0:-1:a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		err := decodeInput(bufio.NewReader(strings.NewReader(string(in))),
			func(p []byte) error { n += len(p); return nil },
			func(c, r int) {
				if c < 0 || r < 0 || c > 1<<31 || r > 1<<31 {
					t.Errorf("resize %d %d", c, r)
				}
			})
		if err == nil {
			t.Error("nil error at the input's end")
		}
		if n > len(in) {
			t.Errorf("wrote %d bytes of %d", n, len(in))
		}
	})
}

// FuzzReadTicketLine: any first line parses without panic into a user
// without ':' and the rest, as sent.
func FuzzReadTicketLine(f *testing.F) {
	for _, s := range []string{"root@pam:PVEVNC:1::x\n", "garbage\n", ":\n", "a:b", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		user, ticket, err := readTicketLine(bufio.NewReaderSize(strings.NewReader(string(in)), lineMax))
		if err != nil {
			return
		}
		if strings.Contains(user, ":") || !strings.HasPrefix(string(in), user+":"+ticket+"\n") {
			t.Errorf("%q parsed as %q %q", in, user, ticket)
		}
	})
}
