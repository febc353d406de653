package spiceproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/spicehandoff"
	"github.com/pvenode/pvenode/pkg/spiceticket"
)

// Limits, as PVE's HTTP server has them where it has them.
const (
	// MaxConns is PVE's max_conn for spiceproxy.
	MaxConns = 500
	// MaxHeadBytes and MaxHeadLines bound the request head (PVE: 8 KiB and
	// 64 lines); the whole head must arrive within HeadTimeout.
	MaxHeadBytes = 8 << 10
	MaxHeadLines = 64
	HeadTimeout  = 10 * time.Second
	// DialTimeout bounds connecting to the VM's SPICE port or to another
	// node's spiceproxy; HopTimeout bounds that spiceproxy's answer.
	DialTimeout = 5 * time.Second
	HopTimeout  = 10 * time.Second
	// PortMin and PortMax are the SPICE TLS ports QEMU is given (PVE's
	// spice_port_range).
	PortMin = 61000
	PortMax = 61999
	// copyBufSize is the buffer of each direction of a tunnel when the
	// kernel cannot splice; the only user-space buffering a tunnel has.
	copyBufSize = 64 << 10
)

// LineLogger writes access log lines (httpd.AccessLog).
type LineLogger interface {
	Line(client netip.Addr, user, requestLine string, status int, bytes int64)
}

// Config configures a Proxy. Node, Port, Secret, AccessLog and Log are
// required.
type Config struct {
	// Node is this node's name; tickets for it (any case) or "localhost"
	// are tunnelled to 127.0.0.1.
	Node string
	// Port is the port every node's spiceproxy listens on, for the hop to
	// another node (PVE: 3128).
	Port int
	// Secret returns the CSRF secret of the moment ("" = none: every
	// ticket is refused).
	Secret func() string
	// Lookup returns the address (IP or name) of another node of the
	// cluster, false if it is not a member.
	Lookup func(node string) (string, bool)
	// MaxConns bounds open connections (0 = MaxConns). At the limit the
	// proxy stops accepting, as PVE does; the kernel's backlog holds the
	// next ones.
	MaxConns int
	// LocalHost is where local SPICE ports are dialled ("" = 127.0.0.1,
	// where pkg/qemu makes QEMU listen).
	LocalHost string
	// Handoff, if set, is tried first for a VM of this node: it gives the
	// client's connection to the VM's QEMU (pkg/spicehandoff through
	// pvedaemon), and the proxy leaves the path. A *spicehandoff.
	// RefusedError falls back to the tunnel; any other error closes the
	// connection (it may be QEMU's already).
	Handoff   func(ctx context.Context, conn syscall.Conn, connect string) error
	AccessLog LineLogger
	Log       *slog.Logger
	// Now is the clock for ticket ages (nil = time.Now).
	Now func() time.Time
}

// Proxy serves PVE's SPICE CONNECT protocol on listeners.
type Proxy struct {
	cfg  Config
	sem  chan struct{} // one token per open connection
	bufs sync.Pool     // *[]byte of copyBufSize

	mu     sync.Mutex // guards the fields below
	conns  map[net.Conn]struct{}
	closed bool

	wg sync.WaitGroup // connection goroutines
}

// NewProxy returns a Proxy; start it with Serve.
func NewProxy(cfg Config) *Proxy {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = MaxConns
	}
	if cfg.LocalHost == "" {
		cfg.LocalHost = "127.0.0.1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(string) (string, bool) { return "", false }
	}
	p := &Proxy{cfg: cfg, sem: make(chan struct{}, cfg.MaxConns), conns: map[net.Conn]struct{}{}}
	p.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	return p
}

