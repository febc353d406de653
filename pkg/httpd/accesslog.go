package httpd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// AccessLogMode is the mode a new access log file is created with.
const AccessLogMode = 0o640

// DefaultFlushInterval is how often buffered access log lines are written.
const DefaultFlushInterval = time.Second

// accessTimeFormat is PVE's strftime "%d/%m/%Y:%H:%M:%S %z".
const accessTimeFormat = "02/01/2006:15:04:05 -0700"

// AccessLogOptions tune an AccessLog; the zero value is ready to use.
type AccessLogOptions struct {
	// Now is the clock; nil = time.Now. Times are printed in the location
	// of the returned value (time.Now: local time, as PVE does).
	Now func() time.Time
	// FlushInterval: 0 = DefaultFlushInterval.
	FlushInterval time.Duration
	// Log receives write errors; nil discards them (Flush and Close still
	// return them).
	Log *slog.Logger
}

// AccessLog writes PVE's access log, one line per request:
//
//	<client-ip> - <userid or -> [<dd/mm/YYYY:HH:MM:SS +zzzz>] "<request line>" <status> <bytes or ->
//
// Lines are buffered and written every FlushInterval, on Flush and on Close.
// It is safe for concurrent use. Close it to stop its flusher.
type AccessLog struct {
	now  func() time.Time
	log  *slog.Logger
	path string // "" when writing to a caller's io.Writer

	mu      sync.Mutex    // guards the fields below
	f       *os.File      // owned file, nil when writing to a caller's io.Writer
	out     io.Writer     // f or the caller's io.Writer
	bw      *bufio.Writer // buffers lines for out
	err     error         // first write error since the last Flush
	closed  bool
	scratch []byte // line being formatted, reused

	stop chan struct{} // closed by Close to end the flusher
	done chan struct{} // closed when the flusher has ended
}

// NewAccessLog returns an AccessLog writing to w, which it does not close.
func NewAccessLog(w io.Writer, opts AccessLogOptions) *AccessLog {
	return newAccessLog(w, nil, "", opts)
}

// OpenAccessLog opens (appending) or creates the access log file at path;
// a new file gets mode AccessLogMode regardless of the umask.
func OpenAccessLog(path string, opts AccessLogOptions) (*AccessLog, error) {
	f, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	return newAccessLog(f, f, path, opts), nil
}

func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, AccessLogMode)
	if err == nil {
		if err := f.Chmod(AccessLogMode); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("open access log %s: %w", path, err)
		}
		return f, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("open access log %s: %w", path, err)
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open access log %s: %w", path, err)
	}
	return f, nil
}

func newAccessLog(w io.Writer, f *os.File, path string, opts AccessLogOptions) *AccessLog {
	a := &AccessLog{
		now:  opts.Now,
		log:  opts.Log,
		path: path,
		f:    f,
		out:  w,
		bw:   bufio.NewWriterSize(w, 64<<10),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	every := opts.FlushInterval
	if every <= 0 {
		every = DefaultFlushInterval
	}
	go a.flusher(every)
	return a
}

func (a *AccessLog) flusher(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			if err := a.Flush(); err != nil {
				a.log.Error("access log write failed", "path", a.path, "err", err)
			}
		}
	}
}

// Flush writes buffered lines out. It returns the first write error since
// the previous Flush.
func (a *AccessLog) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flushLocked()
}

// flushLocked writes the buffer and returns and clears a pending error; after
// an error the unwritten lines are dropped so that the log recovers once the
// target accepts writes again. a.mu must be held.
func (a *AccessLog) flushLocked() error {
	if err := a.bw.Flush(); err != nil && a.err == nil {
		a.err = err
	}
	err := a.err
	if err == nil {
		return nil
	}
	a.err = nil
	a.bw.Reset(a.out)
	return fmt.Errorf("write access log: %w", err)
}

// Reopen closes and reopens the file after logrotate moved it, creating it
// anew if needed; buffered lines go to the old file first. It does nothing
// for a log writing to a caller's io.Writer. On error the old file stays in
// use.
func (a *AccessLog) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil || a.closed {
		return nil
	}
	f, err := openLogFile(a.path)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	ferr := a.flushLocked()
	old := a.f
	a.f, a.out = f, f
	a.bw.Reset(f)
	if err := old.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("close old access log %s: %w", a.path, err)
	}
	return ferr
}

// Close stops the flusher, writes what is buffered and closes the file if
// the log opened it. Lines logged afterwards are dropped.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done

	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.flushLocked()
	if a.f != nil {
		if cerr := a.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close access log %s: %w", a.path, cerr)
		}
	}
	return err
}

// Denied logs a connection refused by the host ACL, as PVE does:
// `<ip> - - [date] "-" 403 -`. Its signature fits ACLListener.
func (a *AccessLog) Denied(peer netip.AddrPort) {
	a.Line(peer.Addr(), "", "-", http.StatusForbidden, -1)
}

// Redirected logs a plain-HTTP request answered with a redirect by
// TLSSniffListener. Its signature fits WithRedirectLog.
func (a *AccessLog) Redirected(peer netip.AddrPort, requestLine string, status int) {
	a.Line(peer.Addr(), "", requestLine, status, -1)
}

// Line writes one log line: client (invalid = "-"), user ("" = "-"), the
// request line, status and body bytes (<= 0 = "-").
func (a *AccessLog) Line(client netip.Addr, user, requestLine string, status int, bytes int64) {
	a.line(client, user, requestLine, "", "", status, bytes)
}

// line formats a log line straight into the buffered writer, under the
// lock (formatting is short; it saves building the line in a buffer of its
// own for every request). The request line is method, uri and proto joined
// by spaces, or requestLine alone when uri and proto are empty.
func (a *AccessLog) line(client netip.Addr, user, method, uri, proto string, status int, bytes int64) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	b := a.scratch[:0]
	if client.IsValid() {
		b = client.AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, " - "...)
	if user == "" {
		user = "-"
	}
	b = append(b, user...)
	b = append(b, " ["...)
	b = now.AppendFormat(b, accessTimeFormat)
	b = append(b, "] \""...)
	b = append(b, method...)
	if uri != "" || proto != "" {
		b = append(b, ' ')
		b = append(b, uri...)
		b = append(b, ' ')
		b = append(b, proto...)
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if bytes > 0 {
		b = strconv.AppendInt(b, bytes, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\n')
	a.scratch = b
	if _, err := a.bw.Write(b); err != nil && a.err == nil {
		a.err = err
	}
}

// Wrap returns a handler that logs each request served by next when it
// returns: the client IP and user from the request's reqinfo.Info (the real
// IP if RealIP replaced it; r.RemoteAddr without an Info), the request line
// "METHOD URI PROTO", the status (500 if nothing was written and next
// panicked; 101 for a hijacked request with an Upgrade header, 200 for other
// hijacked ones unless a status was written) and the body bytes actually sent,
// so after compression when Wrap is outside Compress.
func (a *AccessLog) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		completed := false
		defer func() {
			status := rec.status
			switch {
			case status != 0:
			case rec.hijacked && r.Header.Get("Upgrade") != "":
				status = http.StatusSwitchingProtocols
			case !completed:
				status = http.StatusInternalServerError
			default:
				status = http.StatusOK
			}
			info := reqinfo.FromContext(r.Context())
			client := info.ClientIP()
			if info == nil {
				if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
					client = ap.Addr().Unmap()
				}
			}
			a.line(client, info.User(), r.Method, r.RequestURI, r.Proto, status, rec.bytes)
		}()
		next.ServeHTTP(rec, r)
		completed = true
	})
}
