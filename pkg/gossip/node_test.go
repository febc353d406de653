package gossip

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// detectBound is the documented bound from a node's death to its being shown
// dead on the other nodes of a small cluster with DefaultTiming (measured
// about 2.5-3.5 s; see docs/pvestatd.md), with slack for -race on 2 cores.
const detectBound = 6 * time.Second

func TestJoinAndConverge(t *testing.T) {
	c := newCluster(t)
	c.grow(3)
	c.waitMembers(3, 5*time.Second)
	for i, n := range c.nodes {
		if _, _, err := n.SetLocalState(guestRecords(n.Name(), 3, uint64(i)), true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, func() bool {
		for _, n := range c.nodes {
			for j, o := range c.nodes {
				s, ok := stateOf(n, o.Name())
				if !ok || !bytes.Equal(s.Data, guestRecords(o.Name(), 3, uint64(j))) {
					return false
				}
			}
		}
		return true
	}, "every node holds every node's state")
	for _, n := range c.nodes {
		snap := n.Snapshot()
		if len(snap) != 3 {
			t.Fatalf("%s: Snapshot() has %d nodes; want 3", n.Name(), len(snap))
		}
		for _, s := range snap {
			if s.Status != StatusAlive || s.Local != (s.Name == n.Name()) || s.Addr == "" || s.Received.IsZero() {
				t.Errorf("%s: Snapshot() entry %+v; want alive, Local only for itself, an address and a time", n.Name(), s)
			}
		}
	}
}

func TestStateChangeSeenEverywhere(t *testing.T) {
	c := newCluster(t)
	c.grow(3)
	c.waitMembers(3, 5*time.Second)
	src := c.nodes[1]
	v1, changed, err := src.SetLocalState([]byte("first"), true)
	if err != nil || !changed {
		t.Fatalf("SetLocalState(first) = %d, %v, %v; want changed", v1, changed, err)
	}
	waitVersion(t, c.nodes, src.Name(), v1, 3*time.Second)
	v2, _, _ := src.SetLocalState([]byte("second"), true)
	if v2 <= v1 {
		t.Fatalf("version %d after %d; want it to grow", v2, v1)
	}
	took := waitVersion(t, c.nodes, src.Name(), v2, 3*time.Second)
	t.Logf("change seen on all 3 nodes after %v", took)
	for _, n := range c.nodes {
		if s, _ := stateOf(n, src.Name()); string(s.Data) != "second" {
			t.Errorf("%s holds %q of %s; want %q", n.Name(), s.Data, src.Name(), "second")
		}
	}
	// Changes signalled the change on a receiver.
	select {
	case <-c.nodes[0].Changes():
	default:
		t.Error("Changes() has no value after a remote change")
	}
}

func waitVersion(t *testing.T, nodes []*Node, name string, v uint64, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, func() bool {
		for _, n := range nodes {
			if s, ok := stateOf(n, name); !ok || s.Version < v {
				return false
			}
		}
		return true
	}, fmt.Sprintf("every node holds version %d of %s", v, name))
}

func TestIdenticalStateIsFree(t *testing.T) {
	c := newCluster(t)
	c.grow(1)
	n := c.nodes[0]
	v1, changed, _ := n.SetLocalState([]byte("same"), true)
	if !changed {
		t.Fatal("first SetLocalState reported no change")
	}
	queued := n.queue.NumQueued()
	v2, changed, _ := n.SetLocalState([]byte("same"), true)
	if changed || v2 != v1 || n.queue.NumQueued() != queued {
		t.Errorf("SetLocalState(same bytes) = %d, changed %v, queue %d→%d; want %d, false, no new broadcast",
			v2, changed, queued, n.queue.NumQueued(), v1)
	}
	if _, _, err := n.SetLocalState(make([]byte, n.cfg.Limits.MaxStateSize+1), true); !errors.Is(err, ErrStateTooLarge) {
		t.Errorf("SetLocalState(over the limit) error = %v; want ErrStateTooLarge", err)
	}
}