// Serve accepts connections on ln until ln is closed (nil after Close).
func (p *Proxy) Serve(ln net.Listener) error {
	for {
		p.sem <- struct{}{} // at the limit, wait before accepting
		c, err := ln.Accept()
		if err != nil {
			<-p.sem
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		if !p.track(c) {
			_ = c.Close()
			<-p.sem
			return nil
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// Close closes every open connection (tunnels included: a console is not a
// request that finishes) and waits for their goroutines. The caller closes
// the listeners first.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// request is a parsed CONNECT request head.
type request struct {
	line   string // the request line as received, for the access log
	method string
	proto  string // "HTTP/1.x"
	header map[string][]string
}

func (r *request) get(name string) string {
	return strings.Join(r.header[strings.ToLower(name)], ", ")
}

// httpError is an answer that ends a connection.
type httpError struct {
	code int
	msg  string
	body bool // PVE sends the message as body too (error()), or not (response())
}

func (e *httpError) Error() string { return strconv.Itoa(e.code) + " " + e.msg }

// Perl's unanchored match of the request line in AnyEvent.pm.
var requestLineRE = regexp.MustCompile(`([^\t\n\v\f\r ]+) ([^\t\n\v\f\r ]+) HTTP/([0-9]+)\.([0-9]+)`)

var headerRE = regexp.MustCompile(`^([^:\t\n\v\f\r ]+)[\t\n\v\f\r ]*:[\t\n\v\f\r ]*(.*)`)

// readHead reads and checks the request head, within MaxHeadBytes and
// MaxHeadLines.
func readHead(br *bufio.Reader) (*request, error) {
	r := &request{proto: "HTTP/1.0", header: map[string][]string{}}
	size, count := 0, 0
	readLine := func() (string, error) {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", &httpError{431, "http header too large", true}
		}
		if err != nil {
			return "", err
		}
		b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
		return string(b), nil
	}
	// Empty lines before the request are skipped (PVE: "browser bugs").
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if count++; count > MaxHeadLines {
			return nil, &httpError{431, "too many http header lines", true}
		}
		if line == "" {
			continue
		}
		m := requestLineRE.FindStringSubmatch(line)
		if m == nil {
			return nil, &httpError{400, "bad request", true}
		}
		r.line, r.method = line, m[1]
		if m[3] != "1" {
			return nil, &httpError{506, "http protocol version " + m[3] + "." + m[4] + " not supported", true}
		}
		r.proto = "HTTP/" + m[3] + "." + m[4]
		if u := m[2]; strings.Contains(u, "@") && !strings.Contains(u[:strings.Index(u, "@")], "/") {
			return r, &httpError{400, "invalid url", true}
		}
		break
	}
	count = 0
	var key, val string
	push := func() {
		if key != "" {
			k := strings.ToLower(key)
			r.header[k] = append(r.header[k], val)
		}
	}
	for {
		line, err := readLine()
		if err != nil {
			if _, ok := err.(*httpError); ok {
				return r, err
			}
			return nil, err
		}
		count++
		size += len(line)
		if count >= MaxHeadLines {
			return r, &httpError{431, "too many http header lines", true}
		}
		if size >= MaxHeadBytes {
			return r, &httpError{431, "http header too large", true}
		}
		switch {
		case line == "":
			push()
			return r, nil
		case line[0] == ' ' || line[0] == '\t':
			val += " " + strings.TrimLeft(line, " \t")
		default:
			m := headerRE.FindStringSubmatch(line)
			if m == nil {
				return r, &httpError{506, "unable to parse request header", true}
			}
			push()
			key, val = m[1], m[2]
		}
	}
}

// writeError answers e in PVE's shape (status line with the message as
// reason phrase, no-cache headers, Connection: close, the message as body
// where PVE sends one) and returns the body size for the log.
func writeError(w io.Writer, proto string, e *httpError, now time.Time) int64 {
	var b strings.Builder
	date := now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
	fmt.Fprintf(&b, "%s %d %s\r\n", proto, e.code, e.msg)
	fmt.Fprintf(&b, "Cache-Control: max-age=0\r\nConnection: close\r\nDate: %s\r\nPragma: no-cache\r\n", date)
	var n int64
	if e.body {
		n = int64(len(e.msg))
		fmt.Fprintf(&b, "Server: pve-api-daemon/3.0\r\nContent-Length: %d\r\nExpires: %s\r\n\r\n%s", n, date, e.msg)
	} else {
		fmt.Fprintf(&b, "Server: pve-api-daemon/3.0\r\nExpires: %s\r\n\r\n", date)
	}
	_, _ = io.WriteString(w, b.String())
	return n
}

func peerAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// handle serves one connection: head, ticket, target, tunnel.
func (p *Proxy) handle(c net.Conn) {
	peer := peerAddr(c)
	_ = c.SetDeadline(time.Now().Add(HeadTimeout))
	br := bufio.NewReaderSize(c, MaxHeadBytes)
	req, err := readHead(br)
	proto, line := "HTTP/1.0", "-"
	if req != nil {
		proto, line = req.proto, req.line
	}
	fail := func(e *httpError) {
		n := writeError(c, proto, e, time.Now())
		p.cfg.AccessLog.Line(peer, "", line, e.code, n)
		lvl := slog.LevelDebug
		if e.code >= 500 {
			lvl = slog.LevelError
		}
		p.cfg.Log.Log(context.Background(), lvl, "spice connect refused", "peer", peer, "status", e.code, "err", e.msg)
	}
	// The head is in; what follows (dial, the other node's answer, our
	// answer) has bounds of its own, plus a margin for writing the answer.
	_ = c.SetDeadline(time.Now().Add(DialTimeout + HopTimeout + HeadTimeout))
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			fail(he)
		} else if req != nil {
			p.cfg.AccessLog.Line(peer, "", line, 500, -1) // aborted, as PVE logs it
		}
		return
	}
	if req.method != "CONNECT" {
		fail(&httpError{501, "method '" + req.method + "' not available", false})
		return
	}
	if te := req.get("Transfer-Encoding"); te != "" {
		if strings.EqualFold(te, "chunked") {
			fail(&httpError{501, "chunked transfer encoding not supported", true})
		} else {
			fail(&httpError{501, "Unknown transfer encoding '" + te + "'", true})
		}
		return
	}
	connectStr := req.get("Host")
	secret := p.cfg.Secret()
	vmid, node, port, err := spiceticket.Verify(secret, connectStr, p.cfg.Now())
	if err != nil || secret == "" {
		fail(&httpError{401, "invalid ticket", true})
		return
	}
	if port < PortMin || port > PortMax {
		fail(&httpError{500, fmt.Sprintf("SPICE Port %d is not in allowed range (%d, %d)", port, PortMin, PortMax), true})
		return
	}
	var target string
	remote := node != "localhost" && !strings.EqualFold(node, p.cfg.Node)
	if remote {
		if req.get("PVEDisableProxy") != "" {
			fail(&httpError{500, "proxy loop detected", true})
			return
		}
		host, ok := p.cfg.Lookup(node)
		if !ok {
			fail(&httpError{500, "unable to get remote IP address for node '" + node + "'", true})
			return
		}
		target = net.JoinHostPort(host, strconv.Itoa(p.cfg.Port))
	} else {
		target = net.JoinHostPort(p.cfg.LocalHost, strconv.Itoa(port))
		if p.handoff(c, br, connectStr, proto, line, peer, vmid) {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), DialTimeout)
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		fail(&httpError{500, "connect to '" + target + "' failed", true})
		p.cfg.Log.Warn("spice connect failed", "peer", peer, "addr", target, "vmid", vmid, "err", err)
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	upBr := bufio.NewReaderSize(up, 4096)
	if remote {
		if status, err := p.hop(up, upBr, connectStr, proto, peer); err != nil {
			if status != "" {
				_, _ = io.WriteString(c, status+"\r\n\r\n")
			}
			p.cfg.AccessLog.Line(peer, "", line, 500, -1)
			p.cfg.Log.Warn("spice hop failed", "peer", peer, "addr", target, "vmid", vmid, "err", err)
			return
		}
	}
	if _, err := io.WriteString(c, proto+" 200 OK\r\n\r\n"); err != nil {
		return
	}
	p.cfg.AccessLog.Line(peer, "", line, 200, -1) // logged early, as PVE
	_ = c.SetDeadline(time.Time{})
	p.pipe(c, br, up, upBr)
}

