package apimux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// Server answers calls sent by Clients with an http.Handler. Each call's
// request carries http.LocalAddrContextKey (the listener's Unix address)
// and a reqinfo.Info whose reason phrase becomes the response's.
type Server struct {
	Handler http.Handler
	Log     *slog.Logger
	// IdleTimeout closes a connection without calls in flight for this
	// long (default 2 minutes); PrefaceTimeout bounds a new connection's
	// preface (default 5 s); WriteTimeout bounds one write (default 30 s).
	IdleTimeout, PrefaceTimeout, WriteTimeout time.Duration

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*serverConn]struct{}
	shutting bool
	idle     chan struct{} // signalled when a connection ends during Shutdown
	workers  workers       // goroutines that run the calls
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("apimux: server closed")

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
		s.idle = make(chan struct{}, 1)
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			shutting := s.shutting
			s.mu.Unlock()
			if shutting {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log().Warn("apimux: accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := &serverConn{srv: s, conn: c, streams: map[uint32]*serverStream{}}
		s.mu.Lock()
		if s.shutting {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[sc] = struct{}{}
		s.mu.Unlock()
		go sc.serve()
	}
}

// Shutdown stops accepting, tells every client to send no more calls on
// its connection, and waits until the calls in flight are answered or ctx
// ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, sc := range s.stop() {
		sc.goAway()
	}
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	for _, sc := range s.stop() {
		sc.conn.Close()
	}
	return nil
}

// stop closes the listeners and returns the open connections.
func (s *Server) stop() []*serverConn {
	s.workers.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting = true
	for ln := range s.lns {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	return conns
}

func (s *Server) forget(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

// serverConn is one client connection.
type serverConn struct {
	srv  *Server
	conn net.Conn
	w    *frameWriter
	ctx  context.Context // cancelled when the connection ends

	mu        sync.Mutex
	streams   map[uint32]*serverStream
	lastID    uint32 // highest stream id taken
	goingAway bool   // no new calls; close when the last one ends
}

func (sc *serverConn) serve() {
	s := sc.srv
	defer s.forget(sc)
	defer sc.conn.Close()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), http.LocalAddrContextKey, sc.conn.LocalAddr()))
	defer cancel()
	sc.ctx = ctx
	br := bufio.NewReaderSize(sc.conn, 64<<10)
	_ = sc.conn.SetReadDeadline(time.Now().Add(orDefault(s.PrefaceTimeout, 5*time.Second)))
	pre := make([]byte, len(Preface))
	if _, err := io.ReadFull(br, pre); err != nil || string(pre) != Preface {
		s.log().Warn("apimux: connection without the preface closed", "err", err)
		return
	}
	sc.mu.Lock()
	sc.w = newFrameWriter(sc.conn, orDefault(s.WriteTimeout, 30*time.Second), func(error) { sc.conn.Close() })
	goingAway := sc.goingAway
	sc.mu.Unlock()
	defer sc.w.close()
	if goingAway { // Shutdown came before the writer existed
		sc.goAway()
	}
	idle := orDefault(s.IdleTimeout, 2*time.Minute)
	var hb [headerLen]byte
	for {
		sc.mu.Lock()
		if len(sc.streams) == 0 {
			if sc.goingAway {
				sc.mu.Unlock()
				return
			}
			_ = sc.conn.SetReadDeadline(time.Now().Add(idle))
		} else {
			_ = sc.conn.SetReadDeadline(time.Time{})
		}
		sc.mu.Unlock()
		h, err := readHeader(br, &hb)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				sc.mu.Lock()
				gone := sc.goingAway
				sc.mu.Unlock()
				if !gone { // idle: tell the client before closing
					sc.goAway()
				}
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log().Warn("apimux: read failed", "err", err)
			}
			return
		}
		payload := make([]byte, h.length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		switch h.typ {
		case frameRequest:
			sc.request(h.stream, payload)
		case frameWindow:
			if len(payload) != 4 {
				s.log().Warn("apimux: bad window frame; closing")
				return
			}
			if st := sc.stream(h.stream); st != nil {
				st.grant(int(binary.BigEndian.Uint32(payload)))
			}
		case frameCancel:
			if st := sc.stream(h.stream); st != nil {
				st.cancel()
			}
		default:
			s.log().Warn("apimux: unexpected frame; closing", "type", h.typ)
			return
		}
	}
}

