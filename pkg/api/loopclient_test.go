package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopClientReusesAndRecovers(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, r.Method+" "+string(b))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	l := &loopClient{addr: srv.Listener.Addr().String(), dialTimeout: time.Second, timeout: 5 * time.Second}
	defer l.closeIdle()

	call := func(method, path, body string) string {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+l.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := l.do(context.Background(), req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for i := 0; i < 5; i++ {
		if got := call("POST", "/", "x"); got != "POST x" {
			t.Fatalf("answer %q", got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential calls used %d connections; want 1 (keep-alive)", n)
	}
	// An answer with Connection: close is not pooled.
	call("GET", "/close", "")
	call("GET", "/", "")
	if n := conns.Load(); n != 2 {
		t.Errorf("connections = %d; want 2 (the one closed after Connection: close, and a new one)", n)
	}
	// The server drops every connection (a restarted pvedaemon): the pooled
	// one is dead, and a POST is sent again, with its body, on a new one.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if got := call("POST", "/", "again"); got != "POST again" {
		t.Errorf("POST after the peer closed: %q; want %q", got, "POST again")
	}
}
