package nodes

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// uploadMethod declares POST /nodes/{node}/storage/{storage}/upload (PVE's
// API2::Storage::Status upload). The file streams from the client through
// pveproxy into a temporary file in the target directory; a task "imgcopy"
// verifies it and renames it into place. See docs/storage.md.
func (d Deps) uploadMethod() api.Method {
	return api.Method{
		Name: "upload", Path: "/nodes/{node}/storage/{storage}/upload", HTTP: "POST",
		Description: "Upload templates, ISO images, OVAs and VM images.",
		Protected:   true,
		Upload:      true,
		Permissions: api.Permissions{Check: []any{"perm", "/storage/{storage}", []any{"Datastore.AllocateTemplate"}}},
		Params: map[string]*api.Schema{
			"checksum":           api.Str().Opt().Req("checksum-algorithm").TT("<string>"),
			"checksum-algorithm": api.Str().Enums("md5", "sha1", "sha224", "sha256", "sha384", "sha512").Opt().Req("checksum"),
			"content":            api.Str().Fmt("pve-storage-content").Enums("iso", "vztmpl", "import"),
			"filename":           api.Str().MaxLen(255).TT("<string>"),
			"node":               api.Str().Fmt("pve-node").TT("<string>"),
			"storage":            api.Str().Fmt("pve-storage-id").TT("<storage ID>"),
			// Declared as PVE does; the API layer refuses it (stream.go).
			"tmpfilename": api.Str().Pat("/var/tmp/pveupload-[0-9a-f]+").Opt(),
		},
		Returns: api.Str(),
		Handle:  d.upload,
	}
}

// Upload file names per content type (PVE's ISO_EXT_RE_0, VZTMPL_EXT_RE_1
// and SAFE_CHAR_CLASS_RE with UPLOAD_IMPORT_EXT_RE_1), checked after
// normalizeFilename.
var (
	uploadISORe    = regexp.MustCompile(`(?i)[^/]+\.(?:iso|img)$`)
	uploadVZTmplRe = regexp.MustCompile(`(?i)[^/]+\.tar(?:\.(?:gz|xz|zst|bz2))?$`)
	uploadImportRe = regexp.MustCompile(`[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$`)
	unsafeCharRe   = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)
	// uploadTempRe matches the temporary files of uploads in progress.
	uploadTempRe = regexp.MustCompile(`^\.pveupload-[0-9a-f]{32}$`)
)

const (
	// uploadTempPrefix starts the name of an upload's temporary file in
	// the target directory; no listed name can take it (content names need
	// an extension).
	uploadTempPrefix = ".pveupload-"
	// staleUpload is the age after which a temporary file no write
	// touched is taken as left behind by a pvedaemon that died mid-upload.
	// A live upload writes at least every api.DefaultUploadIdleTimeout.
	staleUpload = time.Hour
	// uploadSlack is what a body may hold besides the file (parameters,
	// part headers, boundaries) before the size is compared with the free
	// space up front.
	uploadSlack = 1 << 20
	// uploadBuf is the size of the copy buffer of one upload.
	uploadBuf = 256 << 10
)

// normalizeFilename is PVE's normalize_content_filename: the part after the
// last slash or backslash, with every character but ASCII letters, digits,
// '_', '.' and '-' replaced by '_'.
func normalizeFilename(name string) string {
	name = strings.TrimSuffix(name, "\n")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return unsafeCharRe.ReplaceAllString(name, "_")
}

// uploadTarget is where an upload goes and what the task checks.
type uploadTarget struct {
	storage string
	dir     string // target directory
	name    string // normalized file name
	content string // iso, vztmpl or import
	format  string // import: the image format, "ova" for an OVA archive
	limit   int64  // largest file accepted
	why     string // what limit is
}

