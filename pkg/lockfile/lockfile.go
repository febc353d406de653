// Package lockfile holds the two file primitives PVE's state files under
// /var/lib and /var/lock rely on: an exclusive flock taken with a timeout
// (PVE::Tools::lock_file) and a whole-file replace by temp file, fsync and
// rename (PVE::Tools::file_set_contents). The config root has its own in
// pkg/pvefs; these are for node-local state (tasks, job state).
package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Lock takes an exclusive flock on path (created if missing), polling up to
// the timeout. The kernel releases it if the holder dies; unlock releases
// it earlier.
func Lock(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("can't open lock file '%s' - %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("can't lock file '%s' - %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("can't lock file '%s' - got timeout", path)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// WriteAtomic replaces path with data: temp file, fsync, rename. A reader
// sees the old or the new contents, never a part.
func WriteAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp.%d", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("unable to open file '%s' - %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing '%s' failed - %w", path, err)
	}
	return nil
}
