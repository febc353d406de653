package pvestatd

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/nodestatus"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// hangFS is a FUSE file system whose statfs blocks until release is
// closed: a real hung mount, as a dead NFS server leaves one (the kernel
// waits on the file system, and so does the statfs system call).
type hangFS struct {
	fs.Inode
	release chan struct{}
}

var _ fs.NodeStatfser = (*hangFS)(nil)

func (h *hangFS) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	<-h.release
	out.Blocks, out.Bfree, out.Bavail, out.Bsize = 100, 50, 50, 4096
	return 0
}

// mountHang mounts a hangFS at dir; it skips where FUSE cannot be used.
func mountHang(t *testing.T, dir string) *hangFS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	h := &hangFS{release: make(chan struct{})}
	srv, err := fs.Mount(dir, h, &fs.Options{MountOptions: fuse.MountOptions{DirectMount: true, FsName: "hangfs"}})
	if err != nil {
		t.Skip("FUSE mount not possible here: ", err)
	}
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		_ = srv.Unmount()
	})
	return h
}

func storageRec(st *clusterstate.NodeState, id string) clusterstate.Storage {
	for _, s := range st.Storages {
		if s.ID == id {
			return s
		}
	}
	return clusterstate.Storage{}
}

// TestHungMount: a storage whose file system hangs is reported inactive
// after the item timeout while the rest is collected; later cycles do not
// start another stuck call (no goroutines pile up) and the storage comes
// back once the file system answers.
func TestHungMount(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	good := filepath.Join(dir, "good")
	for _, d := range []string{mnt, good} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := mountHang(t, mnt)
	cfgDir := filepath.Join(dir, "etc")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	storageCfg := "dir: nfsish\n\tpath " + mnt + "\n\tcontent iso\n\tcreate-subdirs 0\n\n" +
		"dir: good\n\tpath " + good + "\n\tcontent iso\n\n"
	if err := os.WriteFile(filepath.Join(cfgDir, "storage.cfg"), []byte(storageCfg), 0o640); err != nil {
		t.Fatal(err)
	}
	root, err := pvefs.Open(cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// StatTimeout (the storage package's own bound) is longer than the
	// collector's item timeout, so the collector's bound is what is tested.
	store := &storage.Host{Root: root, Node: "n1", LocalPath: filepath.Join(dir, "vz"),
		Dir: storage.DirOptions{StatTimeout: time.Minute}}
	c := newCollector("n1", root, nodestatus.New(nodestatus.Roots{}, nodestatus.Version{}),
		vmm.New(vmm.Config{RunDir: filepath.Join(dir, "run")}), store, log)
	c.timeout = 300 * time.Millisecond

	began := time.Now()
	st := c.collect(context.Background())
	took := time.Since(began)
	if took > 3*time.Second {
		t.Fatalf("collection took %v with a hung mount", took)
	}
	if s := storageRec(st, "nfsish"); s.Active {
		t.Errorf("hung storage reported active: %+v", s)
	}
	if s := storageRec(st, "good"); !s.Active || s.Total == 0 {
		t.Errorf("good storage: %+v", s)
	}
	if st.Node.MaxCPU == 0 {
		t.Errorf("node figures missing: %+v", st.Node)
	}

	// Further cycles skip the stuck storage at once: no new stuck calls.
	g0 := runtime.NumGoroutine()
	for range 5 {
		began = time.Now()
		st = c.collect(context.Background())
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("cycle with the storage still stuck took %v", d)
		}
	}
	if g := runtime.NumGoroutine(); g > g0+3 {
		t.Errorf("goroutines grew from %d to %d over 5 cycles", g0, g)
	}

	close(h.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st = c.collect(context.Background())
		if s := storageRec(st, "nfsish"); s.Active && s.Total == 100*4096 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage not back after the file system answered: %+v", storageRec(st, "nfsish"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
