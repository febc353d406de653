package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// File uploads (methods declared with Method.Upload).
//
// PVE's pveproxy writes an upload to /var/tmp/pveupload-<hex> while it
// arrives and then hands pvedaemon that file's name (the tmpfilename
// parameter). Here nothing is held whole, in memory or on disk, on the way:
//
//   - Both daemons read the multipart/form-data body only up to the file
//     part: the parts before it are parameters (MaxBody bytes at most, as
//     any other call's body), validated and permission-checked as usual.
//   - pveproxy then forwards the body unchanged (the bytes it read, then the
//     rest as it arrives) on a connection of its own to pvedaemon's HTTP
//     socket; the apimux hop carries request bodies whole, so uploads do not
//     take it.
//   - pvedaemon hands the file part to the handler as Request.Upload, which
//     ends in io.EOF only when the whole body arrived well formed.
//
// Reads of the client's body have an idle timeout (Config.UploadIdleTimeout)
// instead of the server's whole-request ReadTimeout.

// DefaultUploadIdleTimeout is how long an upload's body may stall before
// the call fails, and how long pveproxy waits for pvedaemon to take more of
// it.
const DefaultUploadIdleTimeout = 60 * time.Second

// Upload is the file of a call to a method declared with Method.Upload: the
// `filename` part of its multipart/form-data body, read as the handler reads
// it. Read returns io.EOF only after the whole body arrived and the file part
// was its last part; a body cut short (the client went away, stalled past
// the idle timeout, or sent a truncated or malformed multipart body) ends
// with an *Error, and the handler must keep nothing of what it read.
type Upload struct {
	// MaxSize bounds the file's size: the length of the whole body.
	MaxSize int64

	body *uploadBody
	mr   *multipart.Reader
	part *multipart.Part
	head []byte // pveproxy: the body bytes read before the file, to send on
	err  error
}

// Read reads the file.
func (u *Upload) Read(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	n, err := u.part.Read(p)
	if err == io.EOF {
		// The file ends at a boundary; it must be the closing one.
		switch _, nerr := u.mr.NextRawPart(); {
		case nerr == io.EOF:
		case nerr == nil:
			err = Errorf(http.StatusBadRequest, "upload failed - unexpected part after the file")
		default:
			err = nerr
		}
	}
	if err != nil && err != io.EOF {
		err = u.body.failure(err)
	}
	u.err = err
	return n, err
}

// replay is the body as the client sent it, for pveproxy to forward: the
// bytes read to find the file, then the rest as it arrives.
func (u *Upload) replay() io.Reader {
	return io.MultiReader(bytes.NewReader(u.head), u.body)
}

// errHeadTooLarge is returned by reads of an upload's body beyond MaxBody
// before the file part starts.
var errHeadTooLarge = errors.New("upload: parameters too large")

