package apimux

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Request is one call: Method, the request URI (path and query), Host,
// header fields and the whole body (at most MaxRequestBody).
type Request struct {
	Method, URI, Host string
	Header            http.Header
	Body              []byte
}

// Client sends calls to a Server listening on a Unix socket. It keeps the
// connections open and opens another one only when MaxStreams calls are
// in flight on every open one. The zero value is not usable; set Socket.
type Client struct {
	Socket      string
	DialTimeout time.Duration // default 5 s
	// Timeout bounds a call until its answer's head arrives (default
	// 30 s, PVE's); the caller's context can end it sooner.
	Timeout time.Duration
	// IdleTimeout closes a connection without calls for this long
	// (default 1 minute, below the server's 2).
	IdleTimeout time.Duration

	mu    sync.Mutex
	conns []*clientConn
}

var (
	// ErrConnLost is the error of calls whose connection ended before
	// their answer came; the call may or may not have been carried out.
	ErrConnLost = errors.New("apimux: connection to the server lost")
	// errNotSeen marks calls the server declared it had not taken; they
	// are sent again on another connection.
	errNotSeen = errors.New("apimux: call not taken by the server")
	errAborted = errors.New("apimux: answer cut short by the server")
	errTimeout = errors.New("apimux: timeout waiting for the answer")
)

// Do sends req and returns the answer; its Body must be closed (closing
// it before the end cancels the call on the server). A call is sent again
// only when the server said it had not taken it (its connection was
// going away).
func (c *Client) Do(ctx context.Context, req *Request) (*http.Response, error) {
	if len(req.Body) > MaxRequestBody {
		return nil, fmt.Errorf("apimux: request body of %d bytes over the %d limit", len(req.Body), MaxRequestBody)
	}
	timer := time.NewTimer(orDefault(c.Timeout, 30*time.Second))
	defer timer.Stop()
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		st, err := cc.start(ctx, req)
		if err != nil {
			if errors.Is(err, errNotSeen) && attempt < 3 {
				continue
			}
			return nil, err
		}
		var res streamHead
		select {
		case res = <-st.head:
		case <-ctx.Done():
			st.cancel()
			return nil, ctx.Err()
		case <-timer.C:
			st.cancel()
			return nil, errTimeout
		}
		if res.err != nil {
			if errors.Is(res.err, errNotSeen) && attempt < 3 {
				continue
			}
			return nil, res.err
		}
		return st.response(req, res.head), nil
	}
}

// CloseIdle closes the connections without calls in flight.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	var keep []*clientConn
	var drop []*clientConn
	for _, cc := range c.conns {
		if cc.inFlight() == 0 {
			drop = append(drop, cc)
		} else {
			keep = append(keep, cc)
		}
	}
	c.conns = keep
	c.mu.Unlock()
	for _, cc := range drop {
		cc.close(ErrConnLost)
	}
}

// conn returns a connection with room for a call, dialing one if needed.
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	idle := orDefault(c.IdleTimeout, time.Minute)
	now := time.Now()
	c.mu.Lock()
	var pick *clientConn
	live := c.conns[:0]
	var stale []*clientConn
	for _, cc := range c.conns {
		usable, n, last := cc.state()
		switch {
		case !usable && n == 0:
			stale = append(stale, cc)
			continue
		case usable && n == 0 && now.Sub(last) > idle:
			stale = append(stale, cc)
			continue
		}
		live = append(live, cc)
		if usable && n < MaxStreams && pick == nil {
			pick = cc
		}
	}
	clear(c.conns[len(live):])
	c.conns = live
	c.mu.Unlock()
	for _, cc := range stale {
		cc.close(ErrConnLost)
	}
	if pick != nil {
		return pick, nil
	}
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, cc)
	c.mu.Unlock()
	return cc, nil
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	d := net.Dialer{Timeout: orDefault(c.DialTimeout, 5*time.Second)}
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{c: c, conn: conn, streams: map[uint32]*clientStream{}, nextID: 1, lastUse: time.Now()}
	cc.w = newFrameWriter(conn, 30*time.Second, func(err error) { cc.close(fmt.Errorf("%w: %v", ErrConnLost, err)) })
	if err := cc.w.queue(func(b []byte) []byte { return append(b, Preface...) }); err != nil {
		conn.Close()
		return nil, err
	}
	go cc.read()
	return cc, nil
}

