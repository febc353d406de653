package termproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PVE's values.
const (
	// PortFirst and PortLast bound the console ports (next_vnc_port).
	PortFirst, PortLast = 5900, 5999
	// AcceptTimeout is how long a console task waits for its client.
	AcceptTimeout = 10 * time.Second
	// TicketTimeout is how long the client has for its ticket line.
	TicketTimeout = 10 * time.Second
	// lineMax bounds the ticket line (termproxy's buffer).
	lineMax = 4096
	// bufferSize is the buffer of each direction of the relay.
	bufferSize = 64 << 10
	// numberMax is the longest number of a message termproxy reads.
	numberMax = 20
	// writeCheck is how often a write to a backend that takes no input
	// looks whether the client has gone.
	writeCheck = time.Second
)

// Listen listens on the first free port of PortFirst..PortLast on the
// loopback address (PVE's next_vnc_port, with the socket kept, so no
// other process can take the port in between).
func Listen() (net.Listener, int, error) {
	for p := PortFirst; p <= PortLast; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			return ln, p, nil
		}
	}
	return nil, 0, fmt.Errorf("unable to find free port (%d-%d)", PortFirst, PortLast)
}

// AcceptOne takes one connection on ln within timeout (or until ctx ends)
// and closes ln. A timeout is a net.Error whose Timeout() is true; callers
// word their errors (IsTimeout).
func AcceptOne(ctx context.Context, ln net.Listener, timeout time.Duration) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(timeout))
	}
	c, err := ln.Accept()
	ln.Close()
	return c, err
}

// IsTimeout tells whether an AcceptOne error is its timeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Accept is AcceptOne with termproxy's errors: "failed waiting for
// client: timed out".
func Accept(ctx context.Context, ln net.Listener, timeout time.Duration) (net.Conn, error) {
	c, err := AcceptOne(ctx, ln, timeout)
	if err != nil {
		if IsTimeout(err) {
			return nil, errors.New("failed waiting for client: timed out")
		}
		return nil, fmt.Errorf("failed waiting for client: %w", err)
	}
	return c, nil
}

// Client is an authenticated termproxy client: "OK" has been sent.
type Client struct {
	conn net.Conn
	rd   *bufio.Reader // what the client sent after its ticket line
}

// Handshake reads conn's ticket line, "<user>:<ticket>\n" (at most 4 KiB,
// within TicketTimeout), and passes user and ticket to check. If check
// accepts them, Handshake answers "OK" and returns the client; otherwise
// it closes conn and returns check's error (termproxy answers nothing).
// Reading errors are termproxy's: "failed reading ticket: ...".
func Handshake(ctx context.Context, conn net.Conn, check func(user, ticket string) error) (*Client, error) {
	c, err := handshake(ctx, conn, check)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	return c, nil
}

func handshake(ctx context.Context, conn net.Conn, check func(user, ticket string) error) (*Client, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(TicketTimeout))
	rd := bufio.NewReaderSize(conn, lineMax)
	user, ticket, err := readTicketLine(rd)
	if err != nil {
		return nil, fmt.Errorf("failed reading ticket: %w", err)
	}
	if err := check(user, ticket); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	if _, err := conn.Write([]byte("OK")); err != nil {
		return nil, fmt.Errorf("error writing response: %w", err)
	}
	return &Client{conn: conn, rd: rd}, nil
}

// readTicketLine reads termproxy's first line, "<user>:<ticket>\n", of
// at most lineMax bytes.
func readTicketLine(rd *bufio.Reader) (user, ticket string, err error) {
	line, err := rd.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", "", errors.New("authentication data is incomplete")
	case errors.Is(err, io.EOF):
		return "", "", errors.New("connection closed before authentication")
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", "", errors.New("timed out")
		}
		return "", "", err
	}
	user, ticket, ok := strings.Cut(string(line[:len(line)-1]), ":")
	if !ok {
		return "", "", errors.New("authentication data is invalid")
	}
	return user, ticket, nil
}

// Write writes p to the client's terminal as output (a message before
// the relay, such as the backend's start or its failure).
func (c *Client) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Close closes the client's connection.
func (c *Client) Close() error { return c.conn.Close() }

// RemoteAddr is the client's address.
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Backend is what a console relays to.
type Backend struct {
	// Conn carries the terminal's bytes: a PTY's master side, a serial
	// socket. A Conn with SetWriteDeadline (an *os.File that polls, a
	// net.Conn) lets the relay notice the client's end while Conn takes
	// no input.
	Conn io.ReadWriteCloser
	// Resize sets the terminal's size; nil ignores resize messages.
	Resize func(cols, rows int) error
}

// Relay relays between the client and b until either ends or ctx does,
// then closes both. It returns context.Cause(ctx) if ctx ended, the
// client connection's error if it ended abnormally, else nil (the client
// hung up or the backend ended).
func (c *Client) Relay(ctx context.Context, b Backend) error {
	var once sync.Once
	end := func() {
		once.Do(func() {
			c.conn.Close()
			b.Conn.Close()
		})
	}
	stop := context.AfterFunc(ctx, end)
	defer stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer end()
		buf := make([]byte, bufferSize)
		for {
			n, err := b.Conn.Read(buf)
			if n > 0 {
				if _, werr := c.conn.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EOF, or EIO of a PTY nobody holds any more
			}
		}
	}()
	write := func(p []byte) error { return writeBackend(b.Conn, p, c.conn) }
	resize := func(cols, rows int) {
		if b.Resize != nil {
			_ = b.Resize(cols, rows)
		}
	}
	err := decodeInput(c.rd, write, resize)
	end()
	<-done
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// writeDeadliner is a backend whose writes can time out.
type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// writeBackend writes p to w; while w takes nothing, it checks every
// writeCheck whether the client (cli) has shut its side down and then
// returns io.EOF.
func writeBackend(w io.Writer, p []byte, cli net.Conn) error {
	wd, ok := w.(writeDeadliner)
	if !ok {
		_, err := w.Write(p)
		return err
	}
	for len(p) > 0 {
		_ = wd.SetWriteDeadline(time.Now().Add(writeCheck))
		n, err := w.Write(p)
		p = p[n:]
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if peerClosed(cli) {
			return io.EOF
		}
	}
	return nil
}

// peerClosed reports whether c's peer has shut its side down (POLLRDHUP),
// even with data not read yet.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	if err := rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			closed = pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
		}
	}); err != nil {
		return true // closed on our side
	}
	return closed
}
