package gossip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// testCA is a cluster CA that signs node certificates (ECDSA P-256,
// serverAuth only as PVE's pve-ssl.pem, DNS SAN = node name, IP SAN =
// 127.0.0.1).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// nodeCert returns a certificate for name signed by the CA.
func (ca *testCA) nodeCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := crand.Int(crand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsConfig is a node's TLS material: its certificate and the CA.
func (ca *testCA) tlsConfig(t testing.TB, name string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.nodeCert(t, name)}, RootCAs: ca.pool}
}

func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// testLog logs to stderr with -v and PVENODE_GOSSIP_LOG=debug, else discards.
func testLog() *slog.Logger {
	if os.Getenv("PVENODE_GOSSIP_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// cluster is a set of nodes on 127.0.0.1 sharing a CA and a key.
type cluster struct {
	t     testing.TB
	ca    *testCA
	key   []byte
	nodes []*Node
	// tweak adjusts each node's configuration before it starts.
	tweak func(*Config)
}

func newCluster(t testing.TB) *cluster {
	return &cluster{t: t, ca: newTestCA(t), key: testKey(1)}
}

func (c *cluster) config(name string, port int, peers ...string) Config {
	cfg := Config{
		Name:        name,
		BindAddr:    "127.0.0.1",
		BindPort:    port,
		Peers:       peers,
		ClusterName: "test",
		Key:         c.key,
		TLS:         c.ca.tlsConfig(c.t, name),
		Log:         testLog(),
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

// start starts a node with cfg and registers its shutdown.
func (c *cluster) start(cfg Config) *Node {
	c.t.Helper()
	n, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	c.t.Cleanup(func() { n.Shutdown() })
	return n
}

// grow starts count nodes named node1.. joining the first one.
func (c *cluster) grow(count int) {
	c.t.Helper()
	for i := 0; i < count; i++ {
		name := fmt.Sprintf("node%d", len(c.nodes)+1)
		var peers []string
		if len(c.nodes) > 0 {
			peers = []string{c.nodes[0].Addr()}
		}
		c.nodes = append(c.nodes, c.start(c.config(name, 0, peers...)))
	}
}

// waitMembers waits until every node sees want live members.
func (c *cluster) waitMembers(want int, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			if liveCount(n) != want {
				return false
			}
		}
		return true
	}, fmt.Sprintf("every node sees %d live members", want))
}

func liveCount(n *Node) int {
	c := 0
	for _, s := range n.Snapshot() {
		if s.Status.Online() {
			c++
		}
	}
	return c
}

func stateOf(n *Node, name string) (NodeState, bool) {
	for _, s := range n.Snapshot() {
		if s.Name == name {
			return s, true
		}
	}
	return NodeState{}, false
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// guestRecords builds a node's state as pvestatd could: one line per guest
// in PVE's pve-vm-9.0 field order (about 140 bytes a guest) with figures
// drawn from seed, as random as real counters are.
func guestRecords(node string, guests int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(len(node))))
	var b []byte
	b = fmt.Appendf(b, "pve-node-9.0/%s:%d:c:%d:%.2f:8:%.4f:%.4f:67324174336:%d:8589930496:%d:100861726720:%d:%d:%d\n",
		node, r.IntN(1e7), 1700000000+r.IntN(1e6), r.Float64()*4, r.Float64(), r.Float64()/10,
		r.Int64N(6e10), r.Int64N(1e9), r.Int64N(9e10), r.Int64N(1e12), r.Int64N(1e12))
	for g := 0; g < guests; g++ {
		vmid := 100 + g
		b = fmt.Appendf(b, "pve-vm-9.0/%d:%d:vm-%s-%d:running:0:%d:4:%.4f:8589934592:%d:34359738368:0:%d:%d:%d:%d:%d\n",
			vmid, r.IntN(1e7), node, vmid, 1700000000+r.IntN(1e6), r.Float64(), r.Int64N(8e9),
			r.Int64N(1e11), r.Int64N(1e11), r.Int64N(1e12), r.Int64N(1e12), r.Int64N(8e9))
	}
	return b
}
