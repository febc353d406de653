package httpd

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange sends raw on a new connection and returns the status and body
// of the response.
func rawExchange(t *testing.T, addr, raw string) (int, http.Header, string) {
	t.Helper()
	ln := fakeAddrListener(addr)
	c := dialFrom(t, ln, "")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }() // the server may answer before reading it all
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func envelope(msg string) string {
	return `{"data":null,"message":"` + msg + `\n"}`
}

func TestLimits(t *testing.T) {
	ln := listen(t, "127.0.0.1")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			if _, err := io.ReadAll(r.Body); err != nil {
				WriteError(w, r, http.StatusNotImplemented, "for data too large")
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	})
	serve(t, ln, Chain(h, Limits(MaxBody)))
	addr := ln.Addr().String()

	hdrLines := func(n int) string { // n header lines besides Host
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		return b.String()
	}
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) + "\r\n" }

	for _, tt := range []struct {
		name, raw  string
		wantStatus int
		wantBody   string
	}{
		{"GET passes", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 200, "ok"},
		{"DELETE passes", "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", 200, "ok"},
		{"PATCH", "PATCH / HTTP/1.1\r\nHost: h\r\n\r\n", 501, envelope("method 'PATCH' not available")},
		{"OPTIONS", "OPTIONS / HTTP/1.1\r\nHost: h\r\n\r\n", 501, envelope("method 'OPTIONS' not available")},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 501, ""}, // no body on HEAD responses
		{"chunked body", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na=1\r\n0\r\n\r\n",
			501, envelope("chunked transfer encoding not supported")},
		{"body too large", fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", MaxBody+1),
			501, envelope("for data too large")},
		{"body at the limit", fmt.Sprintf("POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", MaxBody, strings.Repeat("a", MaxBody)),
			200, "ok"},
		{"body on GET", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na=1", 501, envelope("Unexpected content for method 'GET'")},
		{"form body", "POST /read HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1", 200, "ok"},
		{"json body with charset", "PUT /read HTTP/1.1\r\nHost: h\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: 2\r\n\r\n{}", 200, "ok"},
		{"body without content type", "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na=1", 200, "ok"},
		{"text/plain body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\na=1",
			506, envelope("upload 'Content-Type 'text/plain' not implemented")},
		{"large multipart passes", fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=xx\r\nContent-Length: %d\r\n\r\n", 4*MaxBody),
			200, "ok"},
		{"64 header lines", "GET / HTTP/1.1\r\nHost: h\r\n" + hdrLines(63) + "\r\n", 200, "ok"},
		{"65 header lines", "GET / HTTP/1.1\r\nHost: h\r\n" + hdrLines(64) + "\r\n", 431, envelope("too many http header lines (> 64)")},
		// PVE counts "Name: value" bytes: "Host: h" (7) + "X-Pad: " (7) + n.
		{"header bytes just below 8 KiB", "GET / HTTP/1.1\r\nHost: h\r\n" + pad(MaxHeaderBytes-15) + "\r\n", 200, "ok"},
		{"header bytes 8 KiB", "GET / HTTP/1.1\r\nHost: h\r\n" + pad(MaxHeaderBytes-14) + "\r\n", 431, envelope("http header too large")},
		{"header 9 KiB", "GET / HTTP/1.1\r\nHost: h\r\n" + pad(9<<10) + "\r\n", 431, envelope("http header too large")},
		// Beyond MaxHeaderBytes plus net/http's slack, net/http answers itself.
		{"header 20 KiB", "GET / HTTP/1.1\r\nHost: h\r\n" + pad(20<<10) + "\r\n", 431, "431 Request Header Fields Too Large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := rawExchange(t, addr, tt.raw)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q; want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if strings.HasPrefix(tt.wantBody, "{") && hdr.Get("Content-Type") != "application/json;charset=UTF-8" {
				t.Errorf("Content-Type = %q; want application/json;charset=UTF-8", hdr.Get("Content-Type"))
			}
		})
	}
}

func TestLimitsForConnect(t *testing.T) {
	ln := listen(t, "127.0.0.1")
	serve(t, ln, Chain(okHandler, LimitsFor(0, http.MethodConnect)))
	if status, _, _ := rawExchange(t, ln.Addr().String(), "CONNECT pve:61000 HTTP/1.1\r\nHost: pve:61000\r\n\r\n"); status != 200 {
		t.Errorf("CONNECT = %d; want 200", status)
	}
	if status, _, body := rawExchange(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); status != 501 || body != envelope("method 'GET' not available") {
		t.Errorf("GET = %d %q; want 501 method not available", status, body)
	}
}

func TestLimitsMaxBytesReader(t *testing.T) {
	// The body goes through http.MaxBytesReader: exactly maxBody reads
	// fine, one byte more is refused up front from Content-Length.
	errc := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errc <- err
	})
	ln := listen(t, "127.0.0.1")
	serve(t, ln, Chain(h, Limits(4)))
	rawExchange(t, ln.Addr().String(), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd")
	if err := <-errc; err != nil {
		t.Errorf("reading a body of exactly maxBody: %v", err)
	}
	if status, _, body := rawExchange(t, ln.Addr().String(), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde"); status != 501 || body != envelope("for data too large") {
		t.Errorf("maxBody+1 = %d %q; want 501 for data too large", status, body)
	}
}