func (sc *serverConn) stream(id uint32) *serverStream {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.streams[id]
}

// goAway stops new calls on the connection: the client learns the last
// call taken and sends later ones elsewhere.
func (sc *serverConn) goAway() {
	sc.mu.Lock()
	sc.goingAway = true
	last, w, n := sc.lastID, sc.w, len(sc.streams)
	sc.mu.Unlock()
	if w == nil {
		sc.conn.Close() // no preface yet: nothing in flight
		return
	}
	_ = w.queue(func(b []byte) []byte {
		b = appendHeader(b, frameGoAway, 0, 0, 4)
		return binary.BigEndian.AppendUint32(b, last)
	})
	if n == 0 {
		// Wake the reader; it sees no calls and ends.
		_ = sc.conn.SetReadDeadline(time.Now())
	}
}

func (sc *serverConn) request(id uint32, payload []byte) {
	s := sc.srv
	sc.mu.Lock()
	if sc.goingAway {
		sc.mu.Unlock()
		return // the client sends it again elsewhere
	}
	if id <= sc.lastID {
		sc.mu.Unlock()
		s.log().Warn("apimux: stream id out of order; closing", "id", id, "last", sc.lastID)
		sc.conn.Close()
		return
	}
	sc.lastID = id
	full := len(sc.streams) >= MaxStreams
	st := &serverStream{sc: sc, id: id, window: streamWindow, credit: make(chan struct{}, 1)}
	if !full {
		sc.streams[id] = st
	}
	sc.mu.Unlock()

	rw := &responseWriter{st: st, header: make(http.Header)}
	if full {
		rw.header.Set("Content-Type", "text/plain")
		rw.reason = "too many calls in flight"
		rw.WriteHeader(http.StatusServiceUnavailable)
		rw.finish()
		return
	}
	head, err := decodeRequest(payload)
	var u *url.URL
	if err == nil {
		u, err = url.ParseRequestURI(head.uri)
	}
	if err != nil {
		rw.reason = "malformed request"
		rw.WriteHeader(http.StatusBadRequest)
		rw.finish()
		sc.end(st)
		return
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	st.cancel = cancel
	info := reqinfo.New(netip.AddrPort{}).WithReason(func(r string) { rw.reason = r })
	ctx = reqinfo.NewContext(ctx, info)
	var body io.ReadCloser = http.NoBody
	if len(head.body) > 0 {
		body = io.NopCloser(bytes.NewReader(head.body))
	}
	r := (&http.Request{
		Method: head.method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: head.header, Body: body, ContentLength: int64(len(head.body)),
		Host: head.host, RemoteAddr: "@", RequestURI: head.uri,
	}).WithContext(ctx)
	s.workers.run(func() { st.run(r, rw) })
}

// end forgets a finished call.
func (sc *serverConn) end(st *serverStream) {
	sc.mu.Lock()
	delete(sc.streams, st.id)
	wake := sc.goingAway && len(sc.streams) == 0
	sc.mu.Unlock()
	if wake {
		_ = sc.conn.SetReadDeadline(time.Now())
	}
}

// serverStream is one call in flight.
type serverStream struct {
	sc     *serverConn
	id     uint32
	cancel context.CancelFunc

	mu     sync.Mutex
	window int           // body bytes the client can still take
	credit chan struct{} // capacity 1: window grew
}

func (st *serverStream) grant(n int) {
	st.mu.Lock()
	st.window += n
	st.mu.Unlock()
	select {
	case st.credit <- struct{}{}:
	default:
	}
}

// take waits until the client can take some body bytes and returns how
// many of want it may send now.
func (st *serverStream) take(ctx context.Context, want int) (int, error) {
	for {
		st.mu.Lock()
		if st.window > 0 {
			n := min(want, st.window)
			st.window -= n
			st.mu.Unlock()
			return n, nil
		}
		st.mu.Unlock()
		select {
		case <-st.credit:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (st *serverStream) run(r *http.Request, rw *responseWriter) {
	defer st.sc.end(st)
	defer st.cancel()
	rw.ctx = r.Context()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				rw.abort()
				return
			}
			st.sc.srv.log().Error("apimux: handler panic", "method", r.Method, "uri", r.RequestURI,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rw.headSent {
				rw.header = http.Header{"Content-Type": {"text/plain"}}
				rw.status, rw.wroteHeader, rw.buf = http.StatusInternalServerError, true, nil
				rw.finish()
				return
			}
			rw.abort()
		}
	}()
	st.sc.srv.Handler.ServeHTTP(rw, r)
	rw.finish()
}

// responseWriter buffers a small answer and sends it as one frame; a
// larger one goes out in data frames as the client takes it.
type responseWriter struct {
	st          *serverStream
	ctx         context.Context
	header      http.Header
	status      int
	reason      string
	wroteHeader bool
	headSent    bool
	done        bool
	buf         []byte
	err         error
}

func (rw *responseWriter) Header() http.Header { return rw.header }

func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader || code < 200 {
		return
	}
	rw.status, rw.wroteHeader = code, true
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.err != nil {
		return 0, rw.err
	}
	if rw.status == http.StatusNoContent || rw.status == http.StatusNotModified {
		return 0, http.ErrBodyNotAllowed
	}
	rw.buf = append(rw.buf, p...)
	if len(rw.buf) > dataChunk {
		if err := rw.send(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends what is buffered (http.Flusher).
func (rw *responseWriter) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = rw.send(false)
}

// send sends the head (once) and the buffered body, in chunks the client
// has room for; end marks the last frame.
func (rw *responseWriter) send(end bool) error {
	if rw.err != nil {
		return rw.err
	}
	st := rw.st
	for {
		n := 0
		if len(rw.buf) > 0 {
			var err error
			if n, err = st.take(rw.ctx, min(len(rw.buf), dataChunk)); err != nil {
				rw.err = err
				return err
			}
		}
		last := end && n == len(rw.buf)
		part := rw.buf[:n]
		var flags uint8
		if last {
			flags = flagEnd
		}
		headSent := rw.headSent
		err := st.sc.w.queue(func(b []byte) []byte {
			var at int
			if !headSent {
				b, at = beginFrame(b, frameResponse, flags, st.id)
				b = appendResponse(b, rw.status, rw.reasonPhrase(), rw.header)
			} else {
				b, at = beginFrame(b, frameData, flags, st.id)
			}
			b = append(b, part...)
			return endFrame(b, at)
		})
		if err != nil {
			rw.err = err
			return err
		}
		rw.headSent = true
		rw.buf = rw.buf[n:]
		if last || len(rw.buf) == 0 && !end {
			if len(rw.buf) == 0 {
				rw.buf = nil
			}
			return nil
		}
	}
}

func (rw *responseWriter) reasonPhrase() string {
	if rw.reason != "" {
		return rw.reason
	}
	return http.StatusText(rw.status)
}

// finish ends the answer after the handler returned.
func (rw *responseWriter) finish() {
	if rw.done {
		return
	}
	rw.done = true
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = rw.send(true)
}

// abort ends a call whose answer cannot be completed: the client sees the
// body cut short.
func (rw *responseWriter) abort() {
	rw.done = true
	st := rw.st
	_ = st.sc.w.queue(func(b []byte) []byte {
		return appendHeader(b, frameData, flagEnd|flagAbort, st.id, 0)
	})
}
