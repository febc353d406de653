package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// replEnv is pvedaemon's API server of node n1 on a real HTTP listener,
// with a dir storage "rep" for images, and guests 100 (configured on n2,
// replicated here) and 200 (configured on n1).
type replEnv struct {
	t    *testing.T
	hs   *httptest.Server
	rep  string // path of the storage "rep"
	auth map[string][2]string
}

func newReplEnv(t *testing.T) *replEnv {
	t.Helper()
	dir := t.TempDir()
	e := &replEnv{t: t, rep: filepath.Join(dir, "rep"), auth: map[string][2]string{}}
	env := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"storage.cfg": "dir: rep\n\tpath " + e.rep + "\n\tcontent images,rootdir\n\n" +
			"dir: isos\n\tpath " + filepath.Join(dir, "isos") + "\n\tcontent iso\n\n" +
			"dir: off\n\tpath " + filepath.Join(dir, "off") + "\n\tcontent images\n\tdisable 1\n\n" +
			"nfs: nas\n\texport /srv\n\tpath /mnt/pve/nas\n\tserver 192.0.2.1\n\tcontent images\n\n",
		"user.cfg": apitest.RootUser + "user:carol@pve:1:0:::::\n" +
			"acl:1:/:carol@pve:Administrator:\n",
		"nodes/n2/qemu-server/100.conf": "memory: 512\n",
		"nodes/n1/qemu-server/200.conf": "memory: 512\n",
	}})
	srv, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(nodes.Methods(nodes.Deps{Privs: env.Auth,
			Storage: &nodes.StorageDeps{Config: env.Root}})),
		Auth: env.Auth, Mode: api.ModeDaemon, NodeName: apitest.Node, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.hs = httptest.NewServer(srv)
	t.Cleanup(e.hs.Close)
	for _, u := range [][2]string{{"root", "pam"}, {"carol", "pve"}} {
		res, err := env.Auth.Login(context.Background(), u[0], apitest.Password, u[1], "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		e.auth[u[0]] = [2]string{res.Ticket, res.CSRFPreventionToken}
	}
	return e
}

// replicaBody is the multipart body of an import of size bytes from
// image into volume of storage sid.
func replicaBody(volume string, size int64, image io.Reader) (io.Reader, int64) {
	return body([][2]string{{"volume", volume}, {"size", strconv.FormatInt(size, 10)}}, "replica.raw", image, size)
}

// post sends a replica import to storage sid as user (root or carol).
func (e *replEnv) post(user, sid string, b io.Reader, length int64) (int, envelope) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.hs.URL+"/api2/json/nodes/n1/storage/"+sid+"/pvenode-replica", b)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set("Cookie", ticket.CookieHeader(e.auth[user][0]))
	req.Header.Set("CSRFPreventionToken", e.auth[user][1])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatalf("import: %v", err)
	}
	defer resp.Body.Close()
	var env envelope
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		e.t.Fatalf("answer %q: %v", raw, err)
	}
	return resp.StatusCode, env
}

