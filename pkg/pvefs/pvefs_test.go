package pvefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestPathRejectsEscapes(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", ".."} {
		if _, err := r.Path(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Path(%q) error = %v; want ErrBadName", name, err)
		}
	}
	if _, err := r.Path("priv/shadow.cfg"); err != nil {
		t.Errorf("Path(priv/shadow.cfg) error = %v", err)
	}
}

func TestWriteFileAtomicAndMode(t *testing.T) {
	r, _ := Open(t.TempDir())
	if err := r.MkdirAll("priv", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("priv/x.cfg", []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("priv/x.cfg", []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadFile("priv/x.cfg")
	if err != nil || string(got) != "two\n" {
		t.Fatalf("ReadFile = %q, %v; want two", got, err)
	}
	fi, _ := r.Stat("priv/x.cfg")
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Join(r.Dir(), "priv"))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries; want only x.cfg (no temp files left)", len(ents))
	}
	if _, err := r.ReadFile("missing.cfg"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v; want ErrNotExist", err)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	r, _ := Open(t.TempDir())
	r.WriteFile("a.cfg", []byte("keep\n"), 0o640)
	boom := errors.New("boom")
	err := r.Update(context.Background(), "a.cfg", 0o640, func(old []byte) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v; want boom", err)
	}
	if got, _ := r.ReadFile("a.cfg"); string(got) != "keep\n" {
		t.Errorf("content = %q; want unchanged", got)
	}
}

// TestUpdateNoLostUpdateGoroutines increments a counter from many goroutines.
func TestUpdateNoLostUpdateGoroutines(t *testing.T) {
	r, _ := Open(t.TempDir())
	const n = 50
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Update(context.Background(), "counter", 0o644, incr); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := readCounter(t, r); got != n {
		t.Errorf("counter = %d; want %d", got, n)
	}
}

// TestUpdateNoLostUpdateProcesses increments a counter from several processes
// (this test binary re-executed), which only the flock can serialise.
func TestUpdateNoLostUpdateProcesses(t *testing.T) {
	if os.Getenv("PVEFS_HELPER_DIR") != "" {
		t.Skip("helper")
	}
	r, _ := Open(t.TempDir())
	const procs, each = 4, 25
	var cmds []*exec.Cmd
	for i := 0; i < procs; i++ {
		c := exec.Command(os.Args[0], "-test.run=^TestHelperIncrement$")
		c.Env = append(os.Environ(), "PVEFS_HELPER_DIR="+r.Dir(), "PVEFS_HELPER_N="+strconv.Itoa(each))
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	if got := readCounter(t, r); got != procs*each {
		t.Errorf("counter = %d; want %d", got, procs*each)
	}
}

func TestHelperIncrement(t *testing.T) {
	dir := os.Getenv("PVEFS_HELPER_DIR")
	if dir == "" {
		t.Skip("only run as a helper process")
	}
	n, _ := strconv.Atoi(os.Getenv("PVEFS_HELPER_N"))
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := r.Update(context.Background(), "counter", 0o644, incr); err != nil {
			t.Fatal(err)
		}
	}
}

func incr(old []byte) ([]byte, error) {
	v, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	return []byte(fmt.Sprintf("%d\n", v+1)), nil
}

func readCounter(t *testing.T, r *Root) int {
	t.Helper()
	b, err := r.ReadFile("counter")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLockHonoursContext(t *testing.T) {
	r, _ := Open(t.TempDir())
	unlock, err := r.Lock(context.Background(), "user.cfg")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Lock(ctx, "user.cfg"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lock error = %v; want deadline exceeded", err)
	}
}

func TestWatchSeesAtomicReplace(t *testing.T) {
	r, _ := Open(t.TempDir())
	r.WriteFile("user.cfg", []byte("a\n"), 0o640)
	w, err := r.Watch("user.cfg")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := r.WriteFile("user.cfg", []byte("b\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := w.WaitChange(ctx); err != nil || n != "user.cfg" {
		t.Fatalf("WaitChange = %q, %v; want user.cfg", n, err)
	}
}

// TestUpdateRemovesStaleTemps: temporary files that a killed writer left
// behind go at the next Update; a fresh one (a writer at work) stays.
func TestUpdateRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	root, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".user.cfg.tmp-111")
	fresh := filepath.Join(dir, ".user.cfg.tmp-222")
	other := filepath.Join(dir, ".token.cfg.tmp-333")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := root.Update(context.Background(), "user.cfg", 0o640, func([]byte) ([]byte, error) { return []byte("x\n"), nil }); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{stale: false, fresh: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// TestNewFilesTakeTheDirectoryGroup: directories and files created through
// the root get the group of their parent, as every pmxcfs file is
// root:www-data, so that pveproxy (www-data) reads what pvedaemon writes.
func TestNewFilesTakeTheDirectoryGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files another group")
	}
	const gid = 4242
	dir := t.TempDir()
	if err := os.Chown(dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MkdirAll("nodes/n1/qemu-server", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("nodes/n1/qemu-server/100.conf", []byte("memory: 128\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nodes", "nodes/n1", "nodes/n1/qemu-server", "nodes/n1/qemu-server/100.conf"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if g := fi.Sys().(*syscall.Stat_t).Gid; g != gid {
			t.Errorf("%s: group %d, want %d", name, g, gid)
		}
	}
}
