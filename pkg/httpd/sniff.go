package httpd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults of TLSSniffListener.
const (
	// DefaultSniffTimeout bounds the wait for a client's first byte and, for
	// a plain-HTTP client, for its whole request header.
	DefaultSniffTimeout = 10 * time.Second
	// DefaultMaxPending bounds the connections being sniffed or redirected
	// at the same time; further connections are closed at once.
	DefaultMaxPending = 1024
)

const (
	tlsHandshakeRecord = 0x16            // first byte of a TLS ClientHello record
	maxPlainDrain      = 256 << 10       // request body read and discarded after a redirect
	plainDrainTime     = 1 * time.Second // time allowed for that
)

// SniffOption tunes TLSSniffListener.
type SniffOption func(*sniffListener)

// WithSniffTimeout sets how long a new connection may take to send its first
// byte, and a plain-HTTP client its request header (default
// DefaultSniffTimeout).
func WithSniffTimeout(d time.Duration) SniffOption {
	return func(l *sniffListener) {
		if d > 0 {
			l.timeout = d
		}
	}
}

// WithMaxPending sets how many connections may be sniffed or redirected at
// once (default DefaultMaxPending).
func WithMaxPending(n int) SniffOption {
	return func(l *sniffListener) {
		if n > 0 {
			l.sem = make(chan struct{}, n)
		}
	}
}

// WithRedirectLog sets a function called after a plain-HTTP request was
// answered with a redirect, with the peer, the request line
// ("METHOD URI PROTO") and the status; AccessLog.Redirected fits.
func WithRedirectLog(f func(peer netip.AddrPort, requestLine string, status int)) SniffOption {
	return func(l *sniffListener) { l.onRedirect = f }
}

// TLSSniffListener returns a listener that serves TLS and redirects plain
// HTTP on the same port, as pveproxy does on 8006. Each accepted connection is
// examined in a goroutine of its own, so a client that is slow to send its
// first byte delays nobody else: a TLS handshake record yields
// tls.Server(conn, cfg) from Accept (the handshake itself is left to
// http.Server and its timeouts); anything else is read as a plain HTTP
// request header (at most MaxHeaderBytes, within the sniff timeout) and
// answered with 301 Moved Permanently (GET, HEAD) or 308 Permanent Redirect
// (other methods) to https://<Host><request URI> (the local address when
// there is no usable Host header), then closed; such connections never come
// out of Accept. A connection that sends nothing within the timeout, or
// garbage, is closed silently.
//
// Close stops accepting, closes connections still being examined and waits
// for every goroutine of the listener. cfg must not offer "h2" in NextProtos
// (see NewServer).
func TLSSniffListener(inner net.Listener, cfg *tls.Config, log *slog.Logger, opts ...SniffOption) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &sniffListener{
		inner:   inner,
		cfg:     cfg,
		log:     log,
		timeout: DefaultSniffTimeout,
		sem:     make(chan struct{}, DefaultMaxPending),
		conns:   make(chan net.Conn),
		errc:    make(chan error),
		done:    make(chan struct{}),
		pending: map[net.Conn]struct{}{},
	}
	for _, o := range opts {
		o(l)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

type sniffListener struct {
	inner      net.Listener
	cfg        *tls.Config
	log        *slog.Logger
	timeout    time.Duration
	onRedirect func(netip.AddrPort, string, int)
	sem        chan struct{} // one token per connection being examined

	conns chan net.Conn // TLS connections ready for Accept
	errc  chan error    // errors of the inner listener, for Accept
	done  chan struct{} // closed by Close

	closeOnce sync.Once
	wg        sync.WaitGroup // acceptLoop and the per-connection goroutines

	mu      sync.Mutex // guards pending and closed
	pending map[net.Conn]struct{}
	closed  bool
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Addr() net.Addr { return l.inner.Addr() }

func (l *sniffListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			_ = c.Close() // interrupts the goroutine blocked on it
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

func (l *sniffListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			// Hand the error to an Accept caller: http.Server backs off on
			// temporary errors and gives up (closing us) on the others.
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				<-l.done
				return
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.log.Warn("too many connections in tls sniffing, dropping", "peer", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		if !l.track(c) {
			<-l.sem
			_ = c.Close()
			return
		}
		l.wg.Add(1)
		go l.examine(c)
	}
}

// track records c as pending; false once the listener is closed.
func (l *sniffListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

// untrack forgets c; false if Close already closed it.
func (l *sniffListener) untrack(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
	return !l.closed
}

// examine decides between TLS and plain HTTP for one connection.
func (l *sniffListener) examine(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.sem }()

	_ = c.SetDeadline(time.Now().Add(l.timeout))
	br := bufio.NewReaderSize(c, 16) // Peek(1) buffers at most 16 bytes
	first, err := br.Peek(1)
	if err != nil {
		l.untrack(c)
		_ = c.Close() // silent or gone
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	if first[0] != tlsHandshakeRecord {
		l.redirect(pc)
		l.untrack(c)
		_ = c.Close()
		return
	}
	if !l.untrack(c) {
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{}) // http.Server sets its own
	select {
	case l.conns <- tls.Server(pc, l.cfg):
	case <-l.done:
		_ = c.Close()
	}
}

// redirect answers one plain HTTP request on c with a redirect to https.
func (l *sniffListener) redirect(c *peekedConn) {
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, MaxHeaderBytes)))
	if err != nil {
		l.log.Debug("plain connection on tls port without http request", "peer", c.RemoteAddr().String(), "err", err)
		return
	}
	status := http.StatusPermanentRedirect
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		status = http.StatusMovedPermanently
	}
	host := redirectHost(req.Host)
	if host == "" {
		host = peerOf(c.LocalAddr()).String()
	}
	proto := req.Proto
	if req.ProtoMajor != 1 {
		proto = "HTTP/1.1"
	}
	date := time.Now().UTC().Format(http.TimeFormat)
	resp := fmt.Sprintf("%s %d %s\r\n"+
		"Cache-Control: max-age=0\r\n"+
		"Connection: close\r\n"+
		"Content-Length: 0\r\n"+
		"Date: %s\r\n"+
		"Expires: %s\r\n"+
		"Location: https://%s%s\r\n"+
		"Pragma: no-cache\r\n"+
		"Server: %s\r\n\r\n",
		proto, status, http.StatusText(status), date, date, host, req.RequestURI, ServerName)
	if l.onRedirect != nil { // logged before it is sent, as PVE does
		l.onRedirect(peerOf(c.RemoteAddr()), req.Method+" "+req.RequestURI+" "+req.Proto, status)
	}
	if _, err := io.WriteString(c, resp); err != nil {
		l.log.Debug("write redirect", "peer", c.RemoteAddr().String(), "err", err)
		return
	}
	// Half-close and drain what the client still sends (a POST body), so
	// that closing does not reset the connection before it read the answer.
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(plainDrainTime))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, maxPlainDrain))
	}
}

// redirectHost returns the Host header without a scheme prefix (PVE strips
// "http://" and "https://"), or "" if it is empty or not a plausible
// host[:port].
func redirectHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
	if h == "" {
		return ""
	}
	for _, r := range h {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`/?#@\"<>{}|^`+"`", r) {
			return ""
		}
	}
	return h
}

// peekedConn reads first what was buffered while peeking, then from the
// connection directly.
type peekedConn struct {
	net.Conn
	r *bufio.Reader // nil once drained
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}
