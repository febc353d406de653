package httpd

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

func TestReasonPhrase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			reqinfo.FromContext(r.Context()).SetReason("No ticket\nsecond line")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	})})
	go srv.Serve(ReasonListener(ln))
	t.Cleanup(func() { srv.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tt := range []struct{ path, want string }{
		{"/ok", "HTTP/1.1 200 OK"},
		{"/fail", "HTTP/1.1 401 No ticket"},
		{"/ok", "HTTP/1.1 200 OK"}, // the reason never reaches the next response
	} {
		if _, err := c.Write([]byte("GET " + tt.path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := "HTTP/1.1 " + resp.Status; got != tt.want {
			t.Errorf("GET %s status line = %q; want %q", tt.path, got, tt.want)
		}
	}
}

func TestSanitizeReason(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Permission check failed (/, Sys.Audit)\n", "Permission check failed (/, Sys.Audit)"},
		{"bad\x01char\r", "bad?char"},
		{strings.Repeat("x", 300), strings.Repeat("x", 200)},
		{"\n", ""},
	} {
		if got := sanitizeReason(tt.in); got != tt.want {
			t.Errorf("sanitizeReason(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
