package httpd

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

func TestNewServerDefaults(t *testing.T) {
	srv := NewServer(ServerConfig{Handler: okHandler})
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"ReadTimeout", srv.ReadTimeout, DefaultReadTimeout},
		{"IdleTimeout", srv.IdleTimeout, 5 * time.Second},
		{"WriteTimeout", srv.WriteTimeout, time.Duration(0)},
		{"MaxHeaderBytes", srv.MaxHeaderBytes, 8192},
		{"HTTP1", srv.Protocols.HTTP1(), true},
		{"HTTP2", srv.Protocols.HTTP2(), false},
		{"UnencryptedHTTP2", srv.Protocols.UnencryptedHTTP2(), false},
		{"TLSNextProto empty", len(srv.TLSNextProto), 0},
		{"TLSNextProto non-nil", srv.TLSNextProto != nil, true},
		{"ErrorLog set", srv.ErrorLog != nil, true},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	srv = NewServer(ServerConfig{Handler: okHandler, ReadTimeout: -1, IdleTimeout: time.Minute, MaxHeaderBytes: 1 << 20})
	if srv.ReadTimeout != 0 || srv.IdleTimeout != time.Minute || srv.MaxHeaderBytes != 1<<20 {
		t.Errorf("overrides not applied: read %v idle %v header %d", srv.ReadTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

// fakeConn is a net.Conn with a chosen remote address.
type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }

type strAddr string

func (a strAddr) Network() string { return "x" }
func (a strAddr) String() string  { return string(a) }

func TestConnContextPeer(t *testing.T) {
	srv := NewServer(ServerConfig{Handler: okHandler})
	for _, tt := range []struct {
		name   string
		remote net.Addr
		want   string
	}{
		{"v4", &net.TCPAddr{IP: net.ParseIP("192.0.2.10").To4(), Port: 40000}, "192.0.2.10:40000"},
		{"v4-mapped is unmapped", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.10"), Port: 40000}, "192.0.2.10:40000"},
		{"v6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 8006}, "[2001:db8::1]:8006"},
		{"string addr mapped", strAddr("[::ffff:10.0.0.1]:1"), "10.0.0.1:1"},
		{"unix", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "invalid AddrPort"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := srv.ConnContext(context.Background(), fakeConn{remote: tt.remote})
			if got := reqinfo.FromContext(ctx).Peer().String(); got != tt.want {
				t.Errorf("peer of %v = %s; want %s", tt.remote, got, tt.want)
			}
		})
	}
}

func TestRequestInfoPerRequest(t *testing.T) {
	// Two requests on one keep-alive connection: the user set by the first
	// must not show in the second.
	users := make(chan string, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.FromContext(r.Context())
		users <- info.User()
		info.SetUser("root@pam")
		if got := info.Peer().Addr(); got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("peer = %v; want 127.0.0.1", got)
		}
	})
	ln := listen(t, "127.0.0.1")
	serve(t, ln, h)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for range 2 {
		do(t, c, newRequest(t, "GET", "http://"+ln.Addr().String()+"/", nil))
		if u := <-users; u != "" {
			t.Errorf("request starts with user %q; want none", u)
		}
	}
}

func TestStdHeaders(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/dyn", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") })
	mux.HandleFunc("/static", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "x.js", time.Unix(1700000000, 0), strings.NewReader("js"))
	})
	mux.HandleFunc("/own", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/err", func(w http.ResponseWriter, r *http.Request) { WriteError(w, r, 403, "Permission check failed") })
	ln := listen(t, "127.0.0.1")
	serve(t, ln, StdHeaders(mux))
	base := "http://" + ln.Addr().String()
	c := plainClient(nil)

	resp, _ := do(t, c, newRequest(t, "GET", base+"/dyn", nil))
	h := resp.Header
	if h.Get("Server") != ServerName || h.Get("Date") == "" || h.Get("Expires") != h.Get("Date") ||
		h.Get("Cache-Control") != "max-age=0" || h.Get("Pragma") != "no-cache" {
		t.Errorf("dynamic response headers = %v; want Server, Expires = Date, Cache-Control max-age=0, Pragma no-cache", h)
	}

	resp, _ = do(t, c, newRequest(t, "GET", base+"/empty", nil))
	if h := resp.Header; h.Get("Server") != ServerName || h.Get("Expires") == "" {
		t.Errorf("empty response headers = %v; want Server and Expires", h)
	}

	resp, _ = do(t, c, newRequest(t, "GET", base+"/static", nil))
	h = resp.Header
	if h.Get("Server") != ServerName || h.Get("Last-Modified") == "" || h.Get("Expires") != "" || h.Get("Pragma") != "" {
		t.Errorf("static response headers = %v; want Server and Last-Modified without Expires/Pragma", h)
	}

	resp, _ = do(t, c, newRequest(t, "GET", base+"/own", nil))
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("handler's Cache-Control replaced by %q", got)
	}

	// Errors close the connection, as with PVE.
	kc := &http.Client{Transport: &http.Transport{}}
	defer kc.CloseIdleConnections()
	resp, body := do(t, kc, newRequest(t, "GET", base+"/err", nil))
	if resp.StatusCode != 403 || !resp.Close {
		t.Errorf("error response: status %d close %v; want 403 with Connection: close", resp.StatusCode, resp.Close)
	}
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if v, ok := env["data"]; !ok || v != nil || env["message"] != "Permission check failed\n" {
		t.Errorf("error body = %s; want data null and message with newline", body)
	}
}

func TestWriteError(t *testing.T) {
	for _, tt := range []struct {
		msg, want string
	}{
		{"No ticket", `{"data":null,"message":"No ticket\n"}`},
		{"VM 100 not running\n", `{"data":null,"message":"VM 100 not running\n"}`},
		{`unexpected '<' & "quote"`, `{"data":null,"message":"unexpected '<' & \"quote\"\n"}`},
	} {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("GET", "/", nil), 500, tt.msg)
		if got := rec.Body.String(); got != tt.want || rec.Code != 500 {
			t.Errorf("WriteError(%q) = %d %s; want 500 %s", tt.msg, rec.Code, got, tt.want)
		}
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "h") }), mw("a"), mw("b"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got := strings.Join(order, ","); got != "a,b,h" {
		t.Errorf("order = %s; want a,b,h", got)
	}
}

func TestShutdownForcesClose(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})
	ln := listen(t, "127.0.0.1")
	srv := NewServer(ServerConfig{Handler: h})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	go func() {
		resp, err := plainClient(nil).Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace at all: the busy connection is closed
	if err := Shutdown(ctx, srv); err == nil {
		t.Errorf("Shutdown with a busy handler and expired ctx returned nil; want an error")
	}
	close(release)
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve = %v; want ErrServerClosed", err)
	}
	// A clean stop returns nil.
	srv2 := NewServer(ServerConfig{Handler: okHandler})
	if err := Shutdown(context.Background(), srv2); err != nil {
		t.Errorf("Shutdown idle server: %v", err)
	}
}
