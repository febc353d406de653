// Package spicehandoff passes a SPICE client's connection from spiceproxy to
// pvedaemon, which gives it to the VM's QEMU (QMP add_client): once the
// connection is handed over, its bytes go between the client and QEMU with
// no proxy in between.
//
// spiceproxy runs as www-data and cannot reach QEMU's monitor; pvedaemon
// (root) can. The two talk over a SOCK_SEQPACKET Unix socket in pvedaemon's
// run directory (root:www-data, 0660): one request per connection, a JSON
// object {"ticket": CONNECT-host} with the client's descriptor as
// SCM_RIGHTS ancillary data, answered by {} or {"error": "..."}. pvedaemon
// verifies the ticket itself (signature, age, node) before anything else.
//
// PVE's spiceproxy copies every byte between the client and the VM's
// SPICE port; this is an addition of ours (docs/spiceproxy.md).
package spicehandoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Bounds of the exchange.
const (
	// MaxMessage bounds a request and an answer (a ticket is about 200
	// bytes).
	MaxMessage = 4 << 10
	// Timeout bounds one exchange on either side: connecting, the request,
	// QEMU's work and the answer.
	Timeout = 10 * time.Second
)

type request struct {
	Ticket string `json:"ticket"`
}

type answer struct {
	Error string `json:"error,omitempty"`
}

// RefusedError is pvedaemon's refusal: the connection was not handed over
// and is still the caller's alone.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "spice handoff refused: " + e.Reason }

// Client hands connections over through the socket at Socket.
type Client struct {
	Socket string
	// Timeout bounds one handoff (0 = Timeout).
	Timeout time.Duration
}

// Handoff passes conn's descriptor and the CONNECT ticket to pvedaemon. On
// nil the connection belongs to QEMU now: the caller may still write its
// CONNECT answer (a SPICE server speaks only after the client) and then
// closes its own descriptor. A *RefusedError means nothing was handed over;
// any other error means the outcome is unknown and the connection must be
// closed.
func (c *Client) Handoff(ctx context.Context, conn syscall.Conn, ticket string) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := json.Marshal(request{Ticket: ticket})
	if err != nil {
		return &RefusedError{Reason: err.Error()}
	}
	if len(req) > MaxMessage {
		return &RefusedError{Reason: "ticket too long"}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", c.Socket)
	if err != nil {
		// Nothing sent: the connection is still ours.
		return &RefusedError{Reason: fmt.Sprintf("connect to pvedaemon: %v", err)}
	}
	uc := nc.(*net.UnixConn)
	defer uc.Close()
	deadline, _ := ctx.Deadline()
	_ = uc.SetDeadline(deadline)
	raw, err := conn.SyscallConn()
	if err != nil {
		return &RefusedError{Reason: err.Error()}
	}
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix(req, syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return &RefusedError{Reason: err.Error()}
	}
	if werr != nil {
		// A SOCK_SEQPACKET send is all or nothing.
		return &RefusedError{Reason: fmt.Sprintf("send to pvedaemon: %v", werr)}
	}
	buf := make([]byte, MaxMessage)
	n, err := uc.Read(buf)
	if err != nil {
		return fmt.Errorf("spice handoff: read pvedaemon's answer: %w", err)
	}
	var a answer
	if err := json.Unmarshal(buf[:n], &a); err != nil {
		return fmt.Errorf("spice handoff: pvedaemon's answer %.100q: %w", buf[:n], err)
	}
	if a.Error != "" {
		return &RefusedError{Reason: a.Error}
	}
	return nil
}

// Handler hands conn to the VM the ticket names. It owns nothing: the
// server closes conn when the handler returns.
type Handler func(ctx context.Context, ticket string, conn *os.File) error

// Server answers handoff requests on a SOCK_SEQPACKET listener.
type Server struct {
	Handle Handler
	// AllowUID says whether a peer's user may hand over connections (nil =
	// any user who can open the socket).
	AllowUID func(uid uint32) bool
	Log      *slog.Logger

	mu     sync.Mutex
	ln     *net.UnixListener
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("spicehandoff: server closed")

// Serve accepts requests on ln until Close.
func (s *Server) Serve(ln *net.UnixListener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

// Close stops accepting and waits for requests in progress (each bounded
// by Timeout).
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve(c *net.UnixConn) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(Timeout))
	reply := func(err error) {
		var a answer
		if err != nil {
			a.Error = err.Error()
			if s.Log != nil {
				s.Log.Info("spice handoff refused", "err", err)
			}
		}
		b, _ := json.Marshal(a)
		_, _ = c.Write(b)
	}
	// The request is read before any answer, refusals included: closing a
	// Unix socket with unread data resets the peer, which would then not
	// see the answer.
	buf := make([]byte, MaxMessage)
	oob := make([]byte, syscall.CmsgSpace(4*4)) // room to see extra descriptors
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files, ferr := receivedFiles(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if s.AllowUID != nil {
		uid, err := peerUID(c)
		if err != nil {
			reply(err)
			return
		}
		if !s.AllowUID(uid) {
			reply(fmt.Errorf("user %d may not hand over connections", uid))
			return
		}
	}
	switch {
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		reply(errors.New("request too long"))
		return
	case ferr != nil:
		reply(ferr)
		return
	case len(files) != 1:
		reply(fmt.Errorf("request carries %d descriptors; want 1", len(files)))
		return
	}
	var req request
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		reply(fmt.Errorf("bad request: %v", err))
		return
	}
	if err := isStreamSocket(files[0]); err != nil {
		reply(err)
		return
	}
	reply(s.Handle(ctx, req.Ticket, files[0]))
}

// receivedFiles turns SCM_RIGHTS control messages into files.
func receivedFiles(oob []byte) ([]*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			syscall.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "spice-client"))
		}
	}
	return files, nil
}

// isStreamSocket refuses a descriptor that is not a connected stream
// socket (a file or a pipe has no business in QEMU's SPICE server).
func isStreamSocket(f *os.File) error {
	var typ int
	var serr error
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if err := raw.Control(func(fd uintptr) {
		typ, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("descriptor is not a socket: %v", serr)
	}
	if typ != syscall.SOCK_STREAM {
		return fmt.Errorf("descriptor is a socket of type %d, not a stream", typ)
	}
	return nil
}

// peerUID returns the user of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return cred.Uid, nil
}
