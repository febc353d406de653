package vncterm

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Defaults, as PVE's vncterm.
const (
	DefaultCols = 80
	DefaultRows = 25
	// DefaultHandshakeTimeout bounds the RFB handshake.
	DefaultHandshakeTimeout = 10 * time.Second

	// backendBuffer is the size of one read of the backend's output.
	backendBuffer = 4096
	// clientBuffer is the size of the buffers towards and from the client.
	clientBuffer = 64 << 10
)

// Options configures Serve.
type Options struct {
	// Password is the VNC password; its first 8 bytes count. Required:
	// there is no unauthenticated mode.
	Password string
	// Cols and Rows are the terminal's size in characters (0: 80x25).
	Cols, Rows int
	// Name is the desktop name the client shows.
	Name string
	// HandshakeTimeout bounds the handshake (0: 10 s).
	HandshakeTimeout time.Duration
}

// Serve serves one RFB client on client, showing a terminal fed by the
// backend's output, the client's keys written to the backend. It returns
// when the client or the backend ends (nil), ctx ends (its error), the
// handshake fails (ErrAuthFailed for a wrong password) or the client
// breaks the protocol. It closes client and backend before it returns.
func Serve(ctx context.Context, client net.Conn, backend io.ReadWriteCloser, opts Options) error {
	defer client.Close()
	defer backend.Close()
	if opts.Password == "" {
		return errors.New("vncterm: no password")
	}
	if opts.Cols == 0 {
		opts.Cols = DefaultCols
	}
	if opts.Rows == 0 {
		opts.Rows = DefaultRows
	}
	if opts.Cols < 1 || opts.Cols > maxCols || opts.Rows < 1 || opts.Rows > maxRows {
		return fmt.Errorf("vncterm: terminal size %dx%d: must be within 1x1 and %dx%d", opts.Cols, opts.Rows, maxCols, maxRows)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		backend.Close()
	})
	defer stop()

	rw := bufio.NewReadWriter(bufio.NewReaderSize(client, clientBuffer), bufio.NewWriterSize(client, clientBuffer))
	_ = client.SetDeadline(time.Now().Add(opts.HandshakeTimeout))
	c := &conn{
		client: client, backend: backend, rw: rw,
		screen: newScreen(opts.Cols, opts.Rows),
		pf:     defaultPixelFormat,
		glyphs: glyphCache{},
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if err := c.handshake(opts); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("vncterm: handshake with %s: %w", client.RemoteAddr(), err)
	}
	_ = client.SetDeadline(time.Time{})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.end(c.readBackend()) }()
	go func() { defer wg.Done(); c.end(c.readClient()) }()
	c.end(c.writeUpdates())
	client.Close()
	backend.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.err
}

// conn is one client's connection.
type conn struct {
	client  net.Conn
	backend io.ReadWriteCloser
	rw      *bufio.ReadWriter // the client's; the writer is writeUpdates' only

	backendMu sync.Mutex // serialises writes to the backend

	mu      sync.Mutex // guards the fields below
	screen  *screen
	pf      pixelFormat
	request *updateRequest // pending, or nil
	keys    keyState

	glyphs glyphCache // writeUpdates' only

	wake chan struct{} // something for writeUpdates to look at
	done chan struct{} // closed by the first end

	endOnce sync.Once
	err     error // the first end's
}

// updateRequest is a pending FramebufferUpdateRequest, several merged.
type updateRequest struct {
	incremental    bool
	x0, y0, x1, y1 int // cells, inclusive
}

// end records why the connection ends (the first reason counts) and
// stops the others.
func (c *conn) end(err error) {
	c.endOnce.Do(func() {
		c.err = err
		close(c.done)
		c.client.Close()
		c.backend.Close()
	})
}

// signal wakes writeUpdates.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// handshake runs the RFB handshake and ServerInit.
func (c *conn) handshake(opts Options) error {
	if _, err := handshake(c.rw, opts.Password); err != nil {
		return err
	}
	if _, err := c.rw.ReadByte(); err != nil { // ClientInit's shared flag: one client anyway
		return fmt.Errorf("read ClientInit: %w", err)
	}
	c.rw.Write(serverInit(opts.Cols*cellWidth, opts.Rows*cellHeight, c.pf, opts.Name))
	return c.rw.Flush()
}

