package nodes_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/ticket"
)

const boundary = "----pvenodeUploadTest0xKhTmLbOuNdArY"

// upEnv is the node API of newNodeEnv plus a dir storage "up" (content iso,
// vztmpl and import) in pvedaemon's API server, on a real HTTP listener.
type upEnv struct {
	*storEnv
	hs        *httptest.Server
	up        string // path of the storage "up"
	tk, csrf  string // carol's ticket and CSRF token (PVEDatastoreAdmin on /storage)
	aliceTk   string // alice: PVEDatastoreUser on /storage/store only
	aliceCSRF string
}

// newUpEnv returns an upEnv whose uploads are bounded by maxUpload (0: the
// free space only); withQemuImg skips the test without qemu-img.
func newUpEnv(t *testing.T, maxUpload int64, withQemuImg bool) *upEnv {
	t.Helper()
	var se *storEnv
	if withQemuImg {
		se = newStorEnv(t)
	} else {
		se = newNodeEnv(t)
	}
	base := filepath.Dir(se.store)
	e := &upEnv{storEnv: se, up: filepath.Join(base, "up")}
	cfg, err := os.ReadFile(filepath.Join(base, "storage.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, "dir: up\n\tpath "+e.up+"\n\tcontent iso,vztmpl,import\n\n"...)
	if err := os.WriteFile(filepath.Join(base, "storage.cfg"), cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	root, err := pvefs.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(nodes.Methods(nodes.Deps{Privs: se.auth, Tasks: se.tasks,
			Storage: &nodes.StorageDeps{Config: root, MaxUpload: maxUpload}})),
		Auth: se.auth, Mode: api.ModeDaemon, NodeName: "n1", Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.hs = httptest.NewServer(srv)
	t.Cleanup(e.hs.Close)
	for _, u := range []struct {
		name     string
		tk, csrf *string
	}{{"carol", &e.tk, &e.csrf}, {"alice", &e.aliceTk, &e.aliceCSRF}} {
		res, err := se.auth.Login(context.Background(), u.name, pw, "pve", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		*u.tk, *u.csrf = res.Ticket, res.CSRFPreventionToken
	}
	return e
}

// body returns a multipart body: fields, then the file part named name
// holding size bytes of file, then the closing boundary; and its length.
func body(fields [][2]string, name string, file io.Reader, size int64) (io.Reader, int64) {
	var head bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", boundary, f[0], f[1])
	}
	fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"%s\"\r\n"+
		"Content-Type: application/octet-stream\r\n\r\n", boundary, name)
	tail := "\r\n--" + boundary + "--\r\n"
	n := int64(head.Len()) + size + int64(len(tail))
	return io.MultiReader(&head, io.LimitReader(file, size), strings.NewReader(tail)), n
}

// data is a reproducible stream of pseudo-random bytes.
func data(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

func sum(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// envelope is an API answer.
type envelope struct {
	Data    json.RawMessage   `json:"data"`
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors"`
}

// post uploads to storage sid as carol (alice with asAlice); length -1
// sends the body chunked, without Content-Length.
func (e *upEnv) post(sid string, b io.Reader, length int64, asAlice bool) (int, envelope) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.hs.URL+"/api2/json/nodes/n1/storage/"+sid+"/upload", b)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	tk, csrf := e.tk, e.csrf
	if asAlice {
		tk, csrf = e.aliceTk, e.aliceCSRF
	}
	req.Header.Set("Cookie", ticket.CookieHeader(tk))
	req.Header.Set("CSRFPreventionToken", csrf)
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var env envelope
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		e.t.Fatalf("answer %q: %v", raw, err)
	}
	return resp.StatusCode, env
}

// task waits for the task of an upload's answer and returns its exit
// status and log lines.
func (e *upEnv) task(env envelope) (string, []string) {
	e.t.Helper()
	var upid string
	if err := json.Unmarshal(env.Data, &upid); err != nil {
		e.t.Fatalf("answer %s is no UPID: %v", env.Data, err)
	}
	u, err := tasks.Parse(upid)
	if err != nil || u.Type != "imgcopy" || u.ID != "" || u.User != "carol@pve" {
		e.t.Errorf("UPID %q (%v); want an imgcopy task of carol@pve without id", upid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.tasks.Wait(ctx, upid); err != nil {
		e.t.Fatal(err)
	}
	status, err := e.tasks.ExitStatus(upid)
	if err != nil {
		e.t.Fatal(err)
	}
	lines, _, err := e.tasks.ReadLog(upid, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.T)
	}
	return status, out
}

// files lists the files below the storage "up", relative to it.
func (e *upEnv) files() []string {
	var out []string
	_ = filepath.WalkDir(e.up, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.up, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestUploadISO: an ISO image arrives under template/iso with PVE's task
// log, its checksum verified; an upload of the same name replaces it, as
// PVE's copy does.
func TestUploadISO(t *testing.T) {
	e := newUpEnv(t, 0, true)
	const size = 3<<20 + 17
	want := sum(t, io.LimitReader(data(1), size))
	b, n := body([][2]string{{"content", "iso"}, {"checksum-algorithm", "sha256"}, {"checksum", strings.ToUpper(want)}},
		`C:\Users\me\my image (1).iso`, data(1), size)
	code, env := e.post("up", b, n, false)
	if code != http.StatusOK {
		t.Fatalf("upload: %d %+v", code, env)
	}
	status, log := e.task(env)
	dest := filepath.Join(e.up, "template/iso/my_image__1_.iso")
	wantLog := []string{
		"starting file import from: " + e.up + "/template/iso/.pveupload-",
		"calculating checksum...OK, checksum verified",
		"target node: n1",
		"target file: " + dest,
		fmt.Sprintf("file size is: %d", size),
		"finished file import successfully",
		"TASK OK",
	}
	if status != "OK" || len(log) != len(wantLog) {
		t.Fatalf("task %s, log:\n%s", status, strings.Join(log, "\n"))
	}
	for i, w := range wantLog {
		if !strings.HasPrefix(log[i], w) {
			t.Errorf("log line %d = %q; want %q", i+1, log[i], w)
		}
	}
	f, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := sum(t, f); got != want {
		t.Errorf("file sum %s; want %s", got, want)
	}
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v; want 0644", fi.Mode())
	}
	if got := e.files(); !slices.Equal(got, []string{"template/iso/my_image__1_.iso"}) {
		t.Errorf("files %v", got)
	}

	b, n = body([][2]string{{"content", "iso"}}, "my_image__1_.iso", data(2), 1000)
	if code, env = e.post("up", b, n, false); code != http.StatusOK {
		t.Fatalf("second upload: %d %+v", code, env)
	}
	if status, log := e.task(env); status != "OK" {
		t.Fatalf("second upload: %s %v", status, log)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Size() != 1000 {
		t.Errorf("after the second upload: %v %v", fi, err)
	}
}

// TestUploadTaskFailures: a wrong checksum or content that fails PVE's
// checks ends the task with an error and leaves no file.
func TestUploadTaskFailures(t *testing.T) {
	e := newUpEnv(t, 0, true)
	tmp := t.TempDir()
	qcow := func(name string, args ...string) []byte {
		p := filepath.Join(tmp, name)
		out, err := exec.Command("qemu-img", append(append([]string{"create", "-f", "qcow2"}, args...), p, "1M")...).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-img create: %v %s", err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	qcow("base.qcow2")
	backed := qcow("backed.qcow2", "-F", "qcow2", "-b", filepath.Join(tmp, "base.qcow2"))
	tarOf := func(names ...string) []byte {
		dir := t.TempDir()
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("tar", append([]string{"-c", "-C", dir}, names...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		fields  [][2]string
		file    string
		content []byte
		status  string // task exit status (prefix)
		keep    string // the file the upload leaves, relative to "up"
	}{
		{"checksum mismatch", [][2]string{{"content", "iso"}, {"checksum-algorithm", "md5"}, {"checksum", "00"}},
			"a.iso", []byte("data"), "checksum mismatch: got '8d777f385d3dfec8815d20f7496026dc' != expect '00'", ""},
		{"iso with a backing file", [][2]string{{"content", "iso"}}, "b.iso", backed, "backing file not allowed for untrusted image", ""},
		{"qcow2 with a backing file", [][2]string{{"content", "import"}}, "c.qcow2", backed, "backing file not allowed for untrusted image", ""},
		{"raw that is qcow2", [][2]string{{"content", "import"}}, "d.raw", []byte("plain raw data"), "OK", "import/d.raw"},
		{"qcow2 that is raw", [][2]string{{"content", "import"}}, "e.qcow2", []byte("plain raw data"), "qemu-img", ""},
		{"ova without ovf", [][2]string{{"content", "import"}}, "f.ova", tarOf("disk.vmdk"), "ova archive has no .ovf file inside", ""},
		{"ova", [][2]string{{"content", "import"}}, "g.ova", tarOf("vm.ovf", "disk.vmdk"), "OK", "import/g.ova"},
		{"vztmpl", [][2]string{{"content", "vztmpl"}}, "debian.tar.zst", []byte("anything"), "OK", "template/cache/debian.tar.zst"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, n := body(tt.fields, tt.file, bytes.NewReader(tt.content), int64(len(tt.content)))
			code, env := e.post("up", b, n, false)
			if code != http.StatusOK {
				t.Fatalf("upload: %d %+v", code, env)
			}
			status, log := e.task(env)
			if !strings.HasPrefix(status, tt.status) {
				t.Errorf("task status %q; want %q; log:\n%s", status, tt.status, strings.Join(log, "\n"))
			}
			if tt.keep != "" {
				if got, err := os.ReadFile(filepath.Join(e.up, tt.keep)); err != nil || !bytes.Equal(got, tt.content) {
					t.Errorf("%s: %v", tt.keep, err)
				}
				os.Remove(filepath.Join(e.up, tt.keep))
			}
			if f := e.files(); len(f) > 0 {
				t.Errorf("left behind: %v", f)
			}
		})
	}
}

// TestUploadRefused: calls refused before the file is read leave nothing.
func TestUploadRefused(t *testing.T) {
	e := newUpEnv(t, 0, false)
	for _, tt := range []struct {
		name    string
		sid     string
		fields  [][2]string
		file    string
		alice   bool
		code    int
		message string // substring of the message or of a parameter error
	}{
		{"no privilege", "store", [][2]string{{"content", "iso"}}, "a.iso", true, 403, "Permission check failed (/storage/store, Datastore.AllocateTemplate)"},
		{"iso extension", "up", [][2]string{{"content", "iso"}}, "a.qcow2", false, 400, "wrong file extension"},
		{"vztmpl extension", "up", [][2]string{{"content", "vztmpl"}}, "a.tar.lz", false, 400, "wrong file extension"},
		{"import extension", "up", [][2]string{{"content", "import"}}, "a.ovf", false, 400, "invalid filename or wrong extension"},
		{"content", "up", [][2]string{{"content", "images"}}, "a.raw", false, 400, "value 'images' does not have a value in the enumeration"},
		{"content of the storage", "store", [][2]string{{"content", "vztmpl"}}, "a.tar.gz", false, 500, "storage 'store' does not support 'vztmpl' content"},
		{"disabled", "local", [][2]string{{"content", "iso"}}, "a.iso", false, 500, "storage 'local' is disabled"},
		{"other node's storage", "other", [][2]string{{"content", "iso"}}, "a.iso", false, 500, "storage 'other' is not available on node 'n1'"},
		{"no such storage", "none", [][2]string{{"content", "iso"}}, "a.iso", false, 500, "storage 'none' does not exist"},
		{"type", "nas", [][2]string{{"content", "iso"}}, "a.iso", false, 501, "not implemented: storage type 'nfs'"},
		{"checksum without algorithm", "up", [][2]string{{"content", "iso"}, {"checksum", "00"}}, "a.iso", false, 400, "missing property - 'checksum' requires this property"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, n := body(tt.fields, tt.file, data(3), 1<<20)
			code, env := e.post(tt.sid, b, n, tt.alice)
			msg := env.Message
			for k, v := range env.Errors {
				msg += " " + k + ": " + v
			}
			if code != tt.code || !strings.Contains(msg, tt.message) {
				t.Errorf("%d %q; want %d %q", code, msg, tt.code, tt.message)
			}
			if f := e.files(); len(f) > 0 {
				t.Errorf("left behind: %v", f)
			}
		})
	}
}

// TestUploadCutShort: a client that goes away half-way, or sends a
// truncated multipart body, leaves neither the file nor a temporary file.
func TestUploadCutShort(t *testing.T) {
	e := newUpEnv(t, 0, false)
	isoDir := filepath.Join(e.up, "template/iso")

	t.Run("connection closed", func(t *testing.T) {
		b, n := body([][2]string{{"content", "iso"}}, "cut.iso", data(4), 32<<20)
		c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api2/json/nodes/n1/storage/up/upload HTTP/1.1\r\nHost: n1\r\n"+
			"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n"+
			"Cookie: %s\r\nCSRFPreventionToken: %s\r\n\r\n", boundary, n, ticket.CookieHeader(e.tk), e.csrf)
		if _, err := io.CopyN(c, b, n/2); err != nil {
			t.Fatal(err)
		}
		// The temporary file fills while the body arrives...
		waitFor(t, "a temporary file with data", func() bool {
			ents, _ := os.ReadDir(isoDir)
			for _, d := range ents {
				if fi, err := d.Info(); err == nil && strings.HasPrefix(d.Name(), ".pveupload-") && fi.Size() > 0 {
					return true
				}
			}
			return false
		})
		c.Close()
		// ...and goes when the connection does.
		waitFor(t, "no file left", func() bool { return len(e.files()) == 0 })
	})

	t.Run("no closing boundary", func(t *testing.T) {
		var b bytes.Buffer
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\niso\r\n"+
			"--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"t.iso\"\r\n\r\n", boundary, boundary)
		if _, err := io.CopyN(&b, data(5), 1<<20); err != nil {
			t.Fatal(err)
		}
		code, env := e.post("up", bytes.NewReader(b.Bytes()), int64(b.Len()), false)
		if code != http.StatusBadRequest || !strings.Contains(env.Message, "upload failed") {
			t.Errorf("%d %+v; want 400 upload failed", code, env)
		}
		if f := e.files(); len(f) > 0 {
			t.Errorf("left behind: %v", f)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUploadLimit: a file over the bound is refused up front when the
// body's length says so, and while it streams when it does not.
func TestUploadLimit(t *testing.T) {
	const max = 4 << 20
	e := newUpEnv(t, max, false)
	for _, tt := range []struct {
		name    string
		chunked bool
		size    int64
		code    int
	}{
		{"fits", false, max, 200},
		{"too large", false, max + 2<<20, 413},
		{"too large, no length", true, max + 1, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, n := body([][2]string{{"content", "vztmpl"}}, "big.tar", data(6), tt.size)
			if tt.chunked {
				n = -1
			}
			code, env := e.post("up", b, n, false)
			if code != tt.code {
				t.Fatalf("%d %+v; want %d", code, env, tt.code)
			}
			if code == 200 {
				if status, log := e.task(env); status != "OK" {
					t.Fatalf("task %s %v", status, log)
				}
				os.Remove(filepath.Join(e.up, "template/cache/big.tar"))
			} else if !strings.Contains(env.Message, "exceeds the upload limit of storage 'up' (4194304 bytes)") {
				t.Errorf("message %q", env.Message)
			}
			if f := e.files(); len(f) > 0 {
				t.Errorf("left behind: %v", f)
			}
		})
	}
}

// TestUploadStaleTemporaryFiles: an upload removes the temporary files
// that no write touched for an hour (a pvedaemon died mid-upload) and
// keeps the others.
func TestUploadStaleTemporaryFiles(t *testing.T) {
	e := newUpEnv(t, 0, false)
	dir := filepath.Join(e.up, "template/cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".pveupload-"+strings.Repeat("ab", 16))
	fresh := filepath.Join(dir, ".pveupload-"+strings.Repeat("cd", 16))
	other := filepath.Join(dir, ".pveupload-mine.tar")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	b, n := body([][2]string{{"content", "vztmpl"}}, "x.tar", data(7), 10)
	code, env := e.post("up", b, n, false)
	if code != 200 {
		t.Fatalf("upload: %d %+v", code, env)
	}
	e.task(env)
	for p, want := range map[string]bool{stale: false, fresh: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists: %v; want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// TestUploadBoundedMemory streams a 256 MiB file through pvedaemon's API
// server: the process (client included) allocates a small fraction of it
// and its heap stays small.
func TestUploadBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	e := newUpEnv(t, 0, false)
	const size = 256 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // samples the heap until stop
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	b, n := body([][2]string{{"content", "vztmpl"}, {"checksum-algorithm", "sha512"}, {"checksum", "x"}}, "big.tar.xz", data(8), size)
	code, env := e.post("up", b, n, false)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if code != 200 {
		t.Fatalf("upload: %d %+v", code, env)
	}
	// The checksum is wrong on purpose: the task ends without renaming.
	if status, _ := e.task(env); !strings.HasPrefix(status, "checksum mismatch") {
		t.Errorf("task %q", status)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("256 MiB upload in %v (%.0f MiB/s): allocated %d KiB, peak heap in use %d KiB (before %d KiB)",
		elapsed.Round(time.Millisecond), float64(size>>20)/elapsed.Seconds(), alloc>>10, peak>>10, before.HeapInuse>>10)
	if alloc > 16<<20 {
		t.Errorf("allocated %d bytes for a %d byte upload", alloc, size)
	}
	if peak > before.HeapInuse+32<<20 {
		t.Errorf("heap in use peaked at %d bytes (before: %d)", peak, before.HeapInuse)
	}
}
