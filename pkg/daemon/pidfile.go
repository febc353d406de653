package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The pid file is also the instance lock: the running daemon holds an
// exclusive open-file-description (OFD) lock on it for its whole life. OFD
// locks behave like flock(2) (owned by the open file, not the process; freed
// when the daemon exits, however it exits) but, unlike flock, can be queried
// without taking them (F_OFD_GETLK), so status/stop/reload never race with a
// starting daemon.

// alreadyRunningError is returned by start when another instance holds the
// pid file lock.
type alreadyRunningError struct {
	pid int // 0 if the pid file could not be read
}

func (e *alreadyRunningError) Error() string {
	if e.pid <= 0 {
		return "daemon already running"
	}
	return fmt.Sprintf("daemon already running (pid %d)", e.pid)
}

// pidFile is the locked pid file of the running daemon.
type pidFile struct {
	path string
	f    *os.File // holds the lock until close
}

// pidLockAttempts bounds the retries when the file is replaced between open
// and lock (a previous daemon unlinking it on exit).
const pidLockAttempts = 5

// lockPIDFile creates path's directory (0755, owned by owner if set), takes
// the instance lock and writes our pid. owner, if set, also gets the file,
// so the daemon can remove it after dropping privileges.
func lockPIDFile(path string, owner *account) (*pidFile, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pid file directory: %w", err)
	}
	if owner != nil {
		if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
			return nil, fmt.Errorf("pid file directory: %w", err)
		}
	}
	for range pidLockAttempts {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
			f.Close()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
				return nil, &alreadyRunningError{pid: readPIDWait(path)}
			}
			return nil, fmt.Errorf("lock pid file %s: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close() // we locked a file a stopping daemon just unlinked
			continue
		}
		if err := writePID(f, os.Getpid()); err != nil {
			f.Close()
			return nil, fmt.Errorf("write pid file %s: %w", path, err)
		}
		if owner != nil {
			if err := f.Chown(owner.uid, owner.gid); err != nil {
				f.Close()
				return nil, fmt.Errorf("pid file: %w", err)
			}
		}
		return &pidFile{path: path, f: f}, nil
	}
	return nil, fmt.Errorf("lock pid file %s: file keeps being replaced", path)
}

func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(fi, pi)
}

// release removes the pid file if it is still ours, then drops the lock.
func (p *pidFile) release(log *slog.Logger) {
	if samePath(p.f, p.path) {
		if err := os.Remove(p.path); err != nil {
			log.Warn("pid file not removed", "path", p.path, "err", err)
		}
	}
	p.f.Close()
}

// runningPID returns the pid of the daemon that holds the lock on path, or 0
// if none does.
func runningPID(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	defer f.Close()
	// Read the pid from the file we opened, not from path: a daemon that
	// is stopping removes path while we look. A just-started daemon holds
	// the lock a moment before its pid is written.
	for range 20 {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
			return 0, fmt.Errorf("query lock on %s: %w", path, err)
		}
		if lk.Type == unix.F_UNLCK {
			return 0, nil // stale file of a crashed daemon, or one that just stopped
		}
		if pid, ok := readPIDFrom(f); ok {
			return pid, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return 0, fmt.Errorf("pid file %s: locked but holds no pid", path)
}

// readPIDFrom reads the pid in the open pid file f.
func readPIDFrom(f *os.File) (int, bool) {
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n])))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// readPIDWait reads the pid in path, giving a just-started daemon that holds
// the lock but has not written its pid yet a moment to do so. It returns 0
// if there is no valid pid.
func readPIDWait(path string) int {
	for range 20 {
		if pid, ok := readPID(path); ok {
			return pid
		}
		time.Sleep(25 * time.Millisecond)
	}
	return 0
}

func readPID(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// signalPID sends sig to pid, naming the daemon in errors.
func signalPID(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("send %v to pid %d: %w", sig, pid, err)
	}
	return nil
}
