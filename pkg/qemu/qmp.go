package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Bounds of the QMP client.
const (
	// MaxQMPMessage is the longest QMP message read (query-qmp-schema is
	// about 200 KiB); a longer line closes the connection.
	MaxQMPMessage = 8 << 20
	// qmpHandshakeTimeout bounds the greeting and capabilities negotiation
	// when the caller's context has no deadline.
	qmpHandshakeTimeout = 10 * time.Second
	// qmpEventBuffer is how many undelivered events are kept; older ones
	// are dropped and counted.
	qmpEventBuffer = 64
)

// ErrQMPClosed is returned for commands on a connection that is closed or
// was closed by QEMU.
var ErrQMPClosed = errors.New("qmp connection closed")

// QMPError is an error answer of QEMU ({"error": {"class", "desc"}}).
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// QMPEvent is an asynchronous event (SHUTDOWN, STOP, RESUME, ...).
type QMPEvent struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// QMPVersion is the version in the greeting and in query-version.
type QMPVersion struct {
	QEMU struct {
		Major int `json:"major"`
		Minor int `json:"minor"`
		Micro int `json:"micro"`
	} `json:"qemu"`
	Package string `json:"package"`
}

func (v QMPVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.QEMU.Major, v.QEMU.Minor, v.QEMU.Micro)
}

// QMPStatus is the answer of query-status.
type QMPStatus struct {
	Running    bool   `json:"running"`
	Status     string `json:"status"` // "running", "paused", "shutdown", "prelaunch", ...
	SingleStep bool   `json:"singlestep,omitempty"`
}

