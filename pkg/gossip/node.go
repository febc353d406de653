package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/klauspost/compress/zstd"
)

// Status is a node's membership state as this node sees it. memberlist
// (v0.7.0) does not expose its suspicion state, so a suspected node shows
// alive until it is declared dead.
type Status int

// The membership states. Unknown is a node whose state arrived from a peer
// but that this node has never seen as a member (it died before this node
// joined): treat it as offline. Left is a node that said it leaves (Leave)
// before going; Dead one that stopped answering.
const (
	StatusUnknown Status = iota
	StatusAlive
	StatusDead
	StatusLeft
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusDead:
		return "dead"
	case StatusLeft:
		return "left"
	}
	return "unknown"
}

// Online reports whether the node is a live member.
func (s Status) Online() bool { return s == StatusAlive }

// NodeState is one node's entry in a Snapshot.
type NodeState struct {
	Name string
	// Addr is the node's last known gossip address (host:port); empty if
	// it was never seen as a member.
	Addr string
	// Status is the node's membership state and StatusSince when this
	// node last saw it change (zero if never seen as a member).
	Status      Status
	StatusSince time.Time
	// Local is set on the entry of the node itself.
	Local bool
	// Version is the version of Data (0 and nil: no state yet). Versions
	// of one node only grow, also across its restarts.
	Version uint64
	// Data is the node's latest state as given to its SetLocalState. It
	// is shared: callers must not modify it.
	Data []byte
	// Received is when this version arrived here (for the local node,
	// when it was set). A dead node's state is kept: Received tells its
	// age.
	Received time.Time
}

// Stats are a node's traffic counters since Start. Bytes are payload bytes
// of UDP datagrams and of TCP streams (TLS records included), without the
// IP, UDP and TCP headers.
type Stats struct {
	UDPPacketsSent, UDPBytesSent         uint64
	UDPPacketsReceived, UDPBytesReceived uint64
	TCPBytesSent, TCPBytesReceived       uint64
	// StreamsOpened counts outbound streams, StreamsAccepted inbound ones
	// whose TLS handshake succeeded, StreamsRefused inbound ones refused
	// (handshake failed or too many open).
	StreamsOpened, StreamsAccepted, StreamsRefused uint64
	// StatesReceived counts remote states taken (newer than the one held);
	// StatesDropped states refused (undecodable, over a limit).
	StatesReceived, StatesDropped uint64
	// Fetches counts requests for large states sent to a holder.
	Fetches uint64
	// JobsDropped counts sends dropped because the send queue was full.
	JobsDropped uint64
}

// BytesSent is the total of UDP and TCP bytes sent.
func (s Stats) BytesSent() uint64 { return s.UDPBytesSent + s.TCPBytesSent }

// BytesReceived is the total of UDP and TCP bytes received.
func (s Stats) BytesReceived() uint64 { return s.UDPBytesReceived + s.TCPBytesReceived }

// Node is this node's member of the cluster: membership and failure
// detection by memberlist, and the versioned state blobs of every node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	tr    *transport
	queue *memberlist.TransmitLimitedQueue
	enc   *zstd.Encoder
	dec   *zstd.Decoder

	// packetLimit is the largest message of ours sent in one UDP packet;
	// a larger answer to a fetch goes over a TLS stream.
	packetLimit int
	alive       atomic.Int64 // live members, for the broadcast queue

	setMu sync.Mutex // serialises SetLocalState

	mu      sync.Mutex // guards the fields below; never held while calling ml
	states  map[string]*entry
	members map[string]*member
	pending map[string]fetch
	local   localInfo

	changes chan struct{}
	jobs    chan job
	resync  chan string // addresses of nodes back from the dead, to push/pull with
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once

	statesReceived, statesDropped, fetches, jobsDropped atomic.Uint64
}

type entry struct {
	version  uint64
	payload  []byte // encoding byte + data as it travels
	data     []byte
	received time.Time
}

type member struct {
	addr    string
	status  Status
	since   time.Time
	leaving time.Time // when the node said it leaves
}

// leaveMemory is how long a node's "I leave" is remembered: its death within
// that time is shown as left.
const leaveMemory = 30 * time.Second

