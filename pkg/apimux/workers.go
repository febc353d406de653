package apimux

import (
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the worker pool.
const (
	// maxIdleWorkers is how many workers wait for calls at most; more
	// calls at once get goroutines of their own that end with the call.
	maxIdleWorkers = MaxStreams
	// workerIdleTimeout ends a worker that has had no call for this long.
	workerIdleTimeout = 30 * time.Second
)

// workers runs calls on goroutines that stay for the next call. A new
// goroutine starts with a small stack, and a handler chain as deep as the
// API's grows it (and the runtime copies it) on every call: that was a
// seventh of pvedaemon's CPU per forwarded call (docs/benchmarks.md). A
// worker's stack has grown already. The most recently idle worker is
// taken first, so a steady load keeps using the same few.
type workers struct {
	mu     sync.Mutex
	idle   []chan func() // LIFO
	closed bool

	started atomic.Int64 // workers started so far
	live    atomic.Int64 // workers running now
}

// run runs f on an idle worker, or on a new one.
func (w *workers) run(f func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 && !w.closed {
		ch := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- f // buffered: a worker taken from idle is waiting or about to
		return
	}
	w.mu.Unlock()
	w.started.Add(1)
	w.live.Add(1)
	go w.work(f)
}

// work runs f, then the calls it is given, until it has been idle for
// workerIdleTimeout, the pool is closed or enough others are idle.
func (w *workers) work(f func()) {
	defer w.live.Add(-1)
	ch := make(chan func(), 1)
	var timer *time.Timer
	for {
		f()
		w.mu.Lock()
		if w.closed || len(w.idle) >= maxIdleWorkers {
			w.mu.Unlock()
			return
		}
		w.idle = append(w.idle, ch)
		w.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(workerIdleTimeout)
		} else {
			timer.Reset(workerIdleTimeout)
		}
		select {
		case g, ok := <-ch:
			if !ok {
				return
			}
			f = g
		case <-timer.C:
			if !w.leave(ch) {
				// Taken from idle just now: its call is on the way.
				g, ok := <-ch
				if !ok {
					return
				}
				f = g
				continue
			}
			return
		}
	}
}

// leave removes ch from the idle workers; false if it is not there (run
// took it).
func (w *workers) leave(ch chan func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.idle {
		if c == ch {
			w.idle = append(w.idle[:i], w.idle[i+1:]...)
			return true
		}
	}
	return false
}

// close ends the idle workers; busy ones end after their call.
func (w *workers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
}
