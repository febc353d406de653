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
	"os"
	"strconv"
	"sync"
	"syscall"
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
	ret, err := c.execute(ctx, command, args, nil)
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

// execute sends command and waits for its answer. A non-nil file goes with
// the command as SCM_RIGHTS ancillary data (what getfd takes).
func (c *QMPClient) execute(ctx context.Context, command string, args any, file *os.File) (json.RawMessage, error) {
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
	if file != nil {
		err = c.writeWithFile(msg, file)
	} else {
		_, err = c.conn.Write(msg)
	}
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

// writeWithFile writes msg in one sendmsg carrying file's descriptor.
func (c *QMPClient) writeWithFile(msg []byte, file *os.File) error {
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return errors.New("passing a file needs a Unix socket")
	}
	raw, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := raw.Control(func(fd uintptr) {
		var n int
		n, _, werr = uc.WriteMsgUnix(msg, syscall.UnixRights(int(fd)), nil)
		if werr == nil && n != len(msg) {
			werr = io.ErrShortWrite
		}
	}); err != nil {
		return err
	}
	return werr
}

// GetFD passes file to QEMU under name (QMP getfd); QEMU keeps its own
// copy, the caller still closes file.
func (c *QMPClient) GetFD(ctx context.Context, name string, file *os.File) error {
	_, err := c.execute(ctx, "getfd", map[string]string{"fdname": name}, file)
	return err
}

// CloseFD drops a descriptor passed with GetFD that was not used (QMP
// closefd).
func (c *QMPClient) CloseFD(ctx context.Context, name string) error {
	return c.Execute(ctx, "closefd", map[string]string{"fdname": name}, nil)
}

