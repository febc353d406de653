package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/apimux"
)

// dlAuth accepts the ticket "good" for alice@pve and grants nothing; the
// download methods need only an authenticated user.
type dlAuth struct{}

func (dlAuth) AuthenticateTicket(t string) (string, error) {
	if t == "good" {
		return "alice@pve", nil
	}
	return "", errors.New("bad ticket")
}

func (dlAuth) AuthenticateToken(context.Context, string, string) (string, error) {
	return "", errors.New("no tokens")
}

func (dlAuth) VerifyCSRF(string, string) error { return errors.New("no csrf") }

func (dlAuth) CheckPrivs(string, string, []string, bool) bool { return false }

// dlSource is what the /dl method answers; tests change it between calls.
type dlSource struct {
	mu sync.Mutex // guards fn
	fn func() (any, error)
}

func (s *dlSource) set(fn func() (any, error)) {
	s.mu.Lock()
	s.fn = fn
	s.mu.Unlock()
}

func (s *dlSource) answer() (any, error) {
	s.mu.Lock()
	fn := s.fn
	s.mu.Unlock()
	return fn()
}

// dlMethods are a download method (protected, so pveproxy forwards it) and
// a method that answers a download without being declared for one.
func dlMethods(src *dlSource) []api.Method {
	handle := func(context.Context, *api.Request) (any, error) { return src.answer() }
	return []api.Method{
		{Name: "dl", Path: "/dl", HTTP: "GET", Protected: true, DownloadAllowed: true,
			Permissions: api.AllUsers, Params: map[string]*api.Schema{"download": api.Bool().Opt()}, Handle: handle},
		{Name: "undeclared", Path: "/undeclared", HTTP: "GET", Permissions: api.AllUsers, Handle: handle},
	}
}

func newDLServer(t *testing.T, mode api.Mode, src *dlSource, fwd *api.Forwarder) *api.Server {
	t.Helper()
	s, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(dlMethods(src)), Auth: dlAuth{}, Mode: mode, NodeName: "n1",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Forward: fwd,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// get sends a GET with alice's ticket to base+target.
func get(t *testing.T, base, target string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "PVEAuthCookie=good")
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return (&http.Client{Transport: tr}).Do(req)
}