// checkUpload validates an upload's parameters and storage as PVE's upload
// does before its worker runs, and prepares the target directory.
func (d Deps) checkUpload(ctx context.Context, r *api.Request) (*uploadTarget, error) {
	p := r.Params
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	node := p.Get("node")
	if node == "localhost" {
		node = r.NodeName
	}
	s, err := section(cfg, p.Get("storage"))
	if err != nil {
		return nil, err
	}
	if err := checkEnabled(s, node); err != nil {
		return nil, err
	}
	if opt(s, "path") == "" {
		return nil, fmt.Errorf("can't upload to storage type '%s'", s.Type)
	}
	dir, err := d.dirOf(s)
	if err != nil {
		return nil, err
	}
	t := &uploadTarget{storage: s.ID, content: p.Get("content"), name: normalizeFilename(p.Get("filename"))}
	var vtype string
	switch t.content {
	case "iso":
		if !uploadISORe.MatchString(t.name) {
			return nil, api.ParamError(map[string]string{"filename": "wrong file extension"})
		}
		vtype = storage.VTypeISO
	case "vztmpl":
		if !uploadVZTmplRe.MatchString(t.name) {
			return nil, api.ParamError(map[string]string{"filename": "wrong file extension"})
		}
		vtype = storage.VTypeVZTmpl
	case "import":
		m := uploadImportRe.FindStringSubmatch(t.name)
		if m == nil {
			return nil, api.ParamError(map[string]string{"filename": "invalid filename or wrong extension"})
		}
		t.format = m[1]
		vtype = storage.VTypeImport
	default:
		return nil, api.ParamError(map[string]string{"content": fmt.Sprintf("upload content type '%s' not allowed", t.content)})
	}
	if !s.HasContent(t.content) {
		return nil, fmt.Errorf("storage '%s' does not support '%s' content", s.ID, t.content)
	}
	if node != r.NodeName {
		// PVE copies the file to that node with scp; this build has no
		// other nodes to reach.
		return nil, fmt.Errorf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", node, node)
	}
	if t.dir, err = dir.SubDir(vtype); err != nil {
		return nil, err
	}
	if err := dir.Activate(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(t.dir, &st); err != nil {
		return nil, fmt.Errorf("unable to get free space of '%s': %v", t.dir, err)
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	t.limit, t.why = int64(min(st.Bavail*bs, 1<<62)), "free space"
	if max := d.Storage.MaxUpload; max > 0 && max < t.limit {
		t.limit, t.why = max, "upload limit"
	}
	return t, nil
}

// upload is POST .../upload: the file is received into a temporary file in
// the target directory during the call (hashed as it arrives when a
// checksum is given), then a task "imgcopy" verifies it and renames it
// into place (replacing a file of that name, as PVE's copy does).
func (d Deps) upload(ctx context.Context, r *api.Request) (any, error) {
	if r.Upload == nil {
		return nil, api.Errorf(http.StatusBadRequest, "upload failed - no file part 'filename' in the request")
	}
	if d.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	t, err := d.checkUpload(ctx, r)
	if err != nil {
		return nil, err
	}
	if max := r.Upload.MaxSize; max > t.limit+uploadSlack {
		return nil, api.Errorf(http.StatusRequestEntityTooLarge,
			"upload of %d bytes exceeds the %s of storage '%s' (%d bytes)", max, t.why, t.storage, t.limit)
	}
	algo := r.Params.Get("checksum-algorithm")
	f, size, sum, err := receive(t, r.Upload, algo)
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	spec := tasks.TaskSpec{Type: "imgcopy", User: r.Identity.AuthID}
	want := r.Params.Get("checksum")
	node, qemuImg := r.NodeName, d.Storage.Dir.QemuImg
	upid, err := d.Tasks.Start(ctx, spec, func(ctx context.Context, l *tasks.Log) error {
		err := importUpload(ctx, l, f, t, node, size, algo, sum, want, qemuImg)
		if err != nil {
			if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				l.Warnf("unable to clean up temporary file '%s' - %v", tmp, rerr)
			}
		}
		return err
	})
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return upid.String(), nil
}

// receive writes the file to a new temporary file in t.dir and returns it
// open, with its size and, when algo is set, its hex digest. On any error
// the temporary file is removed.
func receive(t *uploadTarget, up *api.Upload, algo string) (f *os.File, size int64, sum string, err error) {
	removeStaleUploads(t.dir)
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	path := filepath.Join(t.dir, uploadTempPrefix+hex.EncodeToString(rnd[:]))
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, 0, "", fmt.Errorf("unable to create temporary upload file '%s': %v", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	var h hash.Hash
	if algo != "" {
		h = newHash(algo)
	}
	buf := make([]byte, uploadBuf)
	for {
		n, rerr := fill(up, buf)
		if n > 0 {
			size += int64(n)
			if size > t.limit {
				return nil, 0, "", api.Errorf(http.StatusRequestEntityTooLarge,
					"upload exceeds the %s of storage '%s' (%d bytes)", t.why, t.storage, t.limit)
			}
			if h != nil {
				h.Write(buf[:n])
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				return nil, 0, "", fmt.Errorf("write to temporary file failed - %v", werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, 0, "", rerr
		}
	}
	if h != nil {
		sum = hex.EncodeToString(h.Sum(nil))
	}
	return f, size, sum, nil
}

// fill reads from r until buf is full or r fails; it returns io.EOF only
// with the last bytes.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// removeStaleUploads removes the temporary files of uploads in dir that a
// pvedaemon stopped mid-way left behind.
func removeStaleUploads(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !uploadTempRe.MatchString(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleUpload {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func newHash(algo string) hash.Hash {
	switch algo {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha224":
		return sha256.New224()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return sha256.New()
}

// importUpload is the worker of an upload, with PVE's log lines: it
// checks the checksum and the content, then makes the file durable and
// renames it into place. f is the open temporary file.
func importUpload(ctx context.Context, l *tasks.Log, f *os.File, t *uploadTarget, node string,
	size int64, algo, sum, want string, q storage.QemuImg) error {
	tmp := f.Name()
	defer f.Close()
	l.Printf("starting file import from: %s", tmp)
	if algo != "" {
		// One line: "calculating checksum...OK, checksum verified".
		_, _ = io.WriteString(l, "calculating checksum...")
		if !strings.EqualFold(sum, want) {
			_, _ = io.WriteString(l, "\n")
			return fmt.Errorf("checksum mismatch: got '%s' != expect '%s'", sum, want)
		}
		l.Print("OK, checksum verified")
	}
	switch {
	case t.content == "iso":
		if err := checkUntrustedImage(ctx, q, tmp, ""); err != nil {
			return err
		}
	case t.format == "ova":
		if err := checkOVA(ctx, tmp); err != nil {
			return err
		}
	case t.format != "":
		if err := checkUntrustedImage(ctx, q, tmp, t.format); err != nil {
			return err
		}
	}
	dest := t.dir + "/" + t.name
	l.Printf("target node: %s", node)
	l.Printf("target file: %s", dest)
	l.Printf("file size is: %d", size)
	// PVE copies the file (cp, or scp to another node); it is renamed here,
	// in the same directory, so the name appears only with the whole file.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("import failed: %v", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("import failed: %v", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("import failed: %v", err)
	}
	if d, err := os.Open(t.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	l.Print("finished file import successfully")
	return nil
}

// checkUntrustedImage is PVE's file_size_info with untrusted set (and
// assert_iso_content for format ""): qemu-img must read the file, and it
// may not refer to other files (storage.CheckUntrusted).
func checkUntrustedImage(ctx context.Context, q storage.QemuImg, path, format string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := q.UntrustedInfo(ctx, path, format)
	return err
}

// checkOVA is PVE's assert_ova_contents: the file is a tar archive with a
// .ovf file inside.
func checkOVA(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tar", "-t", "-f", path)
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("command 'tar -t -f %s' failed: %s", path, msg)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, ".ovf") {
			return nil
		}
	}
	return errors.New("ova archive has no .ovf file inside")
}
