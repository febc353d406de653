package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// FileMode is the mode a new audit log file is created with, whatever the
// umask.
const FileMode = 0o640

// Defaults of Options.
const (
	DefaultQueueLen = 1024
	DefaultMaxWait  = 20 * time.Millisecond
)

// bufMax is how much formatted output the writer collects before writing
// it, even while more events are queued.
const bufMax = 64 << 10

// warnEvery rate-limits the writer's warnings (drops, write errors) in the
// daemon's log.
const warnEvery = 10 * time.Second

// Options tune a Logger. Daemon is required; the rest have defaults.
type Options struct {
	// Daemon is the name recorded in every line ("pveproxy").
	Daemon string
	// Now is the clock; nil = time.Now. Times are printed with the zone of
	// the returned value.
	Now func() time.Time
	// Log receives write errors and drop warnings; nil discards them.
	Log *slog.Logger
	// QueueLen is how many events may wait for the writer; 0 =
	// DefaultQueueLen.
	QueueLen int
	// MaxWait is how long Record waits for room in a full queue before it
	// drops the event; 0 = DefaultMaxWait, negative = no wait.
	MaxWait time.Duration
}

// Logger writes audit lines (see AppendLine) to a file or an io.Writer.
// Record never blocks longer than Options.MaxWait. A nil *Logger records
// nothing. It is safe for concurrent use; Close stops its writer.
type Logger struct {
	daemon  string
	now     func() time.Time
	log     *slog.Logger
	path    string // "" when writing to a caller's io.Writer
	maxWait time.Duration

	queue   chan Event
	closed  atomic.Bool
	dropped atomic.Uint64 // events dropped since the last "dropped" line
	total   atomic.Uint64 // events dropped since the start

	mu       sync.Mutex // guards the fields below; held by the writer per batch
	f        *os.File   // owned file, nil for a caller's io.Writer
	out      io.Writer  // f or the caller's io.Writer
	buf      []byte     // formatted lines not yet written
	buffered uint64     // events in buf
	lastWarn time.Time  // of the last warning in the daemon's log

	stop chan struct{} // closed by Close to end the writer
	done chan struct{} // closed when the writer has ended
}

// New returns a Logger writing to w, which it does not close.
func New(w io.Writer, opts Options) (*Logger, error) {
	return newLogger(w, nil, "", opts)
}

// Open opens (appending) or creates the audit log file at path; a new file
// gets FileMode.
func Open(path string, opts Options) (*Logger, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l, err := newLogger(f, f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, FileMode)
	if err == nil {
		if err := f.Chmod(FileMode); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit log %s: %w", path, err)
		}
		return f, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return f, nil
}

func newLogger(w io.Writer, f *os.File, path string, opts Options) (*Logger, error) {
	if opts.Daemon == "" {
		return nil, errors.New("audit: Options.Daemon is required")
	}
	l := &Logger{
		daemon:  opts.Daemon,
		now:     opts.Now,
		log:     opts.Log,
		path:    path,
		maxWait: opts.MaxWait,
		f:       f,
		out:     w,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.maxWait == 0 {
		l.maxWait = DefaultMaxWait
	}
	n := opts.QueueLen
	if n <= 0 {
		n = DefaultQueueLen
	}
	l.queue = make(chan Event, n)
	go l.run()
	return l, nil
}

// Record queues e for writing. If the queue is full it waits up to
// Options.MaxWait for room, then drops e and counts it. A zero e.Time is
// set to the current time.
func (l *Logger) Record(e Event) {
	if l == nil || l.closed.Load() {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	select {
	case l.queue <- e:
		return
	default:
	}
	if l.maxWait > 0 {
		t := time.NewTimer(l.maxWait)
		defer t.Stop()
		select {
		case l.queue <- e:
			return
		case <-t.C:
		}
	}
	l.dropped.Add(1)
	l.total.Add(1)
}

// Dropped returns how many events were dropped since the Logger started:
// the queue was full, or writing them failed.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.total.Load()
}

// run is the writer: it formats queued events and writes them out whenever
// the queue runs empty or bufMax bytes are collected.
func (l *Logger) run() {
	defer close(l.done)
	for {
		select {
		case e := <-l.queue:
			l.batch(e)
		case <-l.stop:
			l.mu.Lock()
			l.drainLocked()
			l.flushLocked()
			l.mu.Unlock()
			return
		}
	}
}

// batch writes e and whatever else is queued, then flushes.
func (l *Logger) batch(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appendLocked(&e)
	l.drainLocked()
	l.flushLocked()
}

// drainLocked formats every queued event. l.mu must be held.
func (l *Logger) drainLocked() {
	for {
		select {
		case e := <-l.queue:
			l.appendLocked(&e)
		default:
			return
		}
	}
}

// appendLocked formats e, first reporting earlier drops, and writes out
// the buffer when it is full. l.mu must be held.
func (l *Logger) appendLocked(e *Event) {
	if n := l.dropped.Swap(0); n > 0 {
		l.buf = appendDropped(l.buf, l.daemon, l.now(), n)
		l.warnLocked("audit events dropped", "count", n, "total", l.total.Load())
	}
	l.buf = AppendLine(l.buf, l.daemon, e)
	l.buffered++
	if len(l.buf) >= bufMax {
		l.flushLocked()
	}
}

// flushLocked writes the buffer out. On error its events are counted as
// dropped (and reported once writing works again). l.mu must be held.
func (l *Logger) flushLocked() {
	if len(l.buf) == 0 {
		return
	}
	_, err := l.out.Write(l.buf)
	if err != nil {
		l.dropped.Add(l.buffered)
		l.total.Add(l.buffered)
		l.warnLocked("audit log write failed", "path", l.path, "err", err)
	}
	if cap(l.buf) > 4*bufMax {
		l.buf = nil // give back what a burst made it grow to
	} else {
		l.buf = l.buf[:0]
	}
	l.buffered = 0
}

// warnLocked logs at most one warning per warnEvery. l.mu must be held.
func (l *Logger) warnLocked(msg string, args ...any) {
	now := time.Now()
	if now.Sub(l.lastWarn) < warnEvery {
		return
	}
	l.lastWarn = now
	l.log.Warn(msg, args...)
}

// Reopen closes and reopens the file after logrotate moved it, creating it
// anew if needed; buffered lines go to the old file first. It does nothing
// for a Logger writing to a caller's io.Writer. On error the old file stays
// in use.
func (l *Logger) Reopen() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.closed.Load() {
		return nil
	}
	f, err := openFile(l.path)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	l.flushLocked()
	old := l.f
	l.f, l.out = f, f
	if err := old.Close(); err != nil {
		return fmt.Errorf("close old audit log %s: %w", l.path, err)
	}
	return nil
}

// Close stops the writer after it has written every queued event, and
// closes the file if the Logger opened it. Events recorded afterwards are
// ignored.
func (l *Logger) Close() error {
	if l == nil || l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close audit log %s: %w", l.path, err)
	}
	return nil
}