// fetch is a request out for a node's state: the version announced, when
// it was (last) asked for, the holders heard of, and how often it was asked.
type fetch struct {
	version uint64
	at      time.Time
	holders []string
	tries   int
}

// Fetch retries: a request unanswered within FetchTimeout is sent again to
// the next holder heard of (or the state's own node), up to maxFetchTries
// times in all; past that, push/pull repairs.
const (
	maxFetchTries  = 4
	maxHoldersKept = 4
)

type localInfo struct {
	version      uint64 // latest version given out; starts at the wall clock
	announced    uint64 // latest version broadcast
	lastAnnounce time.Time
}

type job struct {
	to       string
	msg      []byte
	reliable bool
}

// Start binds the sockets, starts memberlist and the background work, and
// begins joining cfg.Peers (in the background: Start does not wait for any
// peer; use Join to wait).
func Start(cfg Config) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tr, err := newTransport(transportConfig{
		bindAddr:         cfg.BindAddr,
		bindPort:         cfg.BindPort,
		tls:              cfg.TLS,
		verifyName:       cfg.VerifyNodeName,
		handshakeTimeout: cfg.Timing.HandshakeTimeout,
		maxStreamBytes:   cfg.Limits.MaxStreamBytes,
		maxInbound:       cfg.Limits.MaxInboundStreams,
		log:              cfg.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip start: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("gossip start: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(cfg.Limits.MaxStateSize)))
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("gossip start: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Log,
		tr:      tr,
		enc:     enc,
		dec:     dec,
		states:  map[string]*entry{},
		members: map[string]*member{},
		pending: map[string]fetch{},
		changes: make(chan struct{}, 1),
		jobs:    make(chan job, 1024),
		resync:  make(chan string, 64),
	}
	// Versions start at the wall clock so that a restarted node's states
	// are newer than those it sent before; if a peer still holds a higher
	// one (clock set back), the node jumps past it (ownSeen).
	n.local.version = uint64(time.Now().UnixNano())
	n.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(max(1, n.alive.Load())) },
		RetransmitMult: cfg.Timing.RetransmitMult,
	}
	// memberlist's packets stay within UDPBufferSize (1400, safe under a
	// 1500 MTU); around our message go a user-message byte, the label
	// (2+len) and the encryption (1+12+16): keep a margin.
	n.packetLimit = 1400 - 64 - len(cfg.ClusterName)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.Transport = tr
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.Label = cfg.ClusterName
	mc.SecretKey = cfg.Key
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	t := cfg.Timing
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.TCPTimeout = t.TCPTimeout
	// A node that comes back with another address is accepted once it
	// has been dead this long.
	mc.DeadNodeReclaimTime = 30 * time.Second
	// Our states are compressed already; LZW over encrypted gossip only
	// costs CPU.
	mc.EnableCompression = false
	mc.Logger = log.New(logWriter{cfg.Log}, "", 0)

	n.ctx, n.cancel = context.WithCancel(context.Background())
	ml, err := memberlist.Create(mc)
	if err != nil {
		n.cancel()
		tr.Shutdown()
		enc.Close()
		dec.Close()
		return nil, fmt.Errorf("gossip start: %w", err)
	}
	n.ml = ml
	const workers = 4
	n.wg.Add(workers + 2)
	for range workers {
		go n.worker()
	}
	go n.rejoinLoop()
	go n.tickLoop()
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is the node's advertised gossip address (host:port).
func (n *Node) Addr() string { return n.ml.LocalNode().Address() }

// Join joins the cluster through the given peers ("host:port" or
// "name/host:port") and returns how many were reached; it fails only if none
// was. It blocks: each unreachable peer costs up to Timing.TCPTimeout.
func (n *Node) Join(peers ...string) (int, error) {
	c, err := n.ml.Join(peers)
	if err != nil {
		return c, fmt.Errorf("gossip join: %w", err)
	}
	return c, nil
}

// Leave tells the cluster this node leaves (peers show it as left, not dead),
// waits up to timeout for that to be sent, and shuts the node down.
func (n *Node) Leave(timeout time.Duration) error {
	// memberlist's own leave message cannot be told from a death by the
	// nodes that receive it: say it first, to every member directly.
	msg := encodeLeave(n.cfg.Name)
	for _, m := range n.ml.Members() {
		if m.Name != n.cfg.Name {
			n.ml.SendBestEffort(m, msg)
		}
	}
	err := n.ml.Leave(timeout)
	if serr := n.Shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gossip leave: %w", err)
	}
	return nil
}