// dlFile writes a file of n bytes and returns its path and content.
func dlFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("0123456789abcdef\n"), n/17+1)[:n]
	p := filepath.Join(t.TempDir(), "file.log")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestDownloadAnswers(t *testing.T) {
	path, data := dlFile(t, 100<<10)
	for _, tt := range []struct {
		name, target string
		src          func() (any, error)
		status       int
		ctype, disp  string
		length       string // Content-Length; "" = none (chunked)
		body         string // "" = data
	}{
		{"path, json", "/api2/json/dl", func() (any, error) {
			return &api.Download{Path: path, ContentType: "text/plain", Filename: "task-n1-x-2024-01-02T03:04:05Z.log"}, nil
		}, 200, "text/plain", `attachment; filename="task-n1-x-2024-01-02T03:04:05Z.log"`, "102400", ""},
		{"path, extjs: no envelope either", "/api2/extjs/dl", func() (any, error) {
			return api.Download{Path: path, ContentType: "text/plain", Filename: "x.log"}, nil
		}, 200, "text/plain", `attachment; filename="x.log"`, "102400", ""},
		{"body of known size", "/api2/json/dl", func() (any, error) {
			return &api.Download{Body: io.NopCloser(bytes.NewReader(data)), Size: int64(len(data))}, nil
		}, 200, "application/octet-stream", "", "102400", ""},
		{"body of unknown size is chunked", "/api2/json/dl", func() (any, error) {
			return &api.Download{Body: io.NopCloser(bytes.NewReader(data)), ContentType: "text/plain"}, nil
		}, 200, "text/plain", "", "", ""},
		{"name needing RFC 2231", "/api2/json/dl", func() (any, error) {
			return &api.Download{Path: path, Filename: "a\"b ü.log"}, nil
		}, 200, "application/octet-stream", `attachment; filename*=utf-8''a%22b%20%C3%BC.log`, "102400", ""},
		{"missing file", "/api2/json/dl", func() (any, error) {
			return &api.Download{Path: path + ".gone"}, nil
		}, 500, "application/json;charset=UTF-8", "", "", `"message":"open stream path '` + path + `.gone' for reading failed: No such file or directory\n"`},
		{"handler error before the download", "/api2/json/dl", func() (any, error) {
			return nil, api.Errorf(500, "Could not open file 'x' - No such file or directory")
		}, 500, "application/json;charset=UTF-8", "", "", `"message":"Could not open file 'x' - No such file or directory\n"`},
		{"method not declared for downloads", "/api2/json/undeclared", func() (any, error) {
			return &api.Download{Path: path}, nil
		}, 500, "application/json;charset=UTF-8", "", "", `download attempted for non-marked API endpoint '/undeclared'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &dlSource{fn: tt.src}
			hs := httptest.NewServer(newDLServer(t, api.ModeDaemon, src, nil))
			defer hs.Close()
			resp, err := get(t, hs.URL, tt.target)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d; want %d (%s)", resp.StatusCode, tt.status, body)
			}
			h := resp.Header
			if got := h.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q; want %q", got, tt.ctype)
			}
			if got := h.Get("Content-Disposition"); got != tt.disp {
				t.Errorf("Content-Disposition = %q; want %q", got, tt.disp)
			}
			if tt.status != 200 {
				if !strings.Contains(string(body), tt.body) {
					t.Errorf("body = %s; want it to contain %s", body, tt.body)
				}
				return
			}
			if got := h.Get("Content-Length"); got != tt.length {
				t.Errorf("Content-Length = %q; want %q", got, tt.length)
			}
			if tt.length == "" && (resp.ContentLength != -1 || len(resp.TransferEncoding) == 0) {
				t.Errorf("length %d, transfer encoding %v; want chunked", resp.ContentLength, resp.TransferEncoding)
			}
			if !bytes.Equal(body, data) {
				t.Errorf("body: %d bytes, want the file's %d", len(body), len(data))
			}
		})
	}
}

// pipeSource makes src answer the read end of a pipe the test writes.
func pipeSource(src *dlSource, size int64) *io.PipeWriter {
	pr, pw := io.Pipe()
	src.set(func() (any, error) { return &api.Download{Body: pr, Size: size, ContentType: "text/plain"}, nil })
	return pw
}

// streamed checks that the first part of a download reaches the client
// before the handler's body has more to give (nothing holds the body
// whole), and that a body breaking off cuts the client's answer.
func streamed(t *testing.T, base string, pw *io.PipeWriter, cut bool) {
	t.Helper()
	first := bytes.Repeat([]byte("a"), 256<<10)
	go func() {
		if _, err := pw.Write(first); err != nil {
			return
		}
	}()
	resp, err := get(t, base, "/api2/json/dl?download=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatalf("first part before the body ended: %v", err)
	}
	if cut {
		pw.CloseWithError(errors.New("disk on fire"))
		if rest, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("a download whose source broke off ended cleanly after %d more bytes", len(rest))
		}
		return
	}
	go func() {
		_, _ = pw.Write([]byte("the end\n"))
		pw.Close()
	}()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "the end\n" {
		t.Errorf("rest = %q, %v; want \"the end\\n\"", rest, err)
	}
}

func TestDownloadStreams(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int64
		cut  bool
	}{
		{"chunked", 0, false},
		{"chunked, source cut", 0, true},
		{"known size", 256<<10 + 8, false},
		{"known size, source cut", 256<<10 + 8, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &dlSource{}
			pw := pipeSource(src, tt.size)
			hs := httptest.NewServer(newDLServer(t, api.ModeDaemon, src, nil))
			defer hs.Close()
			streamed(t, hs.URL, pw, tt.cut)
		})
	}
}

// proxied starts pvedaemon's server (src answers /dl) reachable over the
// mux socket or over HTTP, and pveproxy's in front of it; it returns
// pveproxy's URL.
func proxied(t *testing.T, viaMux bool, src *dlSource) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	daemon := newDLServer(t, api.ModeDaemon, src, nil)
	fc := api.ForwarderConfig{Timeout: 10 * time.Second, Log: log}
	if viaMux {
		sock := filepath.Join(t.TempDir(), "mux.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		ms := &apimux.Server{Handler: daemon, Log: log}
		go func() { _ = ms.Serve(ln) }()
		t.Cleanup(func() { ms.Close() })
		fc.MuxSocket, fc.Addr = sock, "127.0.0.1:1" // no HTTP fallback
	} else {
		hs := httptest.NewServer(daemon)
		t.Cleanup(hs.Close)
		fc.Addr = strings.TrimPrefix(hs.URL, "http://")
	}
	fwd := api.NewForwarder(fc)
	t.Cleanup(fwd.Close)
	ps := httptest.NewServer(newDLServer(t, api.ModeProxy, src, fwd))
	t.Cleanup(ps.Close)
	return ps.URL
}

// TestDownloadForwarded: pveproxy relays pvedaemon's download as it is
// (status, headers, body, no envelope), streaming, and cuts the client's
// answer when pvedaemon's breaks off; over the mux and over HTTP.
func TestDownloadForwarded(t *testing.T) {
	path, data := dlFile(t, 300<<10)
	for _, hop := range []struct {
		name string
		mux  bool
	}{{"mux", true}, {"http", false}} {
		t.Run(hop.name, func(t *testing.T) {
			src := &dlSource{fn: func() (any, error) {
				return &api.Download{Path: path, ContentType: "text/plain", Filename: "task-n1-x.log"}, nil
			}}
			base := proxied(t, hop.mux, src)
			for _, format := range []string{"json", "extjs"} {
				resp, err := get(t, base, "/api2/"+format+"/dl?download=1")
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: read: %v", format, err)
				}
				h := resp.Header
				if resp.StatusCode != 200 || h.Get("Content-Type") != "text/plain" ||
					h.Get("Content-Disposition") != `attachment; filename="task-n1-x.log"` ||
					h.Get("Content-Length") != "307200" || h.Get(api.AuditHeader) != "" {
					t.Errorf("%s: status %d, header %v", format, resp.StatusCode, h)
				}
				if !bytes.Equal(body, data) {
					t.Errorf("%s: body of %d bytes, want the file's %d", format, len(body), len(data))
				}
			}

			for _, cut := range []bool{false, true} {
				streamed(t, base, pipeSource(src, 0), cut)
			}

			src.set(func() (any, error) { return &api.Download{Path: path + ".gone"}, nil })
			resp, err := get(t, base, "/api2/json/dl?download=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 500 || !strings.Contains(string(body), "for reading failed: No such file or directory") {
				t.Errorf("missing file: %d %s", resp.StatusCode, body)
			}
		})
	}
}