// handoff tries to give the client's connection to the VM's QEMU; true if
// the connection is dealt with (handed over, or closed because the outcome
// is unknown), false to go on with the tunnel. The client must not have
// sent anything beyond the CONNECT head: bytes already read here could not
// be given to QEMU.
func (p *Proxy) handoff(c net.Conn, br *bufio.Reader, connectStr, proto, line string, peer netip.Addr, vmid int) bool {
	sc, ok := c.(syscall.Conn)
	if p.cfg.Handoff == nil || !ok || br.Buffered() > 0 {
		return false
	}
	err := p.cfg.Handoff(context.Background(), sc, connectStr)
	var refused *spicehandoff.RefusedError
	switch {
	case errors.As(err, &refused):
		p.cfg.Log.Info("spice handoff refused, tunnelling", "peer", peer, "vmid", vmid, "err", refused.Reason)
		return false
	case err != nil:
		p.cfg.AccessLog.Line(peer, "", line, 500, -1)
		p.cfg.Log.Warn("spice handoff failed", "peer", peer, "vmid", vmid, "err", err)
		return true
	}
	// QEMU has the connection and waits for the client, which waits for
	// this answer; our copy is closed when handle returns.
	_, _ = io.WriteString(c, proto+" 200 OK\r\n\r\n")
	p.cfg.AccessLog.Line(peer, "", line, 200, -1)
	p.cfg.Log.Debug("spice client handed to QEMU", "peer", peer, "vmid", vmid)
	return true
}

