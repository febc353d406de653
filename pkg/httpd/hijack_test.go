package httpd

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHijackAndFlushThroughStack(t *testing.T) {
	alog, lines := testLog(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/assert": // older code: type assertion
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Errorf("writer %T does not implement http.Hijacker", w)
				return
			}
			c, brw, err := hj.Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi")
			_ = brw.Flush()
		case "/controller":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("ResponseController.Hijack: %v", err)
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi")
			_ = brw.Flush()
		case "/stream":
			NoCompress(w)
			_, _ = io.WriteString(w, "first\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
			_, _ = io.WriteString(w, "second\n")
		}
	})
	ln := listen(t, "127.0.0.1")
	serve(t, ln, Chain(h, alog.Wrap, RealIP("X-Real-IP", nil), StdHeaders, Limits(0), Compress(nil)))

	for i, path := range []string{"/assert", "/controller"} {
		c := dialFrom(t, ln, "")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAccept-Encoding: gzip\r\n\r\n")
		got, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(got), "HTTP/1.1 101 ") || !strings.HasSuffix(string(got), "hi") {
			t.Errorf("%s: got %q; want the hijacked 101 answer", path, got)
		}
		if l := waitLines(t, lines, i+1)[i]; !strings.HasSuffix(l, `"GET `+path+` HTTP/1.1" 101 -`) {
			t.Errorf("access log %q; want 101 -", l)
		}
	}

	c := dialFrom(t, ln, "")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read stream response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "first\nsecond\n" || resp.Header.Get("Content-Encoding") != "" || len(resp.TransferEncoding) == 0 {
		t.Errorf("stream: body %q encoding %q te %v; want plain chunked stream", body, resp.Header.Get("Content-Encoding"), resp.TransferEncoding)
	}
}