// AddClient hands the connection passed as fdname to one of QEMU's servers
// (QMP add_client): protocol "spice" or "vnc". QEMU takes the descriptor
// over; tls asks for a TLS server side, skipauth for no password check.
func (c *QMPClient) AddClient(ctx context.Context, protocol, fdname string, tls, skipauth bool) error {
	return c.Execute(ctx, "add_client", map[string]any{
		"protocol": protocol, "fdname": fdname, "tls": tls, "skipauth": skipauth,
	}, nil)
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

// QMPBlockStats is one entry of query-blockstats. Device is the -drive id
// ("drive-scsi0"; empty for -blockdev backends), QDev the guest device's id
// or QOM path.
type QMPBlockStats struct {
	Device   string              `json:"device,omitempty"`
	QDev     string              `json:"qdev,omitempty"`
	NodeName string              `json:"node-name,omitempty"`
	Stats    QMPBlockDeviceStats `json:"stats"`
}

// QMPBlockDeviceStats are the I/O counters of one block device (QAPI
// BlockDeviceStats): bytes, operations and nanoseconds since QEMU started.
// Raw holds QEMU's object verbatim, including members not decoded here
// (timed_stats, zone_append_*, ...); MarshalJSON writes it unchanged, as
// PVE passes the object through in a VM's blockstat.
type QMPBlockDeviceStats struct {
	RdBytes                uint64  `json:"rd_bytes"`
	WrBytes                uint64  `json:"wr_bytes"`
	UnmapBytes             uint64  `json:"unmap_bytes"`
	RdOperations           uint64  `json:"rd_operations"`
	WrOperations           uint64  `json:"wr_operations"`
	FlushOperations        uint64  `json:"flush_operations"`
	UnmapOperations        uint64  `json:"unmap_operations"`
	RdTotalTimeNS          uint64  `json:"rd_total_time_ns"`
	WrTotalTimeNS          uint64  `json:"wr_total_time_ns"`
	FlushTotalTimeNS       uint64  `json:"flush_total_time_ns"`
	UnmapTotalTimeNS       uint64  `json:"unmap_total_time_ns"`
	WrHighestOffset        uint64  `json:"wr_highest_offset"`
	RdMerged               uint64  `json:"rd_merged"`
	WrMerged               uint64  `json:"wr_merged"`
	UnmapMerged            uint64  `json:"unmap_merged"`
	IdleTimeNS             *uint64 `json:"idle_time_ns,omitempty"` // absent before the first I/O
	FailedRdOperations     uint64  `json:"failed_rd_operations"`
	FailedWrOperations     uint64  `json:"failed_wr_operations"`
	FailedFlushOperations  uint64  `json:"failed_flush_operations"`
	FailedUnmapOperations  uint64  `json:"failed_unmap_operations"`
	InvalidRdOperations    uint64  `json:"invalid_rd_operations"`
	InvalidWrOperations    uint64  `json:"invalid_wr_operations"`
	InvalidFlushOperations uint64  `json:"invalid_flush_operations"`
	InvalidUnmapOperations uint64  `json:"invalid_unmap_operations"`
	AccountInvalid         bool    `json:"account_invalid"`
	AccountFailed          bool    `json:"account_failed"`

	Raw json.RawMessage `json:"-"`
}

type qmpBlockDeviceStats QMPBlockDeviceStats // no methods: plain decoding

// UnmarshalJSON decodes the known members and keeps data in Raw.
func (s *QMPBlockDeviceStats) UnmarshalJSON(data []byte) error {
	var v qmpBlockDeviceStats
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = QMPBlockDeviceStats(v)
	s.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// MarshalJSON writes Raw if set, else the decoded members.
func (s QMPBlockDeviceStats) MarshalJSON() ([]byte, error) {
	if len(s.Raw) > 0 {
		return s.Raw, nil
	}
	return json.Marshal(qmpBlockDeviceStats(s))
}

// QMPBalloonInfo is the answer of query-balloon, in bytes. Upstream QEMU
// reports only Actual; pve-qemu adds MaxMem, and TotalMem, FreeMem and the
// other guest figures once the guest's balloon driver sends statistics
// (LastUpdate, seconds since the epoch, is then non-zero). Raw holds
// QEMU's object verbatim and is what MarshalJSON writes.
type QMPBalloonInfo struct {
	Actual     uint64  `json:"actual"`
	MaxMem     uint64  `json:"max_mem,omitempty"`
	TotalMem   *uint64 `json:"total_mem,omitempty"`
	FreeMem    *uint64 `json:"free_mem,omitempty"`
	LastUpdate uint64  `json:"last_update,omitempty"`

	Raw json.RawMessage `json:"-"`
}

type qmpBalloonInfo QMPBalloonInfo // no methods: plain decoding

// UnmarshalJSON decodes the known members and keeps data in Raw.
func (b *QMPBalloonInfo) UnmarshalJSON(data []byte) error {
	var v qmpBalloonInfo
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = QMPBalloonInfo(v)
	b.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// MarshalJSON writes Raw if set, else the decoded members.
func (b QMPBalloonInfo) MarshalJSON() ([]byte, error) {
	if len(b.Raw) > 0 {
		return b.Raw, nil
	}
	return json.Marshal(qmpBalloonInfo(b))
}

// QMPMachineInfo is one entry of query-machines. IsCurrent and PVEVersion
// exist only in pve-qemu.
type QMPMachineInfo struct {
	Name       string `json:"name"`
	Alias      string `json:"alias,omitempty"`
	IsDefault  bool   `json:"is-default,omitempty"`
	IsCurrent  bool   `json:"is-current,omitempty"`
	PVEVersion string `json:"pve-version,omitempty"`
	Deprecated bool   `json:"deprecated,omitempty"`
	CPUMax     int    `json:"cpu-max"`
}

// QueryBlockstats runs query-blockstats.
func (c *QMPClient) QueryBlockstats(ctx context.Context) ([]QMPBlockStats, error) {
	var s []QMPBlockStats
	err := c.Execute(ctx, "query-blockstats", nil, &s)
	return s, err
}

// QueryBalloon runs query-balloon. Without a balloon device QEMU answers
// with a QMPError of class DeviceNotActive.
func (c *QMPClient) QueryBalloon(ctx context.Context) (QMPBalloonInfo, error) {
	var b QMPBalloonInfo
	err := c.Execute(ctx, "query-balloon", nil, &b)
	return b, err
}

// QueryMachines runs query-machines: every machine type the binary knows.
func (c *QMPClient) QueryMachines(ctx context.Context) ([]QMPMachineInfo, error) {
	var m []QMPMachineInfo
	err := c.Execute(ctx, "query-machines", nil, &m)
	return m, err
}

// QMPSpiceInfo is the answer of query-spice (the fields PVE reads).
type QMPSpiceInfo struct {
	Enabled  bool   `json:"enabled"`
	Migrated bool   `json:"migrated"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	TLSPort  int    `json:"tls-port,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// QuerySpice runs query-spice.
func (c *QMPClient) QuerySpice(ctx context.Context) (QMPSpiceInfo, error) {
	var r QMPSpiceInfo
	err := c.Execute(ctx, "query-spice", nil, &r)
	return r, err
}

// SetPassword runs set_password for protocol ("spice" or "vnc"), keeping
// connected clients (connected=keep), as PVE does for SPICE tickets.
func (c *QMPClient) SetPassword(ctx context.Context, protocol, password string) error {
	return c.Execute(ctx, "set_password", map[string]string{"protocol": protocol, "password": password, "connected": "keep"}, nil)
}

// ExpirePassword runs expire_password for protocol; time is "now",
// "never", "+SECONDS" or an absolute Unix time (PVE uses "+30").
func (c *QMPClient) ExpirePassword(ctx context.Context, protocol, time string) error {
	return c.Execute(ctx, "expire_password", map[string]string{"protocol": protocol, "time": time}, nil)
}