// Shutdown stops the node without telling the cluster (peers detect it as
// dead): the background work, memberlist and the sockets.
func (n *Node) Shutdown() error {
	var err error
	n.stopped.Do(func() {
		n.cancel()
		err = n.ml.Shutdown()
		n.wg.Wait()
		n.enc.Close()
		n.dec.Close()
	})
	return err
}

// Changes returns a channel that receives a value after the view changed (a
// newer state of any node, a membership change). Changes coalesce: one value
// may stand for several; read Snapshot after it.
func (n *Node) Changes() <-chan struct{} { return n.changes }

func (n *Node) notify() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// ErrStateTooLarge is returned by SetLocalState for data over
// Limits.MaxStateSize.
var ErrStateTooLarge = errors.New("gossip: state over the size limit")

// SetLocalState sets this node's state and returns its version. Identical
// bytes change nothing (no new version, nothing sent), so calling it every
// cycle with the same data is cheap. A changed state gets a new version; it
// is broadcast at once if urgent, else at the latest Timing.LazyInterval
// after the last broadcast (a later urgent change sends it earlier), and
// push/pull carries it meanwhile. A state that does not fit a gossip packet
// (after compression) is announced, and nodes fetch it over TLS.
func (n *Node) SetLocalState(data []byte, urgent bool) (version uint64, changed bool, err error) {
	if len(data) > n.cfg.Limits.MaxStateSize {
		return 0, false, fmt.Errorf("set local state of %d bytes: %w", len(data), ErrStateTooLarge)
	}
	n.setMu.Lock()
	defer n.setMu.Unlock()
	n.mu.Lock()
	if e := n.states[n.cfg.Name]; e != nil && bytes.Equal(e.data, data) {
		v := e.version
		if urgent && n.local.announced < v {
			n.announceLocked(e)
		}
		n.mu.Unlock()
		return v, false, nil
	}
	n.mu.Unlock()

	payload := n.encodePayload(data)
	now := time.Now()
	n.mu.Lock()
	n.local.version++
	e := &entry{version: n.local.version, payload: payload, data: bytes.Clone(data), received: now}
	n.states[n.cfg.Name] = e
	if urgent || now.Sub(n.local.lastAnnounce) >= n.cfg.Timing.LazyInterval {
		n.announceLocked(e)
	}
	n.mu.Unlock()
	n.notify()
	return e.version, true, nil
}

// announceLocked queues the local state's broadcast.
func (n *Node) announceLocked(e *entry) {
	n.local.announced = e.version
	n.local.lastAnnounce = time.Now()
	n.queueLocked(stateRecord{name: n.cfg.Name, version: e.version, payload: e.payload})
}

// queueLocked queues the gossip of a state's announce, naming this node as
// a holder. States themselves never ride in gossip: each node would send
// each one RetransmitMult*log10(N) times, and one takes a whole packet; an
// announce takes some 30 bytes and each node fetches the state once (see
// onAnnounce). Under n.mu, so that a newer version is never replaced in the
// queue by an older one.
func (n *Node) queueLocked(r stateRecord) {
	msg := encodeRef(kindAnnounce, r.name, r.version, n.cfg.Name)
	n.queue.QueueBroadcast(&broadcast{key: "state/" + r.name, msg: msg})
}

func (n *Node) encodePayload(data []byte) []byte {
	if len(data) >= 128 {
		c := n.enc.EncodeAll(data, append(make([]byte, 0, len(data)/2+16), encZstd))
		if len(c) < len(data)+1 {
			return c
		}
	}
	return append([]byte{encRaw}, data...)
}