// uploadBody reads the client's body of an upload: it renews the idle
// deadline as data arrives, bounds the part before the file, records that
// part in pveproxy, and remembers why reading failed.
type uploadBody struct {
	r     io.Reader
	rc    *http.ResponseController
	idle  time.Duration
	limit int64         // >= 0: reads beyond fail with errHeadTooLarge
	rec   *bytes.Buffer // non-nil: bytes read are recorded
	n     int64
	last  time.Time // when the deadline was last renewed

	mu      sync.Mutex // guards aborted, err and the connection's read deadline
	aborted bool
	err     error // first read error before abort: the client's failure
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.limit >= 0 {
		if b.n >= b.limit {
			return 0, errHeadTooLarge
		}
		if rem := b.limit - b.n; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	// Renewing the deadline costs a timer update; a few times per idle
	// period is enough.
	if now := time.Now(); now.Sub(b.last) > b.idle/4 {
		b.mu.Lock()
		if b.aborted {
			b.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		_ = b.rc.SetReadDeadline(now.Add(b.idle))
		b.mu.Unlock()
		b.last = now
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.rec != nil {
		b.rec.Write(p[:n])
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil && !b.aborted {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// abort makes reads of the body fail at once (pvedaemon refused the upload
// before it had all of it); it may run while another goroutine reads.
func (b *uploadBody) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.aborted = true
	_ = b.rc.SetReadDeadline(time.Unix(1, 0))
}

// uploadLinger bounds how long pveproxy drains the body of an upload it
// answered early.
const uploadLinger = 5 * time.Second

// linger flushes the answer already written to w, then reads and drops
// what is left of the client's body until it ends or uploadLinger passed.
// A client still sending would otherwise meet a connection reset when the
// server closes with its data unread, and many clients (Go's among them)
// then report the reset instead of the answer. It runs with no other
// reader of body.
func linger(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(uploadLinger))
	_, _ = io.Copy(io.Discard, body)
}

// clientErr is why reading the client's body failed, or nil.
func (b *uploadBody) clientErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// failure turns an error met while reading the file into the call's error.
func (b *uploadBody) failure(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if cerr := b.clientErr(); cerr != nil {
		err = cerr
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(http.StatusBadRequest, "upload failed - no data received for %v", b.idle)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "upload failed - request body cut short")
	}
	return Errorf(http.StatusBadRequest, "upload failed - %v", err)
}

// readUpload reads an upload's body up to its file part. The parts before
// it are parameters; those m does not declare are ignored, as PVE's pveproxy
// reads only the ones it knows. PVE's tmpfilename (the name of pveproxy's
// temporary file) is refused: nothing is written to a temporary file here,
// and no caller may point pvedaemon at a file of its choice.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, m *Method) (rawParams, *Upload, error) {
	ctype := r.Header.Get("Content-Type")
	mt, mp, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "multipart/form-data" || mp["boundary"] == "" {
		return nil, nil, Errorf(506, "upload 'Content-Type '%s' not implemented", ctype)
	}
	if r.URL.Query().Has("tmpfilename") {
		return nil, nil, Errorf(http.StatusBadRequest, "'tmpfilename' query parameter is not allowed for file uploads")
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	body := &uploadBody{r: r.Body, rc: http.NewResponseController(w), idle: s.cfg.UploadIdleTimeout, limit: s.cfg.MaxBody}
	if s.cfg.Mode == ModeProxy {
		body.rec = &bytes.Buffer{}
	}
	mr := multipart.NewReader(body, mp["boundary"])
	raw := rawParams{}
	for {
		part, err := mr.NextRawPart()
		if err != nil {
			return nil, nil, headError(body, err)
		}
		cd := part.Header.Get("Content-Disposition")
		disp, dp, err := mime.ParseMediaType(cd)
		if err != nil || disp != "form-data" {
			return nil, nil, Errorf(http.StatusBadRequest, "wrong Content-Disposition '%s' in multipart, expected 'form-data'", cd)
		}
		name := dp["name"]
		if fn, isFile := dp["filename"]; isFile {
			if name != "filename" {
				return nil, nil, Errorf(http.StatusBadRequest, "wrong field name '%s' for file upload, expected 'filename'", name)
			}
			raw["filename"] = strings.TrimSpace(fn)
			up := &Upload{MaxSize: r.ContentLength, body: body, mr: mr, part: part}
			if body.rec != nil {
				up.head, body.rec = body.rec.Bytes(), nil
			}
			body.limit = -1
			return raw, up, nil
		}
		v, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, headError(body, err)
		}
		if name == "tmpfilename" {
			return nil, nil, Errorf(http.StatusBadRequest, "'tmpfilename' is not allowed for file uploads")
		}
		if _, declared := m.Params[name]; !declared || name == "filename" {
			continue
		}
		val := strings.TrimSpace(string(v))
		switch old := raw[name].(type) {
		case nil:
			raw[name] = val
		case string:
			raw[name] = []string{old, val}
		case []string:
			raw[name] = append(old, val)
		}
	}
}

// headError is the error of an upload whose body failed before the file.
func headError(b *uploadBody, err error) error {
	switch {
	case errors.Is(err, errHeadTooLarge):
		return Errorf(http.StatusNotImplemented, "for data too large")
	case b.clientErr() != nil:
		return b.failure(err)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "upload failed - no file part 'filename' in the request")
	}
	return Errorf(http.StatusBadRequest, "upload failed - malformed multipart body: %v", err)
}

// maxUploadAnswer bounds pvedaemon's answer to an upload (a UPID or an
// error), which pveproxy reads whole before relaying it.
const maxUploadAnswer = 1 << 20

// ForwardUpload sends an upload to pvedaemon and relays its answer. The
// body streams through on a connection of its own to pvedaemon's HTTP
// socket (or 127.0.0.1:85), never pooled: up's bytes read so far, then the
// rest of the client's body as it arrives, with flow control from the two
// TCP or Unix-socket windows. If pvedaemon answers before it has the whole
// body (it refused the upload), forwarding stops and the answer is relayed,
// then the rest of the client's body is drained a while (see linger); if
// the client's body ends early, the connection to pvedaemon is closed, so
// pvedaemon sees the body cut short too.
func (f *Forwarder) ForwardUpload(w http.ResponseWriter, r *http.Request, up *Upload, id Identity, clientIP netip.Addr) {
	ctx := r.Context()
	conn, err := f.dialUpload(ctx)
	if err != nil {
		f.log.Error("forward to pvedaemon failed", "addr", f.addr, "err", err)
		WriteError(w, r, http.StatusInternalServerError, "proxy request to pvedaemon failed: "+shortErr(err)+"\n")
		return
	}
	defer conn.Close()
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+f.addr+r.URL.RequestURI(), up.replay())
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, "proxy request to pvedaemon failed: "+err.Error()+"\n")
		return
	}
	req.ContentLength = r.ContentLength
	req.Header = forwardHeader(r, id, clientIP)
	req.Host = r.Host
	req.Close = true

	sent := make(chan error, 1)
	go func() { // ForwardUpload waits for this before it returns
		bw := bufio.NewWriterSize(idleWriter{conn, DefaultUploadIdleTimeout}, 64<<10)
		err := req.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		switch {
		case err == nil:
			_ = conn.SetReadDeadline(time.Now().Add(f.client.timeout))
		case up.body.clientErr() != nil:
			// The client's body ended early: so does pvedaemon's, which
			// then keeps nothing.
			conn.Close()
		}
		// Otherwise pvedaemon stopped reading: its answer is on the way.
		sent <- err
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(io.LimitReader(resp.Body, maxUploadAnswer))
		resp.Body.Close()
	}
	var werr error
	select {
	case werr = <-sent:
	default:
		// pvedaemon answered (or failed) before it had the whole body.
		up.body.abort()
		conn.Close()
		werr = <-sent
	}
	if werr != nil && up.body.clientErr() == nil {
		// pvedaemon stopped taking the body: answer, then drain what is
		// left of the client's a while.
		_ = http.NewResponseController(w).EnableFullDuplex()
		defer linger(w, r.Body)
	}
	if err != nil {
		if cerr := up.body.clientErr(); cerr != nil {
			f.log.Debug("upload cut short by the client", "err", cerr)
			e := up.body.failure(cerr)
			WriteError(w, r, e.Status, e.Message)
			return
		}
		if ctx.Err() != nil {
			return
		}
		f.log.Error("forward to pvedaemon failed", "addr", f.addr, "err", err)
		WriteError(w, r, http.StatusInternalServerError, "proxy request to pvedaemon failed: "+shortErr(err)+"\n")
		return
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	resp.ContentLength = int64(len(answer))
	f.relay(w, r, resp)
}

// dialUpload opens a connection to pvedaemon's HTTP socket, or to its TCP
// address when there is no socket.
func (f *Forwarder) dialUpload(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: f.client.dialTimeout}
	if f.client.socket != "" {
		if c, err := d.DialContext(ctx, "unix", f.client.socket); err == nil {
			return c, nil
		}
	}
	c, err := d.DialContext(ctx, "tcp", f.client.addr)
	if err != nil {
		return nil, fmt.Errorf("dial pvedaemon: %w", err)
	}
	return c, nil
}

// idleWriter renews a connection's write deadline before each write.
type idleWriter struct {
	c    net.Conn
	idle time.Duration
}

func (w idleWriter) Write(p []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.idle))
	return w.c.Write(p)
}