// clientConn is one connection to the server.
type clientConn struct {
	c    *Client
	conn net.Conn
	w    *frameWriter

	mu      sync.Mutex
	streams map[uint32]*clientStream
	nextID  uint32
	goAway  bool   // the server takes no new calls here
	lastOK  uint32 // with goAway: the last call it took
	err     error  // set when the connection ended
	lastUse time.Time
}

func (cc *clientConn) state() (usable bool, inFlight int, lastUse time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err == nil && !cc.goAway, len(cc.streams), cc.lastUse
}

func (cc *clientConn) inFlight() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams)
}

// start registers a stream and queues its request. Ids are given and
// queued under one lock, so they reach the server in order.
func (cc *clientConn) start(ctx context.Context, req *Request) (*clientStream, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil || cc.goAway || len(cc.streams) >= MaxStreams {
		return nil, errNotSeen
	}
	id := cc.nextID
	cc.nextID++
	st := &clientStream{cc: cc, id: id, ctx: ctx, head: make(chan streamHead, 1), ready: make(chan struct{}, 1)}
	err := cc.w.queue(func(b []byte) []byte {
		b, at := beginFrame(b, frameRequest, flagEnd, id)
		b = appendRequest(b, req.Method, req.URI, req.Host, req.Header, req.Body)
		return endFrame(b, at)
	})
	if err != nil {
		return nil, errNotSeen // the connection failed before this call was written
	}
	cc.streams[id] = st
	cc.lastUse = time.Now()
	return st, nil
}

func (cc *clientConn) forget(id uint32) {
	cc.mu.Lock()
	delete(cc.streams, id)
	cc.lastUse = time.Now()
	cc.mu.Unlock()
}

// close ends the connection; calls in flight fail with err.
func (cc *clientConn) close(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	streams := cc.streams
	cc.streams = map[uint32]*clientStream{}
	cc.mu.Unlock()
	cc.conn.Close()
	for _, st := range streams {
		st.fail(err)
	}
}

func (cc *clientConn) read() {
	br := bufio.NewReaderSize(cc.conn, 64<<10)
	var hb [headerLen]byte
	for {
		h, err := readHeader(br, &hb)
		if err != nil {
			cc.close(fmt.Errorf("%w: %v", ErrConnLost, err))
			return
		}
		payload := make([]byte, h.length)
		if _, err := io.ReadFull(br, payload); err != nil {
			cc.close(fmt.Errorf("%w: %v", ErrConnLost, err))
			return
		}
		switch h.typ {
		case frameResponse:
			st := cc.lookup(h.stream)
			if st == nil {
				continue // cancelled meanwhile
			}
			head, err := decodeResponse(payload)
			if err != nil {
				cc.close(fmt.Errorf("%w: %v", ErrConnLost, err))
				return
			}
			st.gotHead(head, h.flags&flagEnd != 0)
		case frameData:
			if st := cc.lookup(h.stream); st != nil {
				st.push(payload, h.flags)
			}
		case frameGoAway:
			if len(payload) != 4 {
				cc.close(fmt.Errorf("%w: bad goaway frame", ErrConnLost))
				return
			}
			cc.goneAway(binary.BigEndian.Uint32(payload))
		default:
			cc.close(fmt.Errorf("%w: unexpected frame type %d", ErrConnLost, h.typ))
			return
		}
	}
}

func (cc *clientConn) lookup(id uint32) *clientStream {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.streams[id]
}

// goneAway records the server's goaway: calls after last were not taken
// and are sent again elsewhere.
func (cc *clientConn) goneAway(last uint32) {
	cc.mu.Lock()
	cc.goAway, cc.lastOK = true, last
	var retry []*clientStream
	for id, st := range cc.streams {
		if id > last {
			retry = append(retry, st)
			delete(cc.streams, id)
		}
	}
	cc.mu.Unlock()
	for _, st := range retry {
		st.fail(errNotSeen)
	}
}

// streamHead is what a caller waiting for an answer receives.
type streamHead struct {
	head responseHead
	err  error
}

// clientStream is one call in flight on a connection.
type clientStream struct {
	cc   *clientConn
	id   uint32
	ctx  context.Context
	head chan streamHead // capacity 1

	mu       sync.Mutex
	chunks   [][]byte
	end      bool
	err      error
	ready    chan struct{} // capacity 1: chunks, end or err changed
	consumed int           // body bytes read since the last window grant
	headSeen bool
	closed   bool
}

func (st *clientStream) gotHead(h responseHead, end bool) {
	st.mu.Lock()
	st.headSeen = true
	if len(h.body) > 0 {
		st.chunks = append(st.chunks, h.body)
	}
	st.end = end
	st.mu.Unlock()
	if end {
		st.cc.forget(st.id)
	}
	select {
	case st.head <- streamHead{head: h}:
	default: // the call already failed (its connection was closed)
	}
}

