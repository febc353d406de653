package gossip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// udpPacketBufSize is the read buffer of one UDP packet (the largest datagram).
const udpPacketBufSize = 65536

// transport is a memberlist.NodeAwareTransport that sends packets over UDP as
// memberlist's NetTransport does, and runs every stream (push/pull, reliable
// user messages, TCP fallback pings) over mutual TLS: the listener requires a
// client certificate verified against the cluster CA, the dialer verifies the
// peer's certificate against the same CA. It counts the bytes it moves.
//
// What a peer can stall is bounded: dials and handshakes have timeouts, the
// number of inbound streams (handshaking or handed to memberlist) is capped,
// and a stream that reads more than maxStreamBytes fails.
type transport struct {
	log        *slog.Logger
	udp        *net.UDPConn
	tcp        *net.TCPListener
	serverTLS  *tls.Config
	clientTLS  *tls.Config
	verifyName bool

	handshakeTimeout time.Duration
	maxStreamBytes   int64
	inbound          chan struct{} // one token per open inbound stream

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	closing  atomic.Bool
	wg       sync.WaitGroup

	stats transportStats
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

type transportStats struct {
	udpPacketsSent, udpBytesSent         atomic.Uint64
	udpPacketsReceived, udpBytesReceived atomic.Uint64
	tcpBytesSent, tcpBytesReceived       atomic.Uint64
	streamsOpened, streamsAccepted       atomic.Uint64
	streamsRefused                       atomic.Uint64
}

type transportConfig struct {
	bindAddr         string
	bindPort         int
	tls              *tls.Config
	verifyName       bool
	handshakeTimeout time.Duration
	maxStreamBytes   int64
	maxInbound       int
	log              *slog.Logger
}

func newTransport(c transportConfig) (*transport, error) {
	ip := net.ParseIP(c.bindAddr)
	if ip == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", c.bindAddr)
	}
	server, client, err := splitTLS(c.tls)
	if err != nil {
		return nil, err
	}
	t := &transport{
		log:              c.log,
		serverTLS:        server,
		clientTLS:        client,
		verifyName:       c.verifyName,
		handshakeTimeout: c.handshakeTimeout,
		maxStreamBytes:   c.maxStreamBytes,
		inbound:          make(chan struct{}, c.maxInbound),
		packetCh:         make(chan *memberlist.Packet),
		streamCh:         make(chan net.Conn),
		done:             make(chan struct{}),
	}
	// With port 0 the kernel picks the TCP port; the UDP socket must get the
	// same one, which another process may hold: try a few times.
	for try := 0; ; try++ {
		t.tcp, err = net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: c.bindPort})
		if err != nil {
			return nil, fmt.Errorf("listen tcp %s: %w", net.JoinHostPort(c.bindAddr, strconv.Itoa(c.bindPort)), err)
		}
		port := t.tcp.Addr().(*net.TCPAddr).Port
		t.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err == nil {
			break
		}
		t.tcp.Close()
		if c.bindPort != 0 || try == 9 {
			return nil, fmt.Errorf("listen udp %s: %w", net.JoinHostPort(c.bindAddr, strconv.Itoa(port)), err)
		}
	}
	setUDPRecvBuf(t.udp)
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop()
	return t, nil
}

// splitTLS derives the listener's and the dialer's configurations from the
// caller's: TLS 1.3 only, client certificates required and verified against
// the cluster CA, and no fallback to the system roots.
//
// Two choices keep a stream's overhead near 1.9 KB instead of 5.2 KB (most
// streams carry one state of about 10 KB): X25519 alone unless the caller
// set curves (the default hybrid post-quantum key share adds 2.3 KB; what
// the streams carry is encrypted with the cluster key, AES-256, inside TLS
// as well), and no session tickets (memberlist closes a reliable send
// without reading, so a ticket, which holds the client's certificate chain,
// would be sent for nothing on most streams).
func splitTLS(base *tls.Config) (server, client *tls.Config, err error) {
	if base == nil {
		return nil, nil, errors.New("tls configuration missing")
	}
	if base.RootCAs == nil {
		return nil, nil, errors.New("tls configuration has no RootCAs (the cluster CA)")
	}
	if len(base.Certificates) == 0 && base.GetCertificate == nil {
		return nil, nil, errors.New("tls configuration has no node certificate")
	}
	server = base.Clone()
	server.MinVersion = tls.VersionTLS13
	cas := base.ClientCAs
	if cas == nil {
		cas = base.RootCAs
	}
	// The client's chain is verified here with any key usage rather than
	// by crypto/tls, which wants clientAuth: PVE's node certificates
	// (pve-ssl.pem) carry serverAuth only and serve as client
	// certificates between nodes all the same.
	server.ClientAuth = tls.RequireAnyClientCert
	server.ClientCAs = cas
	server.VerifyConnection = verifyChainUsage(cas, x509.ExtKeyUsageAny)
	server.SessionTicketsDisabled = true
	client = base.Clone()
	client.MinVersion = tls.VersionTLS13
	if client.GetClientCertificate == nil && len(client.Certificates) == 0 {
		get := base.GetCertificate
		client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get(&tls.ClientHelloInfo{})
		}
	}
	if base.CurvePreferences == nil {
		server.CurvePreferences = []tls.CurveID{tls.X25519}
		client.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	return server, client, nil
}

