package spicehandoff

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

	"github.com/pvenode/pvenode/pkg/nettest"
)

// serve starts s on a fresh socket and returns its path.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handoff.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
	})
	return path
}

// TestHandoff: the handler gets a working copy of the client's connection
// and the ticket; bytes the client sends after the handoff reach it, and
// what it writes reaches the client, with the sender's copy closed.
func TestHandoff(t *testing.T) {
	got := make(chan string, 1)
	s := &Server{Handle: func(ctx context.Context, ticket string, f *os.File) error {
		c, err := net.FileConn(f) // a dup: f is closed by the server
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil {
				got <- "read: " + err.Error()
				return
			}
			_, _ = c.Write([]byte("pong"))
			got <- ticket + " " + string(buf)
		}()
		return nil
	}}
	path := serve(t, s)
	client, server := nettest.TCPPair(t)
	if err := (&Client{Socket: path}).Handoff(context.Background(), server, "pvespiceproxy:abc:100:pve1:61000"); err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	server.Close() // the proxy's copy goes; the connection lives on
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	pong := make([]byte, 4)
	if _, err := io.ReadFull(client, pong); err != nil || string(pong) != "pong" {
		t.Fatalf("answer through the handed-over connection: %q, %v", pong, err)
	}
	if g := <-got; g != "pvespiceproxy:abc:100:pve1:61000 hello" {
		t.Errorf("handler saw %q", g)
	}
}

// TestRefusals: each refusal is a *RefusedError naming the reason, and the
// connection stays usable by its owner.
func TestRefusals(t *testing.T) {
	s := &Server{
		Handle: func(ctx context.Context, ticket string, f *os.File) error {
			if ticket != "good" {
				return errors.New("invalid ticket")
			}
			return nil
		},
		AllowUID: func(uid uint32) bool { return uid != uint32(os.Getuid()) || os.Getenv("HANDOFF_DENY_ME") == "" },
	}
	path := serve(t, s)
	c := &Client{Socket: path}

	client, server := nettest.TCPPair(t)
	err := c.Handoff(context.Background(), server, "bad")
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != "invalid ticket" {
		t.Fatalf("bad ticket: %v; want RefusedError(invalid ticket)", err)
	}
	// Still the proxy's: a byte from the client arrives on its copy.
	_, _ = client.Write([]byte("x"))
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Errorf("connection after refusal: %v", err)
	}

	// A user that may not hand over.
	t.Setenv("HANDOFF_DENY_ME", "1")
	if err := c.Handoff(context.Background(), server, "good"); !errors.As(err, &re) || !strings.Contains(re.Reason, "may not hand over") {
		t.Errorf("denied user: %v", err)
	}
	t.Setenv("HANDOFF_DENY_ME", "")

	// No pvedaemon: refused, nothing sent.
	if err := (&Client{Socket: filepath.Join(t.TempDir(), "none.sock")}).Handoff(context.Background(), server, "good"); !errors.As(err, &re) {
		t.Errorf("no server: %v; want RefusedError", err)
	}
}

// TestBadRequests: requests that are not one stream socket and a JSON
// ticket are refused with a reason, by a server that keeps serving.
func TestBadRequests(t *testing.T) {
	called := false
	path := serve(t, &Server{Handle: func(context.Context, string, *os.File) error { called = true; return nil }})
	_, sock := nettest.TCPPair(t)
	sockFD := fileOf(t, sock)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFD := fileOf(t, udp.(*net.UDPConn))
	for _, tc := range []struct {
		name string
		msg  string
		fds  []int
		want string
	}{
		{"no descriptor", `{"ticket":"x"}`, nil, "carries 0 descriptors"},
		{"two descriptors", `{"ticket":"x"}`, []int{sockFD, sockFD}, "carries 2 descriptors"},
		{"a pipe", `{"ticket":"x"}`, []int{int(pr.Fd())}, "not a socket"},
		{"a datagram socket", `{"ticket":"x"}`, []int{udpFD}, "not a stream"},
		{"not JSON", `ticket=x`, []int{sockFD}, "bad request"},
		{"too long", `{"ticket":"` + strings.Repeat("a", MaxMessage) + `"}`, []int{sockFD}, "request too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ans := rawRequest(t, path, tc.msg, tc.fds)
			if !strings.Contains(ans, tc.want) {
				t.Errorf("answer %q; want it to contain %q", ans, tc.want)
			}
		})
	}
	if called {
		t.Error("handler called for a bad request")
	}
}

// TestUnknownOutcome: a server that goes away without answering leaves
// the outcome unknown, which is not a refusal.
func TestUnknownOutcome(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, MaxMessage))
		c.Close()
	}()
	_, server := nettest.TCPPair(t)
	err = (&Client{Socket: path}).Handoff(context.Background(), server, "t")
	var re *RefusedError
	if err == nil || errors.As(err, &re) {
		t.Errorf("mute server: %v; want an error that is not a refusal", err)
	}
}

func fileOf(t *testing.T, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// rawRequest sends msg with fds and returns the answer.
func rawRequest(t *testing.T, path, msg string, fds []int) string {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix([]byte(msg), oob, nil); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, MaxMessage)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}
