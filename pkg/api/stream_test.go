package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testBoundary = "----pvenodeTestBoundary7MA4YWxkTrZu0gW"

// multipartBody returns a streaming multipart/form-data body with fields,
// then the file part (filename) holding size bytes of file, then the closing
// boundary; and its length and Content-Type.
func multipartBody(fields [][2]string, filename string, file io.Reader, size int64) (io.Reader, int64, string) {
	var head bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", testBoundary, f[0], f[1])
	}
	fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"%s\"\r\n"+
		"Content-Type: application/octet-stream\r\n\r\n", testBoundary, filename)
	tail := "\r\n--" + testBoundary + "--\r\n"
	n := int64(head.Len()) + size + int64(len(tail))
	return io.MultiReader(&head, io.LimitReader(file, size), strings.NewReader(tail)), n,
		"multipart/form-data; boundary=" + testBoundary
}

// fileData is a reproducible stream of pseudo-random bytes; it is never
// held whole.
func fileData(seed uint64) io.Reader { return rand.NewChaCha8([32]byte{byte(seed)}) }

// fileSum is the SHA-256 of size bytes of fileData(seed).
func fileSum(t *testing.T, seed uint64, size int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(fileData(seed), size)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// countingReader counts what was read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// received is what the test upload handler saw.
type received struct {
	params Params
	size   int64
	sum    string
	err    error
}

// uploadEnv is a pvedaemon-mode Server and a pveproxy-mode Server
// forwarding to it, both on real HTTP listeners, with an upload method whose
// handler reports what it read on got (or, with refuse, answers an error
// without reading).
type uploadEnv struct {
	daemon, proxy *httptest.Server
	got           chan received
}

func newUploadEnv(t *testing.T, refuse bool) *uploadEnv {
	t.Helper()
	return newUploadEnvTimeouts(t, refuse, 0, 0)
}

// newUploadEnvTimeouts is newUploadEnv with both servers' ReadTimeout and
// UploadIdleTimeout set (0: none and the default).
func newUploadEnvTimeouts(t *testing.T, refuse bool, readTimeout, idle time.Duration) *uploadEnv {
	t.Helper()
	e := &uploadEnv{got: make(chan received, 1)}
	handle := func(ctx context.Context, r *Request) (any, error) {
		if refuse {
			return nil, Errorf(http.StatusBadRequest, "refused")
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Upload)
		e.got <- received{params: r.Params, size: n, sum: hex.EncodeToString(h.Sum(nil)), err: err}
		if err != nil {
			return nil, err
		}
		return "UPID:n1:ok", nil
	}
	methods := func() []Method {
		return []Method{{Name: "upload", Path: "/nodes/{node}/storage/{storage}/upload", HTTP: "POST",
			Protected: true, Upload: true, Permissions: Perm("/storage/{storage}", "Datastore.AllocateTemplate"),
			Params: map[string]*Schema{
				"node": Str().Fmt("pve-node"), "storage": Str().Fmt("pve-storage-id"),
				"content": Str().Enums("iso", "vztmpl"), "filename": Str().MaxLen(255),
				"checksum": Str().Opt(), "tmpfilename": Str().Opt(),
			},
			Handle: handle}}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := staticAuth{privs: map[string][]string{"alice@pve /storage/local": {"Datastore.AllocateTemplate"}}}
	daemon, err := NewServer(Config{Registry: NewRegistry(methods()), Auth: auth, Mode: ModeDaemon,
		NodeName: "n1", Log: log, AuthFailDelay: time.Millisecond, UploadIdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	e.daemon = httptest.NewUnstartedServer(daemon)
	e.daemon.Config.ReadTimeout = readTimeout
	e.daemon.Start()
	t.Cleanup(e.daemon.Close)
	// pveproxy forwards uploads to pvedaemon's Unix socket, as in
	// production (its answer to a refused upload arrives differently).
	sock := filepath.Join(t.TempDir(), "api.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	onSocket := &http.Server{Handler: daemon, ReadTimeout: readTimeout}
	go onSocket.Serve(uln)
	t.Cleanup(func() { onSocket.Close() })
	fwd := NewForwarder(ForwarderConfig{Addr: e.daemon.Listener.Addr().String(), Socket: sock, Timeout: 5 * time.Second, Log: log})
	t.Cleanup(fwd.Close)
	proxy, err := NewServer(Config{Registry: NewRegistry(methods()), Auth: auth, Mode: ModeProxy,
		NodeName: "n1", Log: log, Forward: fwd, AuthFailDelay: time.Millisecond, UploadIdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = httptest.NewUnstartedServer(proxy)
	e.proxy.Config.ReadTimeout = readTimeout
	e.proxy.Start()
	t.Cleanup(e.proxy.Close)
	return e
}

const uploadPath = "/api2/json/nodes/n1/storage/local/upload"

// post sends body to srv's upload method as alice and returns the status
// and the envelope.
func post(t *testing.T, srv *httptest.Server, target string, body io.Reader, n int64, ctype string) (int, answer) {
	t.Helper()
	return postCSRF(t, srv, target, body, n, ctype, "csrf-alice@pve")
}

// postCSRF is post with the given CSRF token ("" for none).
func postCSRF(t *testing.T, srv *httptest.Server, target string, body io.Reader, n int64, ctype, csrf string) (int, answer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Cookie", "PVEAuthCookie=good")
	if csrf != "" {
		req.Header.Set(HeaderCSRF, csrf)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	defer resp.Body.Close()
	var a answer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, a
}

// via is the server a test sends to: pvedaemon directly, or pveproxy.
func (e *uploadEnv) via(proxy bool) *httptest.Server {
	if proxy {
		return e.proxy
	}
	return e.daemon
}

// TestUploadStreams sends 64 MiB to pvedaemon directly and through
// pveproxy: the handler reads it all, with its parameters, and the process
// (client, proxy and daemon together) allocates a small fraction of it.
func TestUploadStreams(t *testing.T) {
	const size = 64 << 20
	want := fileSum(t, 1, size)
	for _, proxy := range []bool{false, true} {
		t.Run("proxy="+strconv.FormatBool(proxy), func(t *testing.T) {
			e := newUploadEnv(t, false)
			fields := [][2]string{{"content", "iso"}, {"checksum", " abc "}, {"undeclared", "x"}}
			body, n, ct := multipartBody(fields, "dir/my image.iso", fileData(1), size)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			code, a := post(t, e.via(proxy), uploadPath, body, n, ct)
			runtime.ReadMemStats(&after)
			if code != http.StatusOK || a.Data != "UPID:n1:ok" {
				t.Fatalf("upload: %d %+v", code, a)
			}
			got := <-e.got
			if got.err != nil || got.size != size || got.sum != want {
				t.Errorf("handler read %d bytes (sum %s, err %v); want %d bytes, sum %s", got.size, got.sum, got.err, size, want)
			}
			if got.params.Get("filename") != "dir/my image.iso" || got.params.Get("content") != "iso" ||
				got.params.Get("checksum") != "abc" || got.params.Has("undeclared") {
				t.Errorf("params %v", got.params)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB for a %d MiB upload", alloc>>10, size>>20)
			if alloc > 8<<20 {
				t.Errorf("allocated %d bytes for a %d byte upload; the body is buffered", alloc, size)
			}
		})
	}
}

// TestUploadRequestErrors: bodies refused before or while the file is read.
func TestUploadRequestErrors(t *testing.T) {
	file := func(name string) string {
		return "--" + testBoundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"a.iso\"\r\n\r\ndata"
	}
	field := func(name, v string) string {
		return "--" + testBoundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	end := "\r\n--" + testBoundary + "--\r\n"
	mp := "multipart/form-data; boundary=" + testBoundary
	for _, tt := range []struct {
		name, target, ctype, body string
		status                    int
		msg                       string // substring of the message, or of the parameter error
		handler                   bool   // the handler runs (and sees an error)
	}{
		{"form body", uploadPath, "application/x-www-form-urlencoded", "content=iso&filename=a.iso",
			506, "upload 'Content-Type 'application/x-www-form-urlencoded' not implemented", false},
		{"tmpfilename in query", uploadPath + "?tmpfilename=/var/tmp/pveupload-00", mp, field("content", "iso") + file("filename") + end,
			400, "'tmpfilename' query parameter is not allowed", false},
		{"tmpfilename field", uploadPath, mp, field("tmpfilename", "/var/tmp/pveupload-00") + file("filename") + end,
			400, "'tmpfilename' is not allowed", false},
		{"file under another name", uploadPath, mp, field("content", "iso") + file("file") + end,
			400, "wrong field name 'file' for file upload, expected 'filename'", false},
		{"no file", uploadPath, mp, field("content", "iso") + "--" + testBoundary + "--\r\n",
			400, "no file part 'filename'", false},
		{"not form-data", uploadPath, mp, "--" + testBoundary + "\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n" + file("filename") + end,
			400, "wrong Content-Disposition 'attachment; name=\"x\"'", false},
		{"parameters too large", uploadPath, mp, field("content", strings.Repeat("x", 600<<10)) + file("filename") + end,
			501, "for data too large", false},
		{"missing parameter", uploadPath, mp, file("filename") + end, 400, "property is missing", false},
		{"part after the file", uploadPath, mp, field("content", "iso") + file("filename") + "\r\n" + field("x", "y") + "--" + testBoundary + "--\r\n",
			400, "unexpected part after the file", true},
		{"no closing boundary", uploadPath, mp, field("content", "iso") + file("filename") + "\r\nmore data",
			400, "upload failed", true},
	} {
		for _, proxy := range []bool{false, true} {
			t.Run(tt.name+"/proxy="+strconv.FormatBool(proxy), func(t *testing.T) {
				e := newUploadEnv(t, false)
				code, a := post(t, e.via(proxy), tt.target, strings.NewReader(tt.body), int64(len(tt.body)), tt.ctype)
				msg := a.Message
				for _, v := range a.Errors {
					msg += " " + v
				}
				if code != tt.status || !strings.Contains(msg, tt.msg) {
					t.Errorf("%d %q; want %d %q", code, msg, tt.status, tt.msg)
				}
				select {
				case got := <-e.got:
					if !tt.handler || got.err == nil {
						t.Errorf("handler ran: %+v", got)
					}
				default:
					if tt.handler {
						t.Error("handler did not run")
					}
				}
			})
		}
	}
}

// TestUploadCutShort: a client that closes its connection half-way through
// the body makes the handler's read fail, directly and through pveproxy.
func TestUploadCutShort(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run("proxy="+strconv.FormatBool(proxy), func(t *testing.T) {
			e := newUploadEnv(t, false)
			body, n, ct := multipartBody([][2]string{{"content", "iso"}}, "a.iso", fileData(2), 8<<20)
			c, err := net.Dial("tcp", e.via(proxy).Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: n1\r\nContent-Type: %s\r\nContent-Length: %d\r\n"+
				"Cookie: PVEAuthCookie=good\r\nCSRFPreventionToken: csrf-alice@pve\r\n\r\n", uploadPath, ct, n)
			if _, err := io.CopyN(c, body, n/2); err != nil {
				t.Fatal(err)
			}
			c.Close()
			select {
			case got := <-e.got:
				var ae *Error
				if got.err == nil || !errors.As(got.err, &ae) || !strings.Contains(ae.Message, "upload failed") {
					t.Errorf("handler read %d bytes, err %v; want an upload error", got.size, got.err)
				}
				if got.size >= n/2 {
					t.Errorf("handler read %d bytes of %d sent", got.size, n/2)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the handler did not see the body cut short")
			}
		})
	}
}

// TestUploadEarlyAnswer: when pvedaemon refuses an upload without reading
// it, pveproxy relays the answer and stops reading the client's body.
func TestUploadEarlyAnswer(t *testing.T) {
	e := newUploadEnv(t, true)
	const size = 256 << 20
	src := &countingReader{r: fileData(3)}
	body, n, ct := multipartBody([][2]string{{"content", "iso"}}, "a.iso", src, size)
	start := time.Now()
	code, a := post(t, e.proxy, uploadPath, body, n, ct)
	if code != http.StatusBadRequest || a.Message != "refused\n" {
		t.Errorf("answer %d %+v; want 400 refused", code, a)
	}
	if read := src.n.Load(); read >= size {
		t.Errorf("the client sent all %d bytes in %v", read, time.Since(start))
	}
}

// trickle reads its source in small pieces, sleeping before each; with
// stallAt > 0 it sleeps stall once after that many bytes.
type trickle struct {
	r       io.Reader
	n       int64
	every   time.Duration
	stallAt int64
	stall   time.Duration
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.stallAt > 0 && t.n >= t.stallAt {
		time.Sleep(t.stall)
		t.stallAt = 0
	}
	time.Sleep(t.every)
	n, err := t.r.Read(p[:min(len(p), 16<<10)])
	t.n += int64(n)
	return n, err
}

// TestUploadTimeouts: an upload may take longer than the servers'
// ReadTimeout as long as data keeps coming; one that stalls past the idle
// timeout fails.
func TestUploadTimeouts(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run("proxy="+strconv.FormatBool(proxy), func(t *testing.T) {
			e := newUploadEnvTimeouts(t, false, 300*time.Millisecond, 700*time.Millisecond)
			const size = 512 << 10
			src := &trickle{r: fileData(4), every: 40 * time.Millisecond}
			body, n, ct := multipartBody([][2]string{{"content", "iso"}}, "a.iso", src, size)
			start := time.Now()
			if code, a := post(t, e.via(proxy), uploadPath, body, n, ct); code != http.StatusOK {
				t.Fatalf("slow upload: %d %+v", code, a)
			}
			if got := <-e.got; got.err != nil || got.size != size {
				t.Errorf("slow upload: read %d, err %v", got.size, got.err)
			}
			if d := time.Since(start); d < time.Second {
				t.Errorf("the slow upload took %v only", d)
			}

			src = &trickle{r: fileData(4), stallAt: 64 << 10, stall: 2 * time.Second}
			body, n, ct = multipartBody([][2]string{{"content", "iso"}}, "a.iso", src, size)
			answered := make(chan answer, 1)
			go func() {
				_, a := post(t, e.via(proxy), uploadPath, body, n, ct)
				answered <- a
			}()
			select {
			case got := <-e.got:
				// pvedaemon times out itself, or sees pveproxy give up.
				if got.err == nil || !strings.Contains(got.err.Error(), "upload failed - ") {
					t.Errorf("stalled upload: read %d, err %v", got.size, got.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stalled upload did not fail")
			}
			select {
			case a := <-answered:
				if a.Message != "upload failed - no data received for 700ms\n" {
					t.Errorf("stalled upload answered %+v", a)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stalled upload was not answered")
			}
		})
	}
}

// TestUploadWithoutCSRF: as PVE, pveproxy does not ask for the CSRF token
// of an upload (PVE's web UI sends none), but still checks the privilege.
func TestUploadWithoutCSRF(t *testing.T) {
	e := newUploadEnv(t, false)
	body, n, ct := multipartBody([][2]string{{"content", "iso"}}, "a.iso", fileData(5), 1000)
	if code, a := postCSRF(t, e.proxy, uploadPath, body, n, ct, ""); code != http.StatusOK {
		t.Errorf("upload without CSRF token: %d %+v", code, a)
	}
	if got := <-e.got; got.err != nil || got.size != 1000 {
		t.Errorf("handler read %d, err %v", got.size, got.err)
	}
	body, n, ct = multipartBody([][2]string{{"content", "iso"}}, "a.iso", fileData(5), 1000)
	code, a := postCSRF(t, e.proxy, "/api2/json/nodes/n1/storage/other/upload", body, n, ct, "")
	if code != http.StatusForbidden || a.Message != "Permission check failed (/storage/other, Datastore.AllocateTemplate)\n" {
		t.Errorf("upload without privilege: %d %+v", code, a)
	}
}
