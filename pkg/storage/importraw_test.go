package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replicaImage is a size-byte disk image, mostly zeros, with random data
// in a few places (some not chunk-aligned) and at the very end.
func replicaImage(seed byte, size int) []byte {
	img := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{seed})
	for _, ext := range [][2]int{{0, 4096}, {1<<20 + 123, 100 << 10}, {5<<20 - 7, 70000}, {size - 4096, 4096}} {
		_, _ = rng.Read(img[ext[0] : ext[0]+ext[1]])
	}
	return img
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// rawContent returns the guest-visible content of the image at path:
// the file itself for raw, else qemu-img's raw conversion of it.
func rawContent(t *testing.T, path, format string) []byte {
	t.Helper()
	if format == "raw" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := filepath.Join(t.TempDir(), "content.raw")
	if b, err := exec.Command(DefaultQemuImg, "convert", "-f", format, "-O", "raw", path, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v %s", path, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames lists the names in dir, dot files included.
// dirNames lists dir without the replicas' checksum files, which belong
// with them (replicadelta.go).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pvenode-sums") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestImportRaw imports a replica as raw, qcow2 and vmdk, then replaces
// it: the guest sees exactly the data streamed, zero areas stay
// unallocated, and nothing but the volume is left in its directory.
func TestImportRaw(t *testing.T) {
	needQemuImg(t)
	const size = 16 << 20
	first, second := replicaImage(1, size), replicaImage(2, size)
	for _, format := range []string{"raw", "qcow2", "vmdk"} {
		t.Run(format, func(t *testing.T) {
			d, root := newTestDir(t, "")
			volname := "100/vm-100-disk-0." + format
			path := filepath.Join(root, "images", volname)
			for i, img := range [][]byte{first, second} {
				if err := d.ImportRaw(context.Background(), volname, size, bytes.NewReader(img)); err != nil {
					t.Fatalf("import %d: %v", i+1, err)
				}
				if got := rawContent(t, path, format); len(got) != size || sha(got) != sha(img) {
					t.Fatalf("import %d: content %d bytes, sha256 %s; want %d bytes, %s", i+1, len(got), sha(got), size, sha(img))
				}
				info, err := d.opt.QemuImg.Info(context.Background(), path, format)
				if err != nil || info.VirtualSize != size {
					t.Fatalf("import %d: qemu-img info %+v %v", i+1, info, err)
				}
				var st syscall.Stat_t
				if err := syscall.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				if used := st.Blocks * 512; used > size/4 {
					t.Errorf("import %d: %d bytes allocated for a mostly zero %d byte image", i+1, used, size)
				}
				fi, _ := os.Stat(path)
				if fi.Mode().Perm() != 0o640 {
					t.Errorf("import %d: mode %v; want 0640", i+1, fi.Mode())
				}
				if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"vm-100-disk-0." + format}) {
					t.Errorf("import %d: image directory holds %v", i+1, names)
				}
			}
			list, err := d.List(context.Background(), ListOptions{VMID: 100})
			if err != nil || len(list) != 1 || list[0].VolID != "st:"+volname || list[0].Size != size {
				t.Errorf("List = %+v, %v", list, err)
			}
		})
	}
}

// cancelAt is a reader of data that cancels a context once it has
// returned at bytes.
type cancelAt struct {
	r      io.Reader
	at     int64
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAt) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.at {
		c.cancel()
	}
	return n, err
}

