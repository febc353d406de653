package access

import (
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// statInterval is how often a cached file is stat'ed at most.
const statInterval = time.Second

// fileStamp identifies one version of a file. Files under the config root
// are replaced by rename, so the inode changes on every write.
type fileStamp struct {
	exists bool
	ino    uint64
	size   int64
	mtime  int64 // ns
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// cachedFile holds the parsed content of one file under the config root and
// re-reads it when its stamp changes, checking at most once per
// statInterval.
type cachedFile[T any] struct {
	name string
	// parse turns the file content into a value; data is nil when the file
	// does not exist.
	parse func(data []byte) (T, error)
	// log receives load errors, each distinct error once.
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	loaded  bool
	checked time.Time
	stamp   fileStamp
	modTime time.Time
	val     T
	err     error

	// fresh is the last answer and until when it needs no stat; get reads
	// it without the lock, since it runs several times per request.
	fresh atomic.Pointer[cachedAnswer[T]]
}

// cachedAnswer is one published answer of a cachedFile.
type cachedAnswer[T any] struct {
	until   time.Time
	val     T
	modTime time.Time
	err     error
}

// get returns the current value, the file's modification time (zero if it
// does not exist) and the load error.
func (c *cachedFile[T]) get(root *pvefs.Root, now time.Time) (T, time.Time, error) {
	if a := c.fresh.Load(); a != nil && now.Before(a.until) && !now.Before(a.until.Add(-statInterval)) {
		return a.val, a.modTime, a.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	val, modTime, err := c.getLocked(root, now)
	c.fresh.Store(&cachedAnswer[T]{until: c.checked.Add(statInterval), val: val, modTime: modTime, err: err})
	return val, modTime, err
}

// getLocked is get's slow path. c.mu must be held.
func (c *cachedFile[T]) getLocked(root *pvefs.Root, now time.Time) (T, time.Time, error) {
	if c.loaded {
		if age := now.Sub(c.checked); age >= 0 && age < statInterval {
			return c.val, c.modTime, c.err
		}
	}
	c.checked = now
	var stamp fileStamp
	var modTime time.Time
	fi, err := root.Stat(c.name)
	switch {
	case err == nil:
		stamp, modTime = stampOf(fi), fi.ModTime()
	case errors.Is(err, fs.ErrNotExist):
	default:
		// unreadable (for instance priv/ for an unprivileged daemon)
		return c.failLocked(err)
	}
	if c.loaded && c.err == nil && stamp == c.stamp {
		return c.val, c.modTime, nil
	}
	var data []byte
	if stamp.exists {
		data, err = root.ReadFile(c.name)
		if errors.Is(err, fs.ErrNotExist) {
			data, err, stamp, modTime = nil, nil, fileStamp{}, time.Time{}
		}
		if err != nil {
			return c.failLocked(err)
		}
		if data == nil {
			data = []byte{}
		}
	}
	val, err := c.parse(data)
	if err != nil {
		return c.failLocked(err)
	}
	c.loaded, c.stamp, c.modTime, c.val, c.err = true, stamp, modTime, val, nil
	return c.val, c.modTime, nil
}

// failLocked records a load error and logs it unless it repeats the last
// one. c.mu must be held.
func (c *cachedFile[T]) failLocked(err error) (T, time.Time, error) {
	if c.log != nil && (c.err == nil || c.err.Error() != err.Error()) {
		c.log.Warn("cannot load config file", "path", c.name, "err", err)
	}
	var zero T
	c.loaded, c.stamp, c.modTime, c.val, c.err = true, fileStamp{}, time.Time{}, zero, err
	return zero, time.Time{}, err
}

// invalidate makes the next get stat the file again.
func (c *cachedFile[T]) invalidate() {
	c.mu.Lock()
	c.fresh.Store(nil)
	c.loaded = false
	c.mu.Unlock()
}