func TestLazyChangeWaitsThenUrgentSends(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *Config) { cfg.Timing.LazyInterval = time.Hour }
	c.grow(2)
	c.waitMembers(2, 5*time.Second)
	a, b := c.nodes[0], c.nodes[1]
	v1, _, _ := a.SetLocalState([]byte("one"), true)
	waitVersion(t, c.nodes, a.Name(), v1, 3*time.Second)
	v2, _, _ := a.SetLocalState([]byte("two"), false)
	time.Sleep(time.Second)
	if s, _ := stateOf(b, a.Name()); s.Version != v1 {
		t.Fatalf("a lazy change reached the peer within a second (version %d); want it held back", s.Version)
	}
	// The same bytes again, now urgent: no new version, but it goes out.
	if v, changed, _ := a.SetLocalState([]byte("two"), true); changed || v != v2 {
		t.Fatalf("SetLocalState(two, urgent) = %d, %v; want %d, false", v, changed, v2)
	}
	waitVersion(t, c.nodes, a.Name(), v2, 3*time.Second)
}

func TestLargeStateArrivesIntact(t *testing.T) {
	c := newCluster(t)
	c.grow(3)
	c.waitMembers(3, 5*time.Second)
	src := c.nodes[0]
	data := guestRecords(src.Name(), 200, 42)
	v, _, err := src.SetLocalState(data, true)
	if err != nil {
		t.Fatal(err)
	}
	took := waitVersion(t, c.nodes, src.Name(), v, 3*time.Second)
	t.Logf("%d bytes (%d compressed) on all 3 nodes after %v", len(data), len(src.encodePayload(data)), took)
	for _, n := range c.nodes[1:] {
		s, _ := stateOf(n, src.Name())
		if !bytes.Equal(s.Data, data) {
			t.Errorf("%s holds %d bytes of %s's state; want the %d bytes set", n.Name(), len(s.Data), src.Name(), len(data))
		}
		if n.Stats().Fetches == 0 {
			t.Errorf("%s fetched nothing; a state of %d bytes must be fetched over TLS", n.Name(), len(data))
		}
	}
}

// TestFetchRetriedElsewhere: a request to a holder that does not answer is
// sent again, at last to the state's own node.
func TestFetchRetriedElsewhere(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *Config) { cfg.Timing.LazyInterval = time.Hour }
	c.grow(2)
	c.waitMembers(2, 5*time.Second)
	a, b := c.nodes[0], c.nodes[1]
	a.SetLocalState([]byte("first"), false) // the first change goes out at once
	v, _, _ := a.SetLocalState([]byte("never announced"), false)
	b.onAnnounce(a.Name(), v, "ghost")
	took := waitVersion(t, c.nodes, a.Name(), v, 5*time.Second)
	if took < b.cfg.Timing.FetchTimeout/2 {
		t.Errorf("state arrived after %v, before any retry could be sent", took)
	}
}