func (n *Node) decodePayload(p []byte) ([]byte, error) {
	switch p[0] {
	case encRaw:
		if len(p)-1 > n.cfg.Limits.MaxStateSize {
			return nil, ErrStateTooLarge
		}
		return bytes.Clone(p[1:]), nil
	case encZstd:
		d, err := n.dec.DecodeAll(p[1:], nil)
		if err != nil {
			return nil, err
		}
		if len(d) > n.cfg.Limits.MaxStateSize {
			return nil, ErrStateTooLarge
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown state encoding %d", p[0])
}

// Snapshot returns every known node (members and nodes whose state is held),
// sorted by name, with its latest state and membership state. A dead node's
// last state is kept and shown with StatusDead.
func (n *Node) Snapshot() []NodeState {
	n.mu.Lock()
	out := make([]NodeState, 0, max(len(n.states), len(n.members)))
	index := make(map[string]int, cap(out))
	for name, m := range n.members {
		index[name] = len(out)
		out = append(out, NodeState{Name: name, Addr: m.addr, Status: m.status, StatusSince: m.since})
	}
	for name, e := range n.states {
		i, ok := index[name]
		if !ok {
			i = len(out)
			out = append(out, NodeState{Name: name})
		}
		out[i].Version, out[i].Data, out[i].Received = e.version, e.data, e.received
	}
	n.mu.Unlock()
	for i := range out {
		out[i].Local = out[i].Name == n.cfg.Name
	}
	slices.SortFunc(out, func(a, b NodeState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Stats returns the node's traffic counters.
func (n *Node) Stats() Stats {
	s := &n.tr.stats
	return Stats{
		UDPPacketsSent: s.udpPacketsSent.Load(), UDPBytesSent: s.udpBytesSent.Load(),
		UDPPacketsReceived: s.udpPacketsReceived.Load(), UDPBytesReceived: s.udpBytesReceived.Load(),
		TCPBytesSent: s.tcpBytesSent.Load(), TCPBytesReceived: s.tcpBytesReceived.Load(),
		StreamsOpened: s.streamsOpened.Load(), StreamsAccepted: s.streamsAccepted.Load(),
		StreamsRefused: s.streamsRefused.Load(),
		StatesReceived: n.statesReceived.Load(), StatesDropped: n.statesDropped.Load(),
		Fetches: n.fetches.Load(), JobsDropped: n.jobsDropped.Load(),
	}
}

// handle processes one message of this package (gossip or stream).
func (n *Node) handle(msg []byte) {
	kind, body, err := splitKind(msg)
	if err != nil {
		n.statesDropped.Add(1)
		n.log.Debug("gossip: bad message", "err", err)
		return
	}
	switch kind {
	case kindStates:
		rs, err := decodeStates(body, n.cfg.Limits.MaxNodes, n.maxPayload())
		if err != nil {
			n.statesDropped.Add(1)
			n.log.Debug("gossip: bad state message", "err", err)
			return
		}
		for _, r := range rs {
			n.accept(r)
		}
	case kindAnnounce:
		name, version, holder, err := decodeRef(body)
		if err != nil {
			n.log.Debug("gossip: bad announce", "err", err)
			return
		}
		n.onAnnounce(name, version, holder)
	case kindRequest:
		name, version, requester, err := decodeRef(body)
		if err != nil {
			n.log.Debug("gossip: bad request", "err", err)
			return
		}
		n.onRequest(name, version, requester)
	case kindLeave:
		r := reader{b: body}
		name := r.name()
		if err := r.done(); err != nil {
			n.log.Debug("gossip: bad leave", "err", err)
			return
		}
		n.onLeave(name)
	default:
		n.log.Debug("gossip: unknown message kind", "kind", kind)
	}
}

// maxPayload bounds a compressed payload: zstd never expands by much.
func (n *Node) maxPayload() int { return n.cfg.Limits.MaxStateSize + 1024 }

// accept takes a remote state if it is newer than the one held, and passes
// it on.
func (n *Node) accept(r stateRecord) {
	if r.name == n.cfg.Name {
		n.ownSeen(r.version)
		return
	}
	n.mu.Lock()
	cur := n.states[r.name]
	stale := cur != nil && cur.version >= r.version
	full := cur == nil && len(n.states) >= n.cfg.Limits.MaxNodes
	n.mu.Unlock()
	if stale {
		return
	}
	if full {
		n.statesDropped.Add(1)
		n.log.Warn("gossip: too many nodes, state dropped", "node", r.name, "limit", n.cfg.Limits.MaxNodes)
		return
	}
	data, err := n.decodePayload(r.payload)
	if err != nil {
		n.statesDropped.Add(1)
		n.log.Warn("gossip: state dropped", "node", r.name, "err", err)
		return
	}
	n.mu.Lock()
	if cur := n.states[r.name]; cur != nil && cur.version >= r.version {
		n.mu.Unlock()
		return
	}
	n.states[r.name] = &entry{version: r.version, payload: r.payload, data: data, received: time.Now()}
	if p, ok := n.pending[r.name]; ok && p.version <= r.version {
		delete(n.pending, r.name)
	}
	n.queueLocked(r)
	n.mu.Unlock()
	n.statesReceived.Add(1)
	n.notify()
	if n.cfg.onAccept != nil {
		n.cfg.onAccept(r.name, r.version)
	}
}

// ownSeen handles a version of this node's own state seen elsewhere: one at
// least as high as the local version (a restart with the clock set back)
// makes the local version jump past it, and the current state is sent again.
func (n *Node) ownSeen(version uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if version <= n.local.version {
		return
	}
	n.local.version = version + 1
	if e := n.states[n.cfg.Name]; e != nil {
		e2 := *e
		e2.version = n.local.version
		n.states[n.cfg.Name] = &e2
		n.announceLocked(&e2)
	}
}

// onLeave records that a node said it leaves: its coming death is shown as
// left (or its death already seen is).
func (n *Node) onLeave(name string) {
	if name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	m := n.members[name]
	changed := false
	if m != nil {
		m.leaving = time.Now()
		if m.status == StatusDead {
			m.status, changed = StatusLeft, true
		}
	}
	n.mu.Unlock()
	if changed {
		n.notify()
	}
}

// onAnnounce asks the holder of a newer state for it, unless a request for
// that version is already out (the holder is then remembered for a retry).
func (n *Node) onAnnounce(name string, version uint64, holder string) {
	if name == n.cfg.Name {
		n.ownSeen(version)
		return
	}
	if holder == n.cfg.Name {
		return
	}
	now := time.Now()
	n.mu.Lock()
	if cur := n.states[name]; cur != nil && cur.version >= version {
		n.mu.Unlock()
		return
	}
	if p, ok := n.pending[name]; ok && p.version >= version && now.Sub(p.at) < n.cfg.Timing.FetchTimeout {
		if len(p.holders) < maxHoldersKept && !slices.Contains(p.holders, holder) {
			p.holders = append(p.holders, holder)
			n.pending[name] = p
		}
		n.mu.Unlock()
		return
	}
	if _, ok := n.pending[name]; !ok && len(n.pending) >= n.cfg.Limits.MaxNodes {
		n.mu.Unlock()
		return
	}
	n.pending[name] = fetch{version: version, at: now, holders: []string{holder}, tries: 1}
	n.mu.Unlock()
	n.request(name, version, holder)
}

func (n *Node) request(name string, version uint64, holder string) {
	n.fetches.Add(1)
	n.enqueue(job{to: holder, msg: encodeRef(kindRequest, name, version, n.cfg.Name)})
}

// retryFetches asks again for the states whose request went unanswered.
func (n *Node) retryFetches(now time.Time) {
	type req struct {
		name, holder string
		version      uint64
	}
	var reqs []req
	n.mu.Lock()
	for name, p := range n.pending {
		if now.Sub(p.at) < n.cfg.Timing.FetchTimeout {
			continue
		}
		if p.tries >= maxFetchTries {
			delete(n.pending, name)
			continue
		}
		// The next holder heard of; after the last, the node itself.
		holder := name
		if p.tries < len(p.holders) {
			holder = p.holders[p.tries]
		}
		p.tries++
		p.at = now
		n.pending[name] = p
		reqs = append(reqs, req{name, holder, p.version})
	}
	n.mu.Unlock()
	for _, r := range reqs {
		n.request(r.name, r.version, r.holder)
	}
}

// onRequest sends the state asked for, if held at that version or newer: in
// one UDP packet if it fits, else over a TLS stream.
func (n *Node) onRequest(name string, version uint64, requester string) {
	n.mu.Lock()
	e := n.states[name]
	if e == nil || e.version < version {
		n.mu.Unlock()
		return
	}
	r := stateRecord{name: name, version: e.version, payload: e.payload}
	n.mu.Unlock()
	msg := encodeStates([]stateRecord{r})
	n.enqueue(job{to: requester, msg: msg, reliable: len(msg) > n.packetLimit})
}

// mergeDigest handles a peer's push/pull digest: every state this node holds
// newer than the peer (or that the peer lacks) is sent to it. The peer does
// the same the other way.
func (n *Node) mergeDigest(buf []byte) {
	kind, body, err := splitKind(buf)
	if err != nil || kind != kindDigest {
		n.log.Debug("gossip: bad digest", "err", err)
		return
	}
	sender, es, err := decodeDigest(body, n.cfg.Limits.MaxNodes)
	if err != nil {
		n.log.Debug("gossip: bad digest", "err", err)
		return
	}
	if sender == n.cfg.Name {
		return
	}
	remote := make(map[string]uint64, len(es))
	for _, e := range es {
		remote[e.name] = e.version
		if e.name == n.cfg.Name {
			n.ownSeen(e.version)
		}
	}
	// Batches of about 1 MiB, far under the stream limit.
	const batchBytes = 1 << 20
	var batch []stateRecord
	size := 0
	n.mu.Lock()
	for name, e := range n.states {
		if v, ok := remote[name]; ok && v >= e.version {
			continue
		}
		batch = append(batch, stateRecord{name: name, version: e.version, payload: e.payload})
		size += len(e.payload) + len(name) + 20
		if size >= batchBytes {
			n.enqueueLocked(job{to: sender, msg: encodeStates(batch), reliable: true})
			batch, size = nil, 0
		}
	}
	if len(batch) > 0 {
		n.enqueueLocked(job{to: sender, msg: encodeStates(batch), reliable: true})
	}
	n.mu.Unlock()
}

func (n *Node) digest() []byte {
	n.mu.Lock()
	es := make([]digestEntry, 0, len(n.states))
	for name, e := range n.states {
		es = append(es, digestEntry{name: name, version: e.version})
	}
	n.mu.Unlock()
	return encodeDigest(n.cfg.Name, es)
}

func (n *Node) enqueue(j job) {
	select {
	case n.jobs <- j:
	default:
		n.jobsDropped.Add(1)
		n.log.Debug("gossip: send queue full, dropped", "to", j.to)
	}
}

// enqueueLocked is enqueue; it never blocks, so it may run under n.mu.
func (n *Node) enqueueLocked(j job) { n.enqueue(j) }

// worker sends queued messages, over UDP or a TLS stream.
func (n *Node) worker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case j := <-n.jobs:
			to := n.member(j.to)
			if to == nil {
				n.log.Debug("gossip: send to unknown node", "to", j.to)
				continue
			}
			var err error
			if j.reliable {
				err = n.ml.SendReliable(to, j.msg)
			} else {
				err = n.ml.SendBestEffort(to, j.msg)
			}
			if err != nil && n.ctx.Err() == nil {
				n.log.Debug("gossip: send", "to", j.to, "err", err)
			}
		}
	}
}

// member returns the live member of that name, or nil.
func (n *Node) member(name string) *memberlist.Node {
	for _, m := range n.ml.Members() {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// tickLoop retries unanswered fetches and broadcasts a non-urgent local
// change once LazyInterval passed.
func (n *Node) tickLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(min(n.cfg.Timing.FetchTimeout/2, n.cfg.Timing.LazyInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-tick.C:
			n.retryFetches(now)
			n.mu.Lock()
			e := n.states[n.cfg.Name]
			if e != nil && n.local.announced < e.version && now.Sub(n.local.lastAnnounce) >= n.cfg.Timing.LazyInterval {
				n.announceLocked(e)
			}
			n.mu.Unlock()
		}
	}
}

// rejoinLoop joins the configured peers at start and then, every
// RejoinInterval, the peers that are not live members and the known nodes
// that are dead: memberlist itself never contacts a dead node again, so
// without this a node back from a crash or a healed partition would stay
// apart.
func (n *Node) rejoinLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Timing.RejoinInterval)
	defer tick.Stop()
	n.rejoin()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
			n.rejoin()
		case peer := <-n.resync:
			if _, err := n.ml.Join([]string{peer}); err != nil {
				n.log.Debug("gossip: resync", "peer", peer, "err", err)
			}
		}
	}
}