// hop asks another node's spiceproxy for the tunnel, as PVE does, and
// reads its answer head. On a refusal it returns the status line to relay.
func (p *Proxy) hop(up net.Conn, br *bufio.Reader, connectStr, proto string, client netip.Addr) (string, error) {
	_ = up.SetDeadline(time.Now().Add(HopTimeout))
	head := "CONNECT " + connectStr + " " + proto + "\r\n" +
		"Host: " + connectStr + "\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"User-Agent: spiceproxy\r\n" +
		"PVEDisableProxy: true\r\n" +
		"PVEClientIP: " + client.String() + "\r\n\r\n"
	if _, err := io.WriteString(up, head); err != nil {
		return "", err
	}
	status := ""
	for n := 0; ; n++ {
		b, err := br.ReadSlice('\n')
		if err != nil {
			return status, fmt.Errorf("read answer: %w", err)
		}
		line := strings.TrimRight(string(b), "\r\n")
		if n == 0 {
			status = line
			if line != proto+" 200 OK" {
				return status, fmt.Errorf("answer %q", line)
			}
			continue
		}
		if line == "" {
			break
		}
		if n >= MaxHeadLines {
			return "", errors.New("answer head too long")
		}
	}
	_ = up.SetDeadline(time.Time{})
	return "", nil
}

// pipe copies both ways until both directions have ended. When one side
// ends its stream, the other side's write half is closed (SPICE over TLS
// ends with close_notify, but a half-close is passed on as such); an error
// in one direction closes both. The bytes already read with the heads go
// first.
func (p *Proxy) pipe(client net.Conn, clientBr *bufio.Reader, up net.Conn, upBr *bufio.Reader) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			_ = client.Close()
			_ = up.Close()
		})
	}
	copyDir := func(dst, src net.Conn, pre *bufio.Reader) {
		defer wg.Done()
		if err := p.copy(dst, src, pre); err != nil {
			abort()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
		abort()
	}
	wg.Add(2)
	go copyDir(up, client, clientBr)
	copyDir(client, up, upBr)
	wg.Wait()
	abort()
}

// copy writes what pre holds already, then copies src to dst until EOF.
// Between TCP sockets the kernel splices (no user-space buffer); otherwise
// one fixed buffer is used. Either way a slow reader blocks the copy and TCP
// flow control pushes back on the writer: nothing queues without bound.
func (p *Proxy) copy(dst, src net.Conn, pre *bufio.Reader) error {
	if n := pre.Buffered(); n > 0 {
		b, _ := pre.Peek(n)
		if _, err := dst.Write(b); err != nil {
			return err
		}
		_, _ = pre.Discard(n)
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	_, err := io.CopyBuffer(dst, src, *bp)
	return err
}