// TestDeadNodeKeptThenRejoins shuts a node down without leaving: the others
// show it dead within the bound and keep its state; restarted on the same
// address with no peers of its own, it is found again by the others' rejoin
// loop, and its new state (a higher version despite the restart) spreads.
func TestDeadNodeKeptThenRejoins(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *Config) { cfg.Timing.RejoinInterval = time.Second }
	c.grow(3)
	c.waitMembers(3, 5*time.Second)
	victim := c.nodes[2]
	old := []byte("before the crash")
	vOld, _, _ := victim.SetLocalState(old, true)
	waitVersion(t, c.nodes, victim.Name(), vOld, 3*time.Second)

	addr := victim.Addr()
	victim.Shutdown()
	c.nodes[2] = nil
	took := waitFor(t, 15*time.Second, func() bool {
		for _, n := range c.nodes[:2] {
			if s, _ := stateOf(n, victim.Name()); s.Status != StatusDead {
				return false
			}
		}
		return true
	}, "both survivors show the node dead")
	t.Logf("dead on both survivors %v after shutdown", took)
	if took > detectBound {
		t.Errorf("detection took %v; the documented bound is %v", took, detectBound)
	}
	for _, n := range c.nodes[:2] {
		s, _ := stateOf(n, victim.Name())
		if !bytes.Equal(s.Data, old) || s.Version != vOld {
			t.Errorf("%s: dead node's state = %q v%d; want the last one kept, %q v%d", n.Name(), s.Data, s.Version, old, vOld)
		}
	}

	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	back := c.start(c.config(victim.Name(), port)) // no peers: the others must find it
	c.nodes[2] = back
	took = waitFor(t, 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if liveCount(n) != 3 {
				return false
			}
		}
		return true
	}, "the restarted node is a live member everywhere")
	t.Logf("rejoined %v after restart", took)
	vNew, _, _ := back.SetLocalState([]byte("after the restart"), true)
	if vNew <= vOld {
		t.Fatalf("version after restart %d <= %d before", vNew, vOld)
	}
	waitVersion(t, c.nodes, back.Name(), vNew, 3*time.Second)
}

func TestRestartedNodeRejoinsThroughPeers(t *testing.T) {
	c := newCluster(t)
	c.grow(2)
	c.waitMembers(2, 5*time.Second)
	seed := c.nodes[0].Addr()
	// A node whose seed is down at start joins once the seed is up.
	_, port, _ := net.SplitHostPort(c.nodes[1].Addr())
	p, _ := strconv.Atoi(port)
	c.nodes[1].Shutdown()
	c.nodes[0].Shutdown()
	c.tweak = func(cfg *Config) { cfg.Timing.RejoinInterval = 500 * time.Millisecond }
	late := c.start(c.config("node2", p, seed))
	time.Sleep(700 * time.Millisecond)
	_, sp, _ := net.SplitHostPort(seed)
	spn, _ := strconv.Atoi(sp)
	first := c.start(c.config("node1", spn))
	c.nodes = []*Node{first, late}
	c.waitMembers(2, 5*time.Second)
}

