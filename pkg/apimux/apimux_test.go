package apimux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// startServer serves h on a Unix socket in a temporary directory and
// returns the socket path and the server.
func startServer(t *testing.T, h http.Handler) (string, *Server) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mux.sock")
	return sock, serveAt(t, sock, h)
}

func serveAt(t *testing.T, sock string, h http.Handler) *Server {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func newClient(t *testing.T, sock string) *Client {
	c := &Client{Socket: sock, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdle)
	return c
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestRoundTrip(t *testing.T) {
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		body, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("fail") != "" {
			reqinfo.FromContext(r.Context()).SetReason("authentication failure")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		fmt.Fprintf(w, "%s %s %s host=%s cookie=%s net=%s len=%d body=%s",
			r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Get("Cookie"), la.Network(), r.ContentLength, body)
	}))
	c := newClient(t, sock)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		req        Request
		wantStatus string
		wantBody   string
	}{
		{"get", Request{Method: "GET", URI: "/api2/json/version?x=1", Host: "node:8006",
			Header: http.Header{"Cookie": {"PVEAuthCookie=t"}}},
			"200 OK", "GET /api2/json/version x=1 host=node:8006 cookie=PVEAuthCookie=t net=unix len=0 body="},
		{"post with body", Request{Method: "POST", URI: "/api2/json/access/ticket", Host: "h",
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("username=a&password=b")},
			"200 OK", "POST /api2/json/access/ticket  host=h cookie= net=unix len=21 body=username=a&password=b"},
		{"reason phrase", Request{Method: "GET", URI: "/x?fail=1", Host: "h"}, "401 authentication failure", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Do(ctx, &tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.wantStatus {
				t.Errorf("status %q, want %q", resp.Status, tc.wantStatus)
			}
			if got := readAll(t, resp); got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
			if resp.StatusCode == 200 {
				if got := resp.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
					t.Errorf("X-Multi %q", got)
				}
				if resp.ContentLength != int64(len(tc.wantBody)) {
					t.Errorf("ContentLength %d, want %d", resp.ContentLength, len(tc.wantBody))
				}
			}
		})
	}
}

// TestConcurrentCalls sends more calls at once than one connection takes,
// so the client opens more than one connection; every answer must belong
// to its call.
func TestConcurrentCalls(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if started.Add(1) == MaxStreams+20 {
			close(release)
		}
		<-release
		io.WriteString(w, r.URL.Query().Get("n"))
	}))
	c := newClient(t, sock)
	const calls = MaxStreams + 20
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Do(context.Background(), &Request{Method: "GET", URI: fmt.Sprintf("/?n=%d", i), Host: "h"})
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != fmt.Sprint(i) {
				errs <- fmt.Errorf("call %d: body %q, err %v", i, b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.mu.Lock()
	n := len(c.conns)
	c.mu.Unlock()
	if n < 2 {
		t.Errorf("%d connections for %d concurrent calls, want at least 2", n, calls)
	}
}

// TestLargeAnswerFlowControl streams 8 MiB to a reader that stops: the
// handler must be held back by the stream window, not buffered without
// bound, and the bytes must arrive intact.
func TestLargeAnswerFlowControl(t *testing.T) {
	const total = 8 << 20
	var written atomic.Int64
	data := bytes.Repeat([]byte("0123456789abcdef"), total/16)
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for off := 0; off < total; off += 4096 {
			if _, err := w.Write(data[off : off+4096]); err != nil {
				return
			}
			written.Add(4096)
		}
	}))
	c := newClient(t, sock)
	resp, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/big", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(300 * time.Millisecond) // the reader stalls
	// The handler may be ahead by the window plus what it buffers (one
	// chunk) plus one write.
	if w, limit := written.Load(), int64(streamWindow+dataChunk+4096); w > limit {
		t.Fatalf("handler wrote %d bytes while the reader stalled; flow control allows %d", w, limit)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != total {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), sha256Of(data)) {
		t.Fatal("body differs")
	}
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestCancel: a caller that goes away cancels the handler's context.
func TestCancel(t *testing.T) {
	cancelled := make(chan struct{})
	entered := make(chan struct{})
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(cancelled)
	}))
	c := newClient(t, sock)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	if _, err := c.Do(ctx, &Request{Method: "GET", URI: "/slow", Host: "h"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled")
	}
}

func TestTimeout(t *testing.T) {
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	c := &Client{Socket: sock, Timeout: 100 * time.Millisecond}
	defer c.CloseIdle()
	if _, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/", Host: "h"}); !errors.Is(err, errTimeout) {
		t.Fatalf("err %v, want timeout", err)
	}
}

func TestPanicAndAbort(t *testing.T) {
	sock, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			io.WriteString(w, strings.Repeat("x", 3*dataChunk))
			panic(http.ErrAbortHandler)
		case "/abort-early":
			panic(http.ErrAbortHandler)
		}
	}))
	c := newClient(t, sock)
	resp, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/panic", Host: "h"})
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("panic: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = c.Do(context.Background(), &Request{Method: "GET", URI: "/abort", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("aborted body: err %v, want unexpected EOF", err)
	}
	resp.Body.Close()
	if _, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/abort-early", Host: "h"}); !errors.Is(err, errAborted) {
		t.Errorf("abort before the head: err %v", err)
	}
	// The connection still serves calls.
	resp, err = c.Do(context.Background(), &Request{Method: "GET", URI: "/", Host: "h"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after panics: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestShutdownAndRestart: a graceful shutdown lets the call in flight
// finish; calls sent meanwhile reach the next server on the same socket.
func TestShutdownAndRestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mux.sock")
	release := make(chan struct{})
	entered := make(chan struct{})
	first := serveAt(t, sock, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "first")
	}))
	c := newClient(t, sock)
	slow := make(chan string, 1)
	go func() {
		resp, err := c.Do(context.Background(), &Request{Method: "POST", URI: "/slow", Host: "h"})
		if err != nil {
			slow <- err.Error()
			return
		}
		slow <- readAll(t, resp)
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- first.Shutdown(context.Background()) }()
	// Shutdown has removed the socket's listener; the next server takes
	// over the path as a restarted pvedaemon does.
	time.Sleep(50 * time.Millisecond)
	if err := removeSocket(sock); err != nil {
		t.Fatal(err)
	}
	serveAt(t, sock, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "second") }))
	resp, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "second" {
		t.Errorf("call during shutdown answered by %q, want the new server", got)
	}
	close(release)
	if got := <-slow; got != "first" {
		t.Errorf("call in flight: %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func removeSocket(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func TestBadPreface(t *testing.T) {
	sock, _ := startServer(t, http.NotFoundHandler())
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read %d bytes, err %v; want the connection closed", n, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(appendRequest(nil, "GET", "/api2/json/version", "h", http.Header{"Cookie": {"a=b"}}, []byte("body")))
	f.Add(appendResponse(nil, 200, "OK", http.Header{"Content-Type": {"x"}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := decodeRequest(p); err == nil {
			again, err := decodeRequest(appendRequest(nil, r.method, r.uri, r.host, r.header, r.body))
			if err != nil || again.method != r.method || again.uri != r.uri || !bytes.Equal(again.body, r.body) {
				t.Fatalf("request does not survive a round trip: %v", err)
			}
		}
		_, _ = decodeResponse(p)
	})
}
