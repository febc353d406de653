package gossip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// KeySize is the size of the cluster key: AES-256.
const KeySize = 32

// Config configures a Node. Name, Key and TLS are required.
type Config struct {
	// Name is the node's name, unique in the cluster (PVE's node name).
	Name string
	// BindAddr is the IP address both sockets (UDP and TCP) bind to;
	// "0.0.0.0" (the default) or "::" bind every address and then need
	// AdvertiseAddr.
	BindAddr string
	// BindPort is the UDP and TCP port; 0 picks a free one (tests).
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other nodes dial; empty and
	// 0 mean the bound address and port.
	AdvertiseAddr string
	AdvertisePort int
	// Peers are the nodes to join, "host:port" or "name/host:port" (with
	// the name, the peer's certificate must name it when VerifyNodeName is
	// set). Peers that cannot be reached, or that die later, are retried
	// every Timing.RejoinInterval, as are the known nodes that are dead.
	Peers []string
	// ClusterName labels every packet and stream (memberlist's Label):
	// nodes of another cluster are ignored even with the same key.
	ClusterName string
	// Key is the cluster key (KeySize bytes): gossip is encrypted and
	// authenticated with AES-256-GCM; a node without it cannot join or
	// read anything.
	Key []byte
	// TLS holds the node certificate (Certificates or GetCertificate) and
	// the cluster CA (RootCAs; ClientCAs defaults to it). Every stream
	// runs over TLS 1.3 with client certificates required and verified
	// against the CA (with any extended key usage: PVE's node certificates
	// have serverAuth only).
	TLS *tls.Config
	// VerifyNodeName makes a dialled peer's certificate name the node
	// (DNS SAN) when its name is known; otherwise only the chain to the
	// cluster CA is checked.
	VerifyNodeName bool
	// Log receives the package's and memberlist's messages; nil discards.
	Log *slog.Logger
	// Timing holds the protocol's timings; zero fields take the defaults.
	Timing Timing
	// Limits bound what a peer can make this node hold; zero fields take
	// the defaults.
	Limits Limits

	// onAccept is a test hook, called after a newer remote state is taken.
	onAccept func(origin string, version uint64)
}

// Timing holds the protocol timings. DefaultTiming gives the values tuned
// for a LAN cluster (see docs/pvestatd.md, "Gossip", for the measurements).
type Timing struct {
	// ProbeInterval is how often a node probes another (failure
	// detection); ProbeTimeout is how long it waits for the ack before
	// indirect probes.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// SuspicionMult scales the time a suspect node has to refute:
	// SuspicionMult * max(1, log10(nodes)) * ProbeInterval. A suspected
	// node is declared dead at the latest after SuspicionMaxTimeoutMult
	// times that, sooner as other nodes confirm the suspicion.
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	// GossipInterval and GossipNodes: every interval, queued broadcasts
	// go to that many random nodes. Nothing is sent when the queue is
	// empty.
	GossipInterval time.Duration
	GossipNodes    int
	// RetransmitMult: each node sends a broadcast
	// RetransmitMult * ceil(log10(nodes+1)) times.
	RetransmitMult int
	// PushPullInterval is the anti-entropy period: a full membership and
	// state-version exchange with one random node (memberlist scales it
	// up above 32 nodes).
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long gossip still goes to a dead node.
	GossipToTheDeadTime time.Duration
	// TCPTimeout bounds a stream: the dial and the whole exchange.
	TCPTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake.
	HandshakeTimeout time.Duration
	// RejoinInterval is how often unreachable peers and dead nodes are
	// tried again.
	RejoinInterval time.Duration
	// LazyInterval is how long a non-urgent change of the local state may
	// wait before it is broadcast (see SetLocalState).
	LazyInterval time.Duration
	// FetchTimeout is how long a request for a large state waits for its
	// answer before it can be asked of another holder.
	FetchTimeout time.Duration
}

// DefaultTiming returns the timings tuned for a LAN cluster.
func DefaultTiming() Timing {
	return Timing{
		ProbeInterval:           500 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          6,
		PushPullInterval:        15 * time.Second,
		GossipToTheDeadTime:     15 * time.Second,
		TCPTimeout:              3 * time.Second,
		HandshakeTimeout:        2 * time.Second,
		RejoinInterval:          5 * time.Second,
		LazyInterval:            30 * time.Second,
		FetchTimeout:            time.Second,
	}
}

// Limits bound what peers can make a node hold or read.
type Limits struct {
	// MaxStateSize is the largest state (uncompressed) a node may set or
	// accept.
	MaxStateSize int
	// MaxNodes is the most nodes whose state is kept.
	MaxNodes int
	// MaxStreamBytes is the most bytes read from one stream.
	MaxStreamBytes int64
	// MaxInboundStreams is the most inbound streams open at once
	// (handshaking or being served); more are refused.
	MaxInboundStreams int
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxStateSize:      4 << 20,
		MaxNodes:          1024,
		MaxStreamBytes:    32 << 20,
		MaxInboundStreams: 128,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setDur(&t.TCPTimeout, d.TCPTimeout)
	setDur(&t.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&t.RejoinInterval, d.RejoinInterval)
	setDur(&t.LazyInterval, d.LazyInterval)
	setDur(&t.FetchTimeout, d.FetchTimeout)
	return t
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxStateSize <= 0 {
		l.MaxStateSize = d.MaxStateSize
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxStreamBytes <= 0 {
		l.MaxStreamBytes = d.MaxStreamBytes
	}
	if l.MaxInboundStreams <= 0 {
		l.MaxInboundStreams = d.MaxInboundStreams
	}
	return l
}

// check validates the configuration as a whole and fills the defaults.
func (c *Config) check() error {
	var errs []error
	if c.Name == "" || len(c.Name) > maxNameLen {
		errs = append(errs, fmt.Errorf("node name must have 1 to %d bytes", maxNameLen))
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if net.ParseIP(c.BindAddr) == nil {
		errs = append(errs, fmt.Errorf("bind address %q is not an IP address", c.BindAddr))
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, errors.New("port out of range"))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddr))
	}
	if len(c.Key) != KeySize {
		errs = append(errs, fmt.Errorf("cluster key must have %d bytes (AES-256), has %d", KeySize, len(c.Key)))
	}
	if c.TLS == nil {
		errs = append(errs, errors.New("tls configuration missing"))
	}
	if len(c.ClusterName) > 255 {
		errs = append(errs, errors.New("cluster name longer than 255 bytes"))
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Timing = c.Timing.withDefaults()
	c.Limits = c.Limits.withDefaults()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gossip config: %w", err)
	}
	return nil
}