func TestLeaveShowsLeft(t *testing.T) {
	c := newCluster(t)
	c.grow(3)
	c.waitMembers(3, 5*time.Second)
	v, _, _ := c.nodes[2].SetLocalState([]byte("x"), true)
	waitVersion(t, c.nodes, c.nodes[2].Name(), v, 3*time.Second)
	if err := c.nodes[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	name := c.nodes[2].Name()
	c.nodes = c.nodes[:2]
	waitFor(t, 3*time.Second, func() bool {
		for _, n := range c.nodes {
			if s, _ := stateOf(n, name); s.Status != StatusLeft || string(s.Data) != "x" {
				return false
			}
		}
		return true
	}, "the node that left is shown left, its state kept")
}

func TestWrongKeyCannotJoin(t *testing.T) {
	c := newCluster(t)
	c.grow(2)
	c.waitMembers(2, 5*time.Second)
	c.nodes[0].SetLocalState([]byte("secret status"), true)
	cfg := c.config("intruder", 0)
	cfg.Key = testKey(99)
	in := c.start(cfg)
	if _, err := in.Join(c.nodes[0].Addr()); err == nil {
		t.Fatal("Join with the wrong key succeeded")
	}
	expectAlone(t, c, in)
}

func TestForeignCertCannotJoin(t *testing.T) {
	c := newCluster(t)
	c.grow(2)
	c.waitMembers(2, 5*time.Second)
	c.nodes[0].SetLocalState([]byte("secret status"), true)
	// Right key, certificate from another CA (that trusts the real CA,
	// so only the cluster's check of the client certificate can refuse).
	other := newTestCA(t)
	cfg := c.config("intruder", 0)
	cfg.TLS = other.tlsConfig(t, "intruder")
	cfg.TLS.RootCAs = c.ca.pool
	in := c.start(cfg)
	before := c.nodes[0].Stats().StreamsRefused
	if _, err := in.Join(c.nodes[0].Addr()); err == nil {
		t.Fatal("Join with a foreign certificate succeeded")
	}
	waitFor(t, 2*time.Second, func() bool { return c.nodes[0].Stats().StreamsRefused > before },
		"the seed counts the refused stream")
	expectAlone(t, c, in)
}

func TestNoClientCertRefused(t *testing.T) {
	c := newCluster(t)
	c.grow(1)
	n := c.nodes[0]
	conn, err := tls.Dial("tcp", n.Addr(), &tls.Config{RootCAs: c.ca.pool, ServerName: n.Name()})
	if err == nil {
		// TLS 1.3: the client learns of the refusal on its first read.
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a TLS client without a certificate was served")
	}
	waitFor(t, 2*time.Second, func() bool { return n.Stats().StreamsRefused > 0 }, "the refusal is counted")
}

func TestStalledPeerIsCut(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *Config) {
		cfg.Timing.HandshakeTimeout = 300 * time.Millisecond
		cfg.Limits.MaxInboundStreams = 2
	}
	c.grow(1)
	n := c.nodes[0]
	var conns []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	// The third is over the limit and closed at once; the two others are
	// closed when the handshake times out.
	for i, conn := range conns {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		start := time.Now()
		_, err := conn.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("stalled connection %d still open after %v (err %v); want it closed", i, time.Since(start), err)
		}
	}
	waitFor(t, time.Second, func() bool { return n.Stats().StreamsRefused == 3 }, "StreamsRefused = 3")
}

func TestVerifyNodeName(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *Config) { cfg.VerifyNodeName = true }
	c.grow(1)
	a := c.nodes[0]
	b := c.start(c.config("node2", 0))
	if _, err := b.Join("pve-other/" + a.Addr()); err == nil {
		t.Error("Join naming the wrong node succeeded; its certificate names node1")
	}
	if _, err := b.Join(a.Name() + "/" + a.Addr()); err != nil {
		t.Errorf("Join(node1/addr) error = %v", err)
	}
}

// expectAlone checks that the intruder sees no cluster state and that no
// member sees the intruder, for a while.
func expectAlone(t *testing.T, c *cluster, in *Node) {
	t.Helper()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if snap := in.Snapshot(); len(snap) != 1 || snap[0].Name != in.Name() {
			t.Fatalf("intruder's Snapshot() = %v; want only itself", names(snap))
		}
		for _, n := range c.nodes {
			if _, ok := stateOf(n, in.Name()); ok {
				t.Fatalf("%s knows the intruder", n.Name())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func names(s []NodeState) []string {
	var out []string
	for _, n := range s {
		out = append(out, n.Name+"="+n.Status.String())
	}
	return out
}

func TestOwnHigherVersionIsOvertaken(t *testing.T) {
	c := newCluster(t)
	c.grow(1)
	n := c.nodes[0]
	v, _, _ := n.SetLocalState([]byte("mine"), true)
	// A peer holds a version of this node's state from a clock ahead.
	n.accept(stateRecord{name: n.Name(), version: v + 1000, payload: []byte{encRaw, 'o', 'l', 'd'}})
	s, _ := stateOf(n, n.Name())
	if s.Version <= v+1000 || string(s.Data) != "mine" {
		t.Errorf("after seeing its own v%d: version %d data %q; want above it, data unchanged", v+1000, s.Version, s.Data)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := Start(Config{Name: "", BindAddr: "not-an-ip", Key: []byte("short")})
	if err == nil {
		t.Fatal("Start with a bad configuration succeeded")
	}
	for _, want := range []string{"node name", "bind address", "cluster key must have 32 bytes", "tls configuration missing"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
