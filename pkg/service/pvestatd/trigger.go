package pvestatd

import (
	"log/slog"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Bounds of event-triggered cycles.
const (
	// settle is how long after a change a triggered cycle waits for more
	// (a start writes the pid file and the sockets one after another).
	settle = 200 * time.Millisecond
	// minGap is the least time between two triggered cycles.
	minGap = time.Second
)

// trigger watches the directories whose changes mean a guest started,
// stopped or was created or removed (QEMU's pid files in the run
// directory, this node's guest configs) and signals an early cycle, so a
// guest's new state is published within a second instead of at the next
// tick (PVE waits for its 10 s cycle).
type trigger struct {
	w   *fsnotify.Watcher
	out chan struct{}
	log *slog.Logger
}

// newTrigger watches dirs (creating them if missing). A directory that
// cannot be watched only costs the early cycles.
func newTrigger(log *slog.Logger, dirs ...string) *trigger {
	t := &trigger{out: make(chan struct{}, 1), log: log}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("no early status cycles", "err", err)
		return t
	}
	for _, d := range dirs {
		_ = os.MkdirAll(d, 0o755)
		if err := w.Add(d); err != nil {
			log.Warn("no early status cycles for a directory", "dir", d, "err", err)
		}
	}
	t.w = w
	go t.run()
	return t
}

// C receives a value when a cycle should run early.
func (t *trigger) C() <-chan struct{} { return t.out }

func (t *trigger) run() {
	var timer <-chan time.Time
	last := time.Time{}
	for {
		select {
		case _, ok := <-t.w.Events:
			if !ok {
				return
			}
			if timer == nil {
				wait := settle
				if gap := time.Until(last.Add(minGap)); gap > wait {
					wait = gap
				}
				timer = time.After(wait)
			}
		case err, ok := <-t.w.Errors:
			if !ok {
				return
			}
			t.log.Warn("watch guest directories", "err", err)
		case <-timer:
			timer = nil
			last = time.Now()
			select {
			case t.out <- struct{}{}:
			default:
			}
		}
	}
}

// close stops watching.
func (t *trigger) close() {
	if t.w != nil {
		t.w.Close()
	}
}