func setUDPRecvBuf(c *net.UDPConn) {
	for size := 2 << 20; size > 0; size /= 2 {
		if c.SetReadBuffer(size) == nil {
			return
		}
	}
}

// boundPort is the port both sockets are bound to.
func (t *transport) boundPort() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.boundPort()
	}
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
		if v4 := addr.To4(); v4 != nil {
			addr = v4
		}
		return addr, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr).IP
	if bound.IsUnspecified() {
		return nil, 0, errors.New("bound to the wildcard address: an advertise address is required")
	}
	if v4 := bound.To4(); v4 != nil {
		bound = v4
	}
	return bound, port, nil
}

// WriteTo implements memberlist.Transport.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	n, err := t.udp.WriteTo(b, ua)
	if n > 0 {
		t.stats.udpPacketsSent.Add(1)
		t.stats.udpBytesSent.Add(uint64(n))
	}
	return time.Now(), err
}

// PacketCh implements memberlist.Transport.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport.
func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport: a TCP dial and
// a TLS handshake, both bounded. The peer's certificate must chain to the
// cluster CA; with verifyName and a known node name it must also name the
// node (DNS SAN).
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.closing.Load() {
		return nil, errors.New("gossip transport shut down")
	}
	hsTimeout := t.handshakeTimeout
	if timeout > 0 && timeout < hsTimeout {
		hsTimeout = timeout
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	t.stats.streamsOpened.Add(1)
	cfg := t.clientTLS.Clone()
	if t.verifyName && a.Name != "" {
		cfg.ServerName = a.Name
	} else {
		// The peer is known by address only (a seed, or node names are
		// not in the certificates): verify the chain against the cluster
		// CA without a host name. Verification is not off: the standard
		// check is replaced by the same check minus the name.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = verifyChain(cfg.RootCAs)
	}
	conn := tls.Client(&countingConn{Conn: raw, stats: &t.stats}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), hsTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", a.Addr, err)
	}
	return &limitedConn{Conn: conn, left: t.maxStreamBytes}, nil
}

// verifyChain checks the peer's certificate chain against roots, with no
// host name.
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return verifyChainUsage(roots, x509.ExtKeyUsageServerAuth)
}

// verifyChainUsage checks the peer's certificate chain against roots for
// the key usage, with no host name.
func verifyChainUsage(roots *x509.CertPool, usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		opts := x509.VerifyOptions{
			Roots:         roots,
			Intermediates: x509.NewCertPool(),
			KeyUsages:     []x509.ExtKeyUsage{usage},
		}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

// Shutdown implements memberlist.Transport.
func (t *transport) Shutdown() error {
	if t.closing.Swap(true) {
		return nil
	}
	close(t.done)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	delay := time.Duration(0)
	for {
		raw, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing.Load() {
				return
			}
			// Out of descriptors or similar: back off, up to a second.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("gossip: accept", "err", err)
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.inbound <- struct{}{}:
		default:
			t.stats.streamsRefused.Add(1)
			t.log.Warn("gossip: too many inbound streams, refused", "peer", raw.RemoteAddr().String())
			raw.Close()
			continue
		}
		t.wg.Add(1)
		go t.handshake(raw)
	}
}

// handshake runs the server side of the TLS handshake under its own deadline,
// outside the accept loop, and hands the stream to memberlist.
func (t *transport) handshake(raw *net.TCPConn) {
	defer t.wg.Done()
	release := sync.OnceFunc(func() { <-t.inbound })
	conn := tls.Server(&countingConn{Conn: raw, stats: &t.stats}, t.serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), t.handshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		t.stats.streamsRefused.Add(1)
		if !t.closing.Load() {
			t.log.Warn("gossip: refused stream", "peer", raw.RemoteAddr().String(), "err", err)
		}
		raw.Close()
		release()
		return
	}
	t.stats.streamsAccepted.Add(1)
	c := &limitedConn{Conn: conn, left: t.maxStreamBytes, onClose: release}
	select {
	case t.streamCh <- c:
	case <-t.done:
		c.Close()
	}
}

func (t *transport) readLoop() {
	defer t.wg.Done()
	for {
		buf := make([]byte, udpPacketBufSize)
		n, addr, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.closing.Load() {
				return
			}
			t.log.Warn("gossip: read udp", "err", err)
			continue
		}
		if n < 1 {
			continue
		}
		t.stats.udpPacketsReceived.Add(1)
		t.stats.udpBytesReceived.Add(uint64(n))
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf[:n:n], From: addr, Timestamp: ts}:
		case <-t.done:
			return
		}
	}
}

// countingConn counts the bytes of a raw TCP connection (TLS included).
type countingConn struct {
	net.Conn
	stats *transportStats
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.stats.tcpBytesReceived.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.tcpBytesSent.Add(uint64(n))
	return n, err
}

// errStreamTooLarge is returned by a stream that read more than the limit.
var errStreamTooLarge = errors.New("gossip: stream over the size limit")

// limitedConn fails reads past a byte budget and runs onClose once.
type limitedConn struct {
	net.Conn
	left    int64
	onClose func()
}

func (c *limitedConn) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errStreamTooLarge
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.Conn.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.onClose != nil {
		c.onClose()
	}
	return err
}