func (n *Node) rejoin() {
	liveAddr := map[string]bool{}
	liveName := map[string]bool{}
	for _, m := range n.ml.Members() {
		liveAddr[m.Address()] = true
		liveName[m.Name] = true
	}
	var cands []string
	seen := map[string]bool{}
	add := func(c, addr string) {
		if !seen[addr] && !liveAddr[addr] {
			seen[addr] = true
			cands = append(cands, c)
		}
	}
	for _, p := range n.cfg.Peers {
		name, hostport, ok := strings.Cut(p, "/")
		if !ok {
			name, hostport = "", p
		}
		if name != "" && liveName[name] {
			continue
		}
		for _, addr := range n.resolve(hostport) {
			if liveAddr[addr] {
				hostport = ""
				break
			}
		}
		if hostport != "" {
			add(p, hostport)
		}
	}
	n.mu.Lock()
	for name, m := range n.members {
		if m.status == StatusDead && name != n.cfg.Name && m.addr != "" && !liveName[name] {
			add(name+"/"+m.addr, m.addr)
		}
	}
	n.mu.Unlock()
	if len(cands) == 0 {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range cands {
		if n.ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := n.ml.Join([]string{c}); err != nil {
				n.log.Debug("gossip: rejoin", "peer", c, "err", err)
			} else {
				n.log.Info("gossip: joined", "peer", c)
			}
		}()
	}
	wg.Wait()
}

