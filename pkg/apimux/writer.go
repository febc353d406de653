package apimux

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// frameWriter sends frames queued by many goroutines with as few writes
// as it can: one goroutine writes everything queued since its last write.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration // bound on one write; the peer is local

	mu      sync.Mutex
	buf     []byte // frames queued since the last write
	spare   []byte
	err     error // first write error; later sends fail with it
	closed  bool
	wake    chan struct{} // capacity 1: there is something to write
	done    chan struct{} // closed when the write loop ends
	onError func(error)   // called once, from the write loop, on a write error
}

func newFrameWriter(conn net.Conn, timeout time.Duration, onError func(error)) *frameWriter {
	w := &frameWriter{
		conn: conn, timeout: timeout, onError: onError,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go w.loop()
	return w
}

// queue appends the frames that fill appends to the queue. fill must only
// append to the slice it is given.
func (w *frameWriter) queue(fill func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = fill(w.buf)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

func (w *frameWriter) loop() {
	defer close(w.done)
	for range w.wake {
		// Let the goroutines that are ready to queue a frame do so
		// first: one write then carries all of them.
		runtime.Gosched()
		w.mu.Lock()
		out := w.buf
		w.buf = w.spare[:0]
		closed := w.closed
		w.mu.Unlock()
		if len(out) > 0 {
			_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
			if _, err := w.conn.Write(out); err != nil {
				w.fail(err)
				return
			}
		}
		w.mu.Lock()
		if cap(out) <= 256<<10 {
			w.spare = out[:0]
		}
		w.mu.Unlock()
		if closed {
			return
		}
	}
}

func (w *frameWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.buf = nil
	w.mu.Unlock()
	if w.onError != nil {
		w.onError(err)
	}
}

// close writes what is queued and stops the write loop; it waits until
// that is done or the write timed out.
func (w *frameWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return
	}
	w.closed = true
	if w.err == nil {
		w.err = net.ErrClosed
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}