// readBackend feeds the backend's output to the screen until the backend
// ends. A burst only changes the screen's state: nothing queues.
func (c *conn) readBackend() error {
	buf := make([]byte, backendBuffer)
	for {
		n, err := c.backend.Read(buf)
		if n > 0 {
			c.mu.Lock()
			c.screen.Write(buf[:n])
			replies := c.screen.takeReplies()
			c.mu.Unlock()
			c.signal()
			if len(replies) > 0 {
				if err := c.writeBackend(replies); err != nil {
					return err
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || c.ended() {
				return nil
			}
			return fmt.Errorf("read backend: %w", err)
		}
	}
}

// writeBackend writes p to the backend, one writer at a time.
func (c *conn) writeBackend(p []byte) error {
	c.backendMu.Lock()
	defer c.backendMu.Unlock()
	if _, err := c.backend.Write(p); err != nil {
		if c.ended() {
			return nil
		}
		return fmt.Errorf("write backend: %w", err)
	}
	return nil
}

func (c *conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// readClient handles the client's messages until it ends.
func (c *conn) readClient() error {
	for {
		m, err := readClientMessage(c.rw.Reader)
		if err != nil {
			if errors.Is(err, io.EOF) || c.ended() {
				return nil
			}
			return fmt.Errorf("client: %w", err)
		}
		switch m.typ {
		case msgSetPixelFormat:
			c.mu.Lock()
			c.pf = m.pf
			c.mu.Unlock()
		case msgFramebufferUpdateRequest:
			c.mu.Lock()
			c.mergeRequest(m)
			c.mu.Unlock()
			c.signal()
		case msgKeyEvent:
			c.mu.Lock()
			b := c.keys.event(m.key, m.down, c.screen.appCursor)
			c.mu.Unlock()
			if b != nil {
				if err := c.writeBackend(b); err != nil {
					return err
				}
			}
		}
	}
}

// mergeRequest adds a FramebufferUpdateRequest to the pending one: the
// union of the areas, non-incremental if either is.
func (c *conn) mergeRequest(m clientMessage) {
	s := c.screen
	w, h := s.cols*cellWidth, s.rows*cellHeight
	px0, py0 := min(int(m.x), w), min(int(m.y), h)
	px1, py1 := min(int(m.x)+int(m.w), w), min(int(m.y)+int(m.h), h)
	if px1 <= px0 || py1 <= py0 {
		// An empty area: take the first cell's, so that the request
		// is answered all the same.
		px0, py0, px1, py1 = 0, 0, 1, 1
	}
	r := updateRequest{
		incremental: m.incremental,
		x0:          px0 / cellWidth, y0: py0 / cellHeight,
		x1: (px1 - 1) / cellWidth, y1: (py1 - 1) / cellHeight,
	}
	if p := c.request; p != nil {
		r.incremental = r.incremental && p.incremental
		r.x0, r.y0 = min(r.x0, p.x0), min(r.y0, p.y0)
		r.x1, r.y1 = max(r.x1, p.x1), max(r.y1, p.y1)
	}
	c.request = &r
}

// rowUpdate is the cells of one rectangle of an update: part of a row.
type rowUpdate struct {
	x, y   int // first cell
	cells  []cell
	cursor int // index of the cursor's cell in cells, or -1
}

// writeUpdates answers the client's update requests: a non-incremental
// one with its whole area, an incremental one with what changed in it as
// soon as something did. A slow client slows this down only: the screen
// goes on changing and the next update shows its latest state.
func (c *conn) writeUpdates() error {
	var pixels []byte
	for {
		c.mu.Lock()
		var rows []rowUpdate
		var pf pixelFormat
		ready := c.request != nil && (!c.request.incremental ||
			c.screen.hasDirtyIn(c.request.x0, c.request.y0, c.request.x1, c.request.y1))
		if ready {
			rows, pf = c.snapshot(*c.request), c.pf
			c.request = nil
		}
		c.mu.Unlock()
		if !ready {
			select {
			case <-c.wake:
				continue
			case <-c.done:
				return nil
			}
		}
		var err error
		if pixels, err = c.writeUpdate(rows, pf, pixels); err != nil {
			if c.ended() {
				return nil
			}
			return fmt.Errorf("write update: %w", err)
		}
	}
}

// snapshot copies the cells to send for request r (all of its area, or
// what changed in it) and marks the screen clean. Called with c.mu held.
func (c *conn) snapshot(r updateRequest) []rowUpdate {
	s := c.screen
	dirty := s.takeDirty(!r.incremental)
	var rows []rowUpdate
	for y := r.y0; y <= r.y1; y++ {
		d := dirty[y]
		lo, hi := max(d.lo, r.x0), min(d.hi, r.x1)
		if lo > hi {
			continue
		}
		u := rowUpdate{x: lo, y: y, cursor: -1}
		u.cells = append([]cell(nil), s.cells[y*s.cols+lo:y*s.cols+hi+1]...)
		if s.cursorVisible && s.y == y && s.x >= lo && s.x <= hi {
			u.cursor = s.x - lo
		}
		rows = append(rows, u)
	}
	// Changes outside the requested area stay for a later request.
	for y := range s.rows {
		d := dirty[y]
		if y < r.y0 || y > r.y1 {
			if d.lo <= d.hi {
				s.markDirty(y, d.lo, d.hi)
			}
			continue
		}
		if d.lo < r.x0 {
			s.markDirty(y, d.lo, min(d.hi, r.x0-1))
		}
		if d.hi > r.x1 {
			s.markDirty(y, max(d.lo, r.x1+1), d.hi)
		}
	}
	return rows
}

// writeUpdate writes one FramebufferUpdate of rows in raw encoding,
// reusing buf for the pixels of one row, and returns the buffer.
func (c *conn) writeUpdate(rows []rowUpdate, pf pixelFormat, buf []byte) ([]byte, error) {
	w := c.rw.Writer
	hdr := []byte{msgFramebufferUpdate, 0}
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(rows)))
	if _, err := w.Write(hdr); err != nil {
		return buf, err
	}
	for _, u := range rows {
		var rect []byte
		rect = binary.BigEndian.AppendUint16(rect, uint16(u.x*cellWidth))
		rect = binary.BigEndian.AppendUint16(rect, uint16(u.y*cellHeight))
		rect = binary.BigEndian.AppendUint16(rect, uint16(len(u.cells)*cellWidth))
		rect = binary.BigEndian.AppendUint16(rect, cellHeight)
		rect = binary.BigEndian.AppendUint32(rect, encodingRaw)
		if _, err := w.Write(rect); err != nil {
			return buf, err
		}
		n := len(u.cells) * cellWidth * cellHeight * pf.bytesPerPixel()
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		renderCells(buf, u.cells, u.cursor, pf, c.glyphs)
		if _, err := w.Write(buf); err != nil {
			return buf, err
		}
	}
	return buf, w.Flush()
}
