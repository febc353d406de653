package pvefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBadName is returned for a name that is absolute, empty or escapes the root.
var ErrBadName = errors.New("pvefs: invalid name")

// lockDir is the directory under the root that holds the lock files. It is
// hidden so that it never collides with a PVE file name.
const lockDir = ".locks"

// Root is a config root directory. A Root has no mutable state and is safe for
// concurrent use by many goroutines and processes.
type Root struct {
	dir string
}

// Open returns the config root at dir, creating the directory (mode 0755) and
// its lock directory if they do not exist.
func Open(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open config root %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, lockDir), 0o755); err != nil {
		return nil, fmt.Errorf("open config root %s: %w", abs, err)
	}
	return &Root{dir: abs}, nil
}

// Dir returns the absolute directory of the root.
func (r *Root) Dir() string { return r.dir }

// Path returns the host path of name, or an error if name is not a clean
// relative path inside the root. "." (the root itself) is refused:
// WriteFile would put its temporary file in the root's parent.
func (r *Root) Path(name string) (string, error) {
	if name == "" || name == "." || strings.HasPrefix(name, "/") || path.Clean(name) != name ||
		name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return filepath.Join(r.dir, filepath.FromSlash(name)), nil
}

// ReadFile returns the content of name. A missing file is reported with an
// error that satisfies errors.Is(err, fs.ErrNotExist).
func (r *Root) ReadFile(name string) ([]byte, error) {
	p, err := r.Path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// ReadFileOrEmpty is ReadFile that answers a missing file with no data.
func (r *Root) ReadFileOrEmpty(name string) ([]byte, error) {
	b, err := r.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Stat returns the file info of name.
func (r *Root) Stat(name string) (fs.FileInfo, error) {
	p, err := r.Path(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	return fi, nil
}

// MkdirAll creates the directory name with mode perm, and its parents.
func (r *Root) MkdirAll(name string, perm fs.FileMode) error {
	p, err := r.Path(name)
	if err != nil {
		return err
	}
	// Create level by level, each new directory with its parent's group
	// (see WriteFile).
	var missing []string
	for d := p; d != r.dir; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mkdir %s: %w", name, err)
		}
		if gid, ok := groupOf(filepath.Dir(d)); ok {
			_ = os.Lchown(d, -1, gid)
		}
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return fmt.Errorf("mkdir %s: not a directory", name)
	}
	return nil
}

// groupOf returns the group of path.
func groupOf(path string) (int, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}

// Remove deletes the file name; a missing file is not an error.
func (r *Root) Remove(name string) error {
	p, err := r.Path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// WriteFile replaces name with data atomically: the data goes to a temporary
// file in the same directory, which is synced and renamed over name, and the
// directory is synced. A reader sees the old or the new content, never a
// mixture, and a crash at any point leaves one of the two. The caller should
// hold the file's lock (see Lock or Update) when the new content depends on
// the old.
func (r *Root) WriteFile(name string, data []byte, perm fs.FileMode) error {
	p, err := r.Path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	// Keep the owner and group of the file being replaced, so that a file a
	// daemon running as www-data must read stays readable after root writes
	// it; a new file gets its directory's group, as every file of pmxcfs
	// has the group www-data (private directories are root's).
	if fi, err := os.Stat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = tmp.Chown(int(st.Uid), int(st.Gid))
		}
	} else if gid, ok := groupOf(dir); ok {
		_ = tmp.Chown(-1, gid)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmpName, p); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Lock takes the exclusive lock of name, waiting until it is free or ctx is
// done. The lock is an flock on a lock file, so it excludes other goroutines
// and other processes alike, and the kernel releases it if the holder dies.
// The returned func releases it.
func (r *Root) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if _, err := r.Path(name); err != nil {
		return nil, err
	}
	lp := filepath.Join(r.dir, lockDir, strings.ReplaceAll(name, "/", "%")+".lock")
	f, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// staleTempAge is how old a temporary file of WriteFile must be to count
// as left behind by a writer that died: a live write takes milliseconds.
const staleTempAge = time.Minute

// removeStaleTemps removes the temporary files of name that writers killed
// mid-write left behind (the target itself was never touched). It runs
// under name's lock, from Update.
func (r *Root) removeStaleTemps(name string) {
	p, err := r.Path(name)
	if err != nil {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*"))
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(m)
		}
	}
}

// Update runs a read-modify-write of name under its lock: fn gets the current
// content (nil if the file does not exist) and returns the new content. If fn
// returns an error nothing is written and the error is returned unchanged. If
// fn returns the same bytes, nothing is written either.
func (r *Root) Update(ctx context.Context, name string, perm fs.FileMode, fn func(old []byte) ([]byte, error)) error {
	unlock, err := r.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	r.removeStaleTemps(name)
	old, err := r.ReadFileOrEmpty(name)
	if err != nil {
		return err
	}
	data, err := fn(old)
	if err != nil {
		return err
	}
	if old != nil && string(old) == string(data) {
		return nil
	}
	return r.WriteFile(name, data, perm)
}