type qmpMessage struct {
	QMP *struct {
		Version      QMPVersion `json:"version"`
		Capabilities []string   `json:"capabilities"`
	} `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
	ID     *string         `json:"id"`
	Event  string          `json:"event"`
}

type qmpReply struct {
	ret json.RawMessage
	err error
}

// QMPClient is a connection to a QEMU monitor in control mode. Commands
// may be issued concurrently; each is matched to its answer by id.
type QMPClient struct {
	conn    net.Conn
	Version QMPVersion // from the greeting

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan qmpReply
	closed  bool
	err     error // why the read loop ended

	events  chan QMPEvent
	dropped uint64
	done    chan struct{}
}

// DialQMP connects to the QMP socket at path, reads the greeting and leaves
// negotiation mode (qmp_capabilities). ctx bounds the whole handshake.
func DialQMP(ctx context.Context, path string) (*QMPClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp dial %s: %w", path, err)
	}
	c, err := newQMPClient(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp handshake %s: %w", path, err)
	}
	return c, nil
}

func newQMPClient(ctx context.Context, conn net.Conn) (*QMPClient, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(qmpHandshakeTimeout)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	line, err := readLine(r)
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	var g qmpMessage
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return nil, fmt.Errorf("unexpected greeting %.100q", line)
	}
	if _, err := conn.Write([]byte(`{"execute":"qmp_capabilities","id":"cap"}` + "\n")); err != nil {
		return nil, fmt.Errorf("send qmp_capabilities: %w", err)
	}
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("read qmp_capabilities answer: %w", err)
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("bad qmp message %.100q", line)
		}
		if m.Event != "" {
			continue
		}
		if m.Error != nil {
			return nil, m.Error
		}
		break
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	c := &QMPClient{
		conn:    conn,
		Version: g.QMP.Version,
		pending: map[string]chan qmpReply{},
		events:  make(chan QMPEvent, qmpEventBuffer),
		done:    make(chan struct{}),
	}
	go c.readLoop(r)
	return c, nil
}

// readLine reads one newline-terminated message of at most MaxQMPMessage bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxQMPMessage {
			return nil, fmt.Errorf("qmp message longer than %d bytes", MaxQMPMessage)
		}
		buf = append(buf, chunk...)
		if err == nil {
			return bytes.TrimSpace(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func (c *QMPClient) readLoop(r *bufio.Reader) {
	var loopErr error
	for {
		line, err := readLine(r)
		if err != nil {
			loopErr = err
			break
		}
		if len(line) == 0 {
			continue
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			loopErr = fmt.Errorf("bad qmp message %.100q: %w", line, err)
			break
		}
		if m.Event != "" {
			var ev QMPEvent
			if json.Unmarshal(line, &ev) == nil {
				c.deliver(ev)
			}
			continue
		}
		if m.ID == nil {
			continue // an answer without id: not ours
		}
		c.mu.Lock()
		ch := c.pending[*m.ID]
		delete(c.pending, *m.ID)
		c.mu.Unlock()
		if ch == nil {
			continue // the caller gave up
		}
		if m.Error != nil {
			ch <- qmpReply{err: m.Error}
		} else {
			ch <- qmpReply{ret: m.Return}
		}
	}
	c.mu.Lock()
	if c.err == nil {
		if c.closed || errors.Is(loopErr, io.EOF) {
			c.err = ErrQMPClosed
		} else {
			c.err = fmt.Errorf("%w: %v", ErrQMPClosed, loopErr)
		}
	}
	c.closed = true
	for id, ch := range c.pending {
		ch <- qmpReply{err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
	c.conn.Close()
	close(c.events)
	close(c.done)
}

// deliver queues an event, dropping the oldest if the buffer is full.
func (c *QMPClient) deliver(ev QMPEvent) {
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events:
			c.mu.Lock()
			c.dropped++
			c.mu.Unlock()
		default:
		}
	}
}

// Events returns the channel of asynchronous events; it is closed when the
// connection ends. Unread events beyond a small buffer are dropped.
func (c *QMPClient) Events() <-chan QMPEvent { return c.events }

// DroppedEvents returns how many events were dropped because nobody read them.
func (c *QMPClient) DroppedEvents() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Done is closed when the connection has ended.
func (c *QMPClient) Done() <-chan struct{} { return c.done }

// Close closes the connection; pending commands fail with ErrQMPClosed.
func (c *QMPClient) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	err := c.conn.Close()
	<-c.done
	return err
}

// Execute runs a QMP command with optional arguments (nil for none) and
// decodes its "return" into result (if not nil). ctx bounds the write and
// the wait for the answer.
func (c *QMPClient) Execute(ctx context.Context, command string, args, result any) error {
	ret, err := c.execute(ctx, command, args)
	if err != nil {
		return err
	}
	if result != nil {
		if err := json.Unmarshal(ret, result); err != nil {
			return fmt.Errorf("qmp %s: decode answer: %w", command, err)
		}
	}
	return nil
}

func (c *QMPClient) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = ErrQMPClosed
		}
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	c.nextID++
	id := "pvenode-" + strconv.FormatUint(c.nextID, 10)
	ch := make(chan qmpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	msg, err := json.Marshal(req)
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: encode: %w", command, err)
	}
	msg = append(msg, '\n')

	c.writeMu.Lock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Time{}
	}
	c.conn.SetWriteDeadline(deadline)
	_, err = c.conn.Write(msg)
	c.writeMu.Unlock()
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: send: %w", command, err)
	}

	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, r.err)
		}
		return r.ret, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
}

// QueryStatus runs query-status.
func (c *QMPClient) QueryStatus(ctx context.Context) (QMPStatus, error) {
	var s QMPStatus
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// QueryVersion runs query-version.
func (c *QMPClient) QueryVersion(ctx context.Context) (QMPVersion, error) {
	var v QMPVersion
	err := c.Execute(ctx, "query-version", nil, &v)
	return v, err
}

// Stop pauses the guest.
func (c *QMPClient) Stop(ctx context.Context) error { return c.Execute(ctx, "stop", nil, nil) }

// Cont resumes a paused guest.
func (c *QMPClient) Cont(ctx context.Context) error { return c.Execute(ctx, "cont", nil, nil) }

// SystemReset resets the guest.
func (c *QMPClient) SystemReset(ctx context.Context) error {
	return c.Execute(ctx, "system_reset", nil, nil)
}

// SystemPowerdown sends an ACPI power button press; the guest decides.
func (c *QMPClient) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once. The connection closing before the answer
// arrives counts as success.
func (c *QMPClient) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if err != nil && errors.Is(err, ErrQMPClosed) {
		var qe *QMPError
		if !errors.As(err, &qe) {
			return nil
		}
	}
	return err
}