// resolve returns the host:port forms of a peer address (names resolved,
// bounded by a second).
func (n *Node) resolve(hostport string) []string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.IP.String(), port))
	}
	return out
}

// broadcast is a queued gossip message about one node's state: a newer one
// replaces it in the queue (memberlist.NamedBroadcast).
type broadcast struct {
	key string
	msg []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.key == b.key
}
func (b *broadcast) Name() string    { return b.key }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// delegate is the Node seen as a memberlist.Delegate.
type delegate Node

var _ memberlist.Delegate = (*delegate)(nil)

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(msg []byte) {
	// memberlist may reuse the buffer.
	(*Node)(d).handle(bytes.Clone(msg))
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte { return (*Node)(d).digest() }

func (d *delegate) MergeRemoteState(buf []byte, _ bool) { (*Node)(d).mergeDigest(buf) }

// events is the Node seen as a memberlist.EventDelegate. memberlist calls it
// with its node lock held: it must not call back into memberlist.
type events Node

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(m *memberlist.Node)   { e.set(m, StatusAlive) }
func (e *events) NotifyUpdate(m *memberlist.Node) { e.set(m, StatusAlive) }

// NotifyLeave: memberlist's Node.State is not kept up to date (v0.7.0), so
// left is told from dead by the node's own leave message (onLeave).
func (e *events) NotifyLeave(m *memberlist.Node) { e.set(m, StatusDead) }

func (e *events) set(m *memberlist.Node, st Status) {
	n := (*Node)(e)
	addr := net.JoinHostPort(net.IP(m.Addr).String(), strconv.Itoa(int(m.Port)))
	now := time.Now()
	n.mu.Lock()
	cur := n.members[m.Name]
	back := cur != nil && cur.status != StatusAlive && st == StatusAlive
	if cur == nil {
		cur = &member{}
		n.members[m.Name] = cur
	}
	switch {
	case st == StatusDead && now.Sub(cur.leaving) < leaveMemory:
		st = StatusLeft
	case st == StatusAlive:
		cur.leaving = time.Time{}
	}
	changed := cur.status != st || cur.addr != addr
	if cur.status != st {
		cur.since = now
		if st == StatusAlive {
			n.alive.Add(1)
		} else if cur.status == StatusAlive {
			n.alive.Add(-1)
		}
	}
	cur.status, cur.addr = st, addr
	n.mu.Unlock()
	if back && m.Name != n.cfg.Name {
		// A node back from the dead may have learnt of this one only by
		// a stray gossip packet and know nobody else: a push/pull gives
		// it the members and the states at once.
		select {
		case n.resync <- m.Name + "/" + addr:
		default:
		}
	}
	if changed {
		if st != StatusAlive {
			n.log.Info("gossip: node "+st.String(), "node", m.Name, "addr", addr)
		}
		n.notify()
	}
}
