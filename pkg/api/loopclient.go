package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// loopClient is the HTTP/1.1 client of the loopback hop from pveproxy to
// pvedaemon. Each call writes its request and reads the answer on a pooled
// keep-alive connection from the calling goroutine. net/http's Transport
// hands every call to a read and a write goroutine per connection; on the
// loopback hop those hand-offs (futex wake-ups) cost more than the
// request itself, so this client does without them.
type loopClient struct {
	socket      string // Unix socket of pvedaemon, tried first; "" for none
	addr        string // its TCP address
	dialTimeout time.Duration
	timeout     time.Duration // whole call, until the answer's header

	mu   sync.Mutex // guards idle
	idle []*loopConn
}

// loopConn is one keep-alive connection to pvedaemon.
type loopConn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

const (
	loopMaxIdle = 64
	// loopIdleTTL is how long an idle connection is reused: well below
	// pvedaemon's 5 s idle timeout, so the client, not the server, retires
	// connections and a request never meets a connection closing under it.
	loopIdleTTL = 2 * time.Second
)

// get returns an idle connection or dials a new one; reused tells which.
func (l *loopClient) get(ctx context.Context) (lc *loopConn, reused bool, err error) {
	now := time.Now()
	l.mu.Lock()
	for len(l.idle) > 0 {
		lc = l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		if now.Sub(lc.idleFrom) < loopIdleTTL {
			l.mu.Unlock()
			return lc, true, nil
		}
		lc.c.Close()
	}
	l.mu.Unlock()
	d := net.Dialer{Timeout: l.dialTimeout}
	var c net.Conn
	if l.socket != "" {
		c, err = d.DialContext(ctx, "unix", l.socket)
	}
	if c == nil {
		c, err = d.DialContext(ctx, "tcp", l.addr)
	}
	if err != nil {
		return nil, false, err
	}
	return &loopConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 8<<10)}, false, nil
}

// put returns a connection whose answer was read completely to the pool.
func (l *loopClient) put(lc *loopConn) {
	lc.idleFrom = time.Now()
	_ = lc.c.SetDeadline(time.Time{})
	l.mu.Lock()
	if len(l.idle) < loopMaxIdle {
		l.idle = append(l.idle, lc)
		lc = nil
	}
	l.mu.Unlock()
	if lc != nil {
		lc.c.Close()
	}
}

// closeIdle closes every idle connection.
func (l *loopClient) closeIdle() {
	l.mu.Lock()
	idle := l.idle
	l.idle = nil
	l.mu.Unlock()
	for _, lc := range idle {
		lc.c.Close()
	}
}

// do sends req and returns the answer; its body must be read to the end
// and closed, which returns the connection to the pool.
//
// A call on a reused connection that finds it closed by the peer (broken
// pipe, reset or end of stream before any byte of an answer) is sent once
// more on a new connection, whatever its method. pvedaemon closes a
// keep-alive connection only when idle for 5 s (this pool retires them after
// 2 s) or after an answer with "Connection: close" (never pooled), so such a
// connection belonged to a pvedaemon that has since restarted, and that
// process never read the request. The other idle connections are dropped
// too: they belonged to the same process.
func (l *loopClient) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		lc, reused, err := l.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := l.roundTrip(ctx, lc, req)
		if err == nil {
			return resp, nil
		}
		lc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !reused || attempt > 0 || !peerClosed(err) {
			return nil, err
		}
		l.closeIdle()
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// peerClosed reports whether err says the peer had closed the connection
// before answering.
func peerClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (l *loopClient) roundTrip(ctx context.Context, lc *loopConn, req *http.Request) (*http.Response, error) {
	_ = lc.c.SetDeadline(time.Now().Add(l.timeout))
	stop := context.AfterFunc(ctx, func() { _ = lc.c.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(lc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := lc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := http.ReadResponse(lc.br, req)
	if err != nil {
		stop()
		return nil, err
	}
	resp.Body = &loopBody{ReadCloser: resp.Body, l: l, lc: lc, keep: !resp.Close, stop: stop}
	return resp, nil
}

// loopBody returns the connection to the pool once the answer was read to
// the end.
type loopBody struct {
	io.ReadCloser
	l    *loopClient
	lc   *loopConn
	keep bool
	eof  bool
	stop func() bool
	done bool
}

func (b *loopBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *loopBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.ReadCloser.Close()
	canceled := !b.stop() // the context ended and poisoned the deadline
	if b.keep && b.eof && !canceled && err == nil {
		b.l.put(b.lc)
	} else {
		b.lc.c.Close()
	}
	return err
}