// files lists the files below the storage "rep", relative to it, dot
// files (temporary files) included, but not the replicas' checksum files.
func (e *replEnv) files() []string {
	var out []string
	_ = filepath.WalkDir(e.rep, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".pvenode-sums") {
			rel, _ := filepath.Rel(e.rep, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// sparseImage is size bytes of zeros with random data at the start and
// in the middle.
func sparseImage(seed byte, size int64) []byte {
	img := make([]byte, size)
	_, _ = io.ReadFull(data(seed), img[:1<<20])
	_, _ = io.ReadFull(data(seed+1), img[size/2:size/2+300<<10])
	return img
}

// TestReplicaImport: root@pam imports a replica as qcow2 and then replaces
// it; the call answers null once the volume is in place.
func TestReplicaImport(t *testing.T) {
	if _, err := os.Stat(storage.DefaultQemuImg); err != nil {
		t.Skip("qemu-img not installed")
	}
	e := newReplEnv(t)
	const size = 16 << 20
	path := filepath.Join(e.rep, "images/100/vm-100-disk-0.qcow2")
	for i, seed := range []byte{10, 20} {
		img := sparseImage(seed, size)
		volume := "100/vm-100-disk-0.qcow2"
		if i == 1 {
			volume = "rep:" + volume // a full volume ID works as well
		}
		b, n := replicaBody(volume, size, bytes.NewReader(img))
		code, env := e.post("root", "rep", b, n)
		if code != http.StatusOK || string(env.Data) != "null" {
			t.Fatalf("import %d: %d %s %+v", i+1, code, env.Data, env)
		}
		out := filepath.Join(t.TempDir(), "c.raw")
		if b, err := exec.Command(storage.DefaultQemuImg, "convert", "-f", "qcow2", "-O", "raw", path, out).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v %s", err, b)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sum(t, f), sum(t, bytes.NewReader(img)); got != want {
			t.Errorf("import %d: content %s; want %s", i+1, got, want)
		}
		f.Close()
		if got := e.files(); !slices.Equal(got, []string{"images/100/vm-100-disk-0.qcow2"}) {
			t.Errorf("import %d: files %v", i+1, got)
		}
	}
}

// TestReplicaImportRefused: calls refused before anything is written.
func TestReplicaImportRefused(t *testing.T) {
	e := newReplEnv(t)
	for _, tt := range []struct {
		name    string
		user    string
		sid     string
		volume  string
		size    int64 // announced; the body holds 4096 bytes
		code    int
		message string // substring of the message or of a parameter error
	}{
		{"not root", "carol", "rep", "100/vm-100-disk-0.raw", 4096, 403, "Permission check failed (user != root@pam)"},
		{"guest on this node", "root", "rep", "200/vm-200-disk-0.raw", 4096, 400,
			"guest 200 is configured on this node (n1): refusing to overwrite its disk 'rep:200/vm-200-disk-0.raw' with a replica"},
		{"not an image", "root", "isos", "iso/x.iso", 4096, 400, "'iso/x.iso' is not a plain guest disk image"},
		{"no images on the storage", "root", "isos", "100/vm-100-disk-0.raw", 4096, 400, "storage 'isos' does not support vm images"},
		{"disabled storage", "root", "off", "100/vm-100-disk-0.raw", 4096, 500, "storage 'off' is disabled"},
		{"not a dir storage", "root", "nas", "100/vm-100-disk-0.raw", 4096, 400, "storage 'nas' is of type 'nfs'"},
		{"no such storage", "root", "none", "100/vm-100-disk-0.raw", 4096, 500, "storage 'none' does not exist"},
		{"other storage's volume", "root", "rep", "isos:100/vm-100-disk-0.raw", 4096, 400, "storage ID mismatch (isos != rep)"},
		{"linked clone", "root", "rep", "100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2", 4096, 400, "is not a plain guest disk image"},
		{"size 0", "root", "rep", "100/vm-100-disk-0.raw", 0, 400, "size"},
		{"body too small for size", "root", "rep", "100/vm-100-disk-0.raw", 1 << 20, 400, "cannot hold the 1048576 byte image"},
		{"body far larger than size", "root", "rep", "100/vm-100-disk-0.raw", 1, 413, "exceeds the 1 byte image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, n := body([][2]string{{"volume", tt.volume}, {"size", strconv.FormatInt(tt.size, 10)}}, "r.raw", data(3), 4096)
			if tt.name == "body far larger than size" {
				b, n = body([][2]string{{"volume", tt.volume}, {"size", "1"}}, "r.raw", data(3), 1<<20)
			}
			code, env := e.post(tt.user, tt.sid, b, n)
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

// TestReplicaImportCutShort: a body that ends early (client gone, or the
// multipart body truncated) or holds a file of the wrong size leaves the
// previous replica as it was and no temporary file.
func TestReplicaImportCutShort(t *testing.T) {
	e := newReplEnv(t)
	const size = 32 << 20
	volume := "100/vm-100-disk-0.raw"
	path := filepath.Join(e.rep, "images", volume)
	old := sparseImage(30, 1<<20)
	b, n := replicaBody(volume, int64(len(old)), bytes.NewReader(old))
	if code, env := e.post("root", "rep", b, n); code != 200 {
		t.Fatalf("first import: %d %+v", code, env)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, old) {
			t.Errorf("the previous replica changed (%v)", err)
		}
		if f := e.files(); !slices.Equal(f, []string{"images/" + volume}) {
			t.Errorf("files %v", f)
		}
	}

	t.Run("connection closed", func(t *testing.T) {
		b, n := replicaBody(volume, size, data(31))
		c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api2/json/nodes/n1/storage/rep/pvenode-replica HTTP/1.1\r\nHost: n1\r\n"+
			"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n"+
			"Cookie: %s\r\nCSRFPreventionToken: %s\r\n\r\n", boundary, n, ticket.CookieHeader(e.auth["root"][0]), e.auth["root"][1])
		if _, err := io.CopyN(c, b, n/2); err != nil {
			t.Fatal(err)
		}
		// The temporary file fills while the body arrives...
		waitFor(t, "a temporary file with data", func() bool {
			ents, _ := os.ReadDir(filepath.Dir(path))
			for _, d := range ents {
				if fi, err := d.Info(); err == nil && strings.HasPrefix(d.Name(), ".pvenode-replica-") && fi.Size() > 0 {
					return true
				}
			}
			return false
		})
		c.Close()
		// ...and goes when the connection does.
		waitFor(t, "no temporary file left", func() bool { return len(e.files()) == 1 })
		unchanged(t)
	})

	t.Run("no closing boundary", func(t *testing.T) {
		var b bytes.Buffer
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"volume\"\r\n\r\n%s\r\n"+
			"--%s\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n%d\r\n"+
			"--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"r.raw\"\r\n\r\n",
			boundary, volume, boundary, 1<<20, boundary)
		if _, err := io.CopyN(&b, data(32), 1<<20); err != nil {
			t.Fatal(err)
		}
		code, env := e.post("root", "rep", bytes.NewReader(b.Bytes()), int64(b.Len()))
		if code != http.StatusBadRequest || !strings.Contains(env.Message, "upload failed") {
			t.Errorf("%d %+v; want 400 upload failed", code, env)
		}
		unchanged(t)
	})

	for _, tt := range []struct {
		name      string
		announced int64
		sent      int64
		message   string
	}{
		{"file shorter than size", 1 << 20, 1<<20 - 512, "stream ended after 1048064 of 1048576 bytes"},
		{"file longer than size", 1 << 20, 1<<20 + 512, "stream holds more than 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Sent chunked: a Content-Length would give the size away
			// before the file is read.
			b, _ := body([][2]string{{"volume", volume}, {"size", strconv.FormatInt(tt.announced, 10)}}, "r.raw", data(33), tt.sent)
			code, env := e.post("root", "rep", b, -1)
			if code != http.StatusBadRequest || !strings.Contains(env.Message, tt.message) {
				t.Errorf("%d %+v; want 400 %q", code, env, tt.message)
			}
			unchanged(t)
		})
	}
}