func (st *clientStream) push(p []byte, flags uint8) {
	st.mu.Lock()
	if flags&flagAbort != 0 {
		st.err = errAborted
	} else if len(p) > 0 {
		st.chunks = append(st.chunks, p)
	}
	end := flags&flagEnd != 0
	st.end = st.end || end
	seen := st.headSeen
	st.mu.Unlock()
	if end {
		st.cc.forget(st.id)
	}
	if !seen && flags&flagAbort != 0 {
		select {
		case st.head <- streamHead{err: errAborted}:
		default:
		}
		return
	}
	st.signal()
}

func (st *clientStream) signal() {
	select {
	case st.ready <- struct{}{}:
	default:
	}
}

// fail ends the call with err (the connection ended or went away).
func (st *clientStream) fail(err error) {
	st.mu.Lock()
	seen := st.headSeen
	if st.err == nil && !st.end {
		st.err = err
	}
	st.mu.Unlock()
	if !seen {
		select {
		case st.head <- streamHead{err: err}:
		default:
		}
		return
	}
	st.signal()
}

// cancel tells the server the caller went away, unless the answer is
// complete.
func (st *clientStream) cancel() {
	st.mu.Lock()
	done := st.end || st.err != nil || st.closed
	st.closed = true
	st.mu.Unlock()
	if done {
		return
	}
	st.cc.forget(st.id)
	_ = st.cc.w.queue(func(b []byte) []byte { return appendHeader(b, frameCancel, 0, st.id, 0) })
}

func (st *clientStream) response(req *Request, h responseHead) *http.Response {
	resp := &http.Response{
		Status:     strconv.Itoa(h.status) + " " + h.reason,
		StatusCode: h.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        h.header,
		ContentLength: -1,
		Body:          &streamBody{st: st},
	}
	st.mu.Lock()
	if st.end && st.err == nil {
		n := 0
		for _, c := range st.chunks {
			n += len(c)
		}
		resp.ContentLength = int64(n)
	} else if v := h.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			resp.ContentLength = n
		}
	}
	st.mu.Unlock()
	if req.Method == http.MethodHead {
		resp.ContentLength = 0
	}
	return resp
}

// streamBody reads an answer's body as it arrives and grants the server
// more room as it is consumed.
type streamBody struct{ st *clientStream }

func (b *streamBody) Read(p []byte) (int, error) {
	piece, err := b.st.next(len(p))
	return copy(p, piece), err
}

// WriteTo writes the body to w as it arrives, without the copy buffer
// io.Copy would allocate for every call.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		piece, err := b.st.next(0)
		if len(piece) > 0 {
			n, werr := w.Write(piece)
			total += int64(n)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// next waits for the next piece of the body, at most max bytes (a whole
// chunk for max <= 0), and grants the server more room as the body is
// consumed; at the end it returns io.EOF.
func (st *clientStream) next(max int) ([]byte, error) {
	for {
		st.mu.Lock()
		if len(st.chunks) > 0 {
			piece := st.chunks[0]
			if max > 0 && len(piece) > max {
				piece = piece[:max]
				st.chunks[0] = st.chunks[0][max:]
			} else {
				st.chunks[0] = nil
				st.chunks = st.chunks[1:]
			}
			st.consumed += len(piece)
			grant := 0
			if st.consumed >= windowUpdate && !st.end {
				grant, st.consumed = st.consumed, 0
			}
			st.mu.Unlock()
			if grant > 0 {
				_ = st.cc.w.queue(func(b []byte) []byte {
					b = appendHeader(b, frameWindow, 0, st.id, 4)
					return binary.BigEndian.AppendUint32(b, uint32(grant))
				})
			}
			return piece, nil
		}
		if st.err != nil {
			err := st.err
			st.mu.Unlock()
			if errors.Is(err, errAborted) || errors.Is(err, ErrConnLost) {
				return nil, fmt.Errorf("%w: %w", io.ErrUnexpectedEOF, err)
			}
			return nil, err
		}
		if st.end {
			st.mu.Unlock()
			return nil, io.EOF
		}
		st.mu.Unlock()
		select {
		case <-st.ready:
		case <-st.ctx.Done():
			st.cancel()
			return nil, st.ctx.Err()
		}
	}
}

// Close cancels the call on the server if its answer is not complete.
func (b *streamBody) Close() error {
	b.st.cancel()
	return nil
}