// TestImportRawFailures: a stream of the wrong length, a failing stream or
// a cancelled import leaves the previous replica as it was and no
// temporary file.
func TestImportRawFailures(t *testing.T) {
	needQemuImg(t)
	const size = 8 << 20
	old, img := replicaImage(3, size), replicaImage(4, size)
	readErr := errors.New("connection reset")
	for _, format := range []string{"raw", "qcow2"} {
		for _, tt := range []struct {
			name   string
			stream func(cancel context.CancelFunc) io.Reader
			want   error  // errors.Is the import's error
			msg    string // in the import's error
		}{
			{"too short", func(context.CancelFunc) io.Reader { return bytes.NewReader(img[:size-1]) },
				ErrStreamSize, "stream ended after 8388607 of 8388608 bytes"},
			{"empty", func(context.CancelFunc) io.Reader { return bytes.NewReader(nil) },
				ErrStreamSize, "stream ended after 0 of 8388608 bytes"},
			{"too long", func(context.CancelFunc) io.Reader {
				return io.MultiReader(bytes.NewReader(img), strings.NewReader("x"))
			},
				ErrStreamSize, "stream holds more than 8388608 bytes"},
			{"read error", func(context.CancelFunc) io.Reader {
				return io.MultiReader(bytes.NewReader(img[:size/2]), iotestErr{readErr})
			}, readErr, "read stream at byte 4194304"},
			{"read error at the end", func(context.CancelFunc) io.Reader {
				return io.MultiReader(bytes.NewReader(img), iotestErr{readErr})
			}, readErr, "read stream at byte 8388608"},
			{"cancelled", func(cancel context.CancelFunc) io.Reader {
				return &cancelAt{r: bytes.NewReader(img), at: size / 2, cancel: cancel}
			}, context.Canceled, "context canceled"},
			{"cancelled at the end", func(cancel context.CancelFunc) io.Reader {
				return &cancelAt{r: bytes.NewReader(img), at: size, cancel: cancel}
			}, context.Canceled, "context canceled"},
		} {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				d, root := newTestDir(t, "")
				volname := "100/vm-100-disk-1." + format
				path := filepath.Join(root, "images", volname)
				if err := d.ImportRaw(context.Background(), volname, size, bytes.NewReader(old)); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				err := d.ImportRaw(ctx, volname, size, tt.stream(cancel))
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) ||
					!strings.Contains(err.Error(), "import of '"+volname+"' on storage 'st'") {
					t.Errorf("ImportRaw = %v; want %v with %q", err, tt.want, tt.msg)
				}
				if got := rawContent(t, path, format); sha(got) != sha(old) {
					t.Errorf("the previous replica changed")
				}
				if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"vm-100-disk-1." + format}) {
					t.Errorf("image directory holds %v", names)
				}
			})
		}
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// TestImportRawRefused: what ImportRaw refuses before it reads the stream.
func TestImportRawRefused(t *testing.T) {
	d, root := newTestDir(t, "")
	for _, tt := range []struct {
		name    string
		volname string
		size    int64
		msg     string
	}{
		{"iso", "iso/x.iso", 1024, "not a plain disk image"},
		{"backup", "backup/vzdump-qemu-100-2024_01_01-00_00_00.vma", 1024, "not a plain disk image"},
		{"linked clone", "100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2", 1024, "not a plain disk image"},
		{"subvol", "100/subvol-100-disk-0.subvol", 1024, "cannot import a replica as 'subvol-100-disk-0.subvol'"},
		{"free name", "100/disk.raw", 1024, "cannot import a replica as 'disk.raw'"},
		{"other owner", "100/vm-101-disk-0.raw", 1024, "image name does not belong to VM 100"},
		{"owner with a leading zero", "0100/vm-100-disk-0.raw", 1024, "image name does not belong to VM 100"},
		{"outside", "100/../../x.raw", 1024, "unable to parse"},
		{"garbage", "nothing", 1024, "unable to parse directory volume name 'nothing'"},
		{"size 0", "100/vm-100-disk-0.raw", 0, "invalid size 0"},
		{"qcow2 size", "100/vm-100-disk-0.qcow2", 1000, "size 1000 is not a multiple of 512 bytes"},
		{"no space", "100/vm-100-disk-0.raw", 1 << 62, "not enough free space on storage 'st' for a 4611686018427387904 byte image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := d.ImportRaw(context.Background(), tt.volname, tt.size, strings.NewReader("data"))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ImportRaw(%q, %d) = %v; want %q", tt.volname, tt.size, err, tt.msg)
			}
		})
	}
	if names, _ := os.ReadDir(filepath.Join(root, "images", "100")); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}

	noImages, _ := newTestDir(t, "")
	noImages.Section.Options["content"] = "iso,backup"
	err := noImages.ImportRaw(context.Background(), "100/vm-100-disk-0.raw", 4, strings.NewReader("data"))
	if err == nil || err.Error() != "storage 'st' does not support vm images" {
		t.Errorf("ImportRaw on a storage without images = %v", err)
	}
}

// TestImportRawOddSize: a raw image need not be a whole number of
// sectors; its size is kept to the byte.
func TestImportRawOddSize(t *testing.T) {
	d, root := newTestDir(t, "")
	data := append(make([]byte, 70000), "tail"...)
	if err := d.ImportRaw(context.Background(), "100/vm-100-disk-0.raw", int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "images/100/vm-100-disk-0.raw"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("content %d bytes (%v); want %d", len(got), err, len(data))
	}
}

// TestRemoveStaleImports: an import removes the temporary files of
// imports that stopped changing an hour ago, and only those.
func TestRemoveStaleImports(t *testing.T) {
	d, root := newTestDir(t, "")
	dir := filepath.Join(root, "images", "100")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := func(c string) string { return importTempPrefix + strings.Repeat(c, 32) }
	old := time.Now().Add(-2 * time.Hour)
	files := []struct {
		name  string
		old   bool
		stays bool
	}{
		{name("a"), true, false},          // stale
		{name("b"), true, true},           // raw file old, but its conversion runs
		{name("b") + ".out", false, true}, //
		{name("c"), false, true},          // running
		{".pvenode-replica-mine", true, true},
		{"vm-100-disk-9.raw", true, true},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if f.old {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.ImportRaw(context.Background(), "100/vm-100-disk-0.raw", 4, strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f.name)); (err == nil) != f.stays {
			t.Errorf("%s exists: %v; want %v", f.name, err == nil, f.stays)
		}
	}
}
