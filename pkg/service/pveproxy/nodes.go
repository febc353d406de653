package pveproxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/httpd"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// pinTTL is how long the fingerprints of a node's certificates are cached
// (PVE refreshes them at most once a minute).
const pinTTL = 30 * time.Second

// clusterNodes answers where the other nodes' pveproxy are (for calls
// with proxyto), from pvestatd's view of the cluster and the node
// certificates in the config root.
type clusterNodes struct {
	s    *Service
	view *clusterstate.Reader

	mu   sync.Mutex
	pins map[string]cachedPins
	own  *tls.Certificate
}

type cachedPins struct {
	pins []string
	at   time.Time
}

func newClusterNodes(s *Service, view *clusterstate.Reader) *clusterNodes {
	return &clusterNodes{s: s, view: view, pins: map[string]cachedPins{}}
}

// lookup returns the target of a member node. The port is this
// pveproxy's: every node of a cluster serves on the same port (PVE: 8006).
func (c *clusterNodes) lookup(node string) (api.NodeTarget, bool) {
	v, err := c.view.View()
	if err != nil {
		return api.NodeTarget{}, false
	}
	m := v.Member(node)
	if m == nil || node == c.s.node {
		return api.NodeTarget{}, false
	}
	host := m.IP
	if host == "" {
		host = node // PVE falls back to resolving the node name
	}
	return api.NodeTarget{
		Addr:   net.JoinHostPort(host, strconv.Itoa(c.s.port)),
		Online: m.Online,
		Pins:   c.nodePins(node),
	}, true
}

// nodePins returns the fingerprints node's pveproxy may present: its
// custom pveproxy-ssl.pem and its pve-ssl.pem from the config root.
func (c *clusterNodes) nodePins(node string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pins[node]; ok && time.Since(p.at) < pinTTL {
		return p.pins
	}
	pins := tlsconf.NodeCertFingerprints(c.s.root.ReadFile, node)
	c.pins[node] = cachedPins{pins: pins, at: time.Now()}
	return pins
}

// certificate returns this node's pve-ssl.pem and key, presented as client
// certificate to other nodes; loaded once, and again after reset.
func (c *clusterNodes) certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own != nil {
		return c.own, nil
	}
	dir := c.s.localDir()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "pve-ssl.pem"), filepath.Join(dir, "pve-ssl.key"))
	if err != nil {
		return nil, err
	}
	c.own = &cert
	return c.own, nil
}

// clusterCAs returns the cluster CA (pve-root-ca.pem) that node handshakes
// must chain to, or nil (no node handshakes) if it cannot be read.
func (s *Service) clusterCAs() *x509.CertPool {
	p, err := s.root.Path("pve-root-ca.pem")
	if err == nil {
		var pool *x509.CertPool
		if pool, err = tlsconf.LoadClusterCA(p); err == nil {
			return pool
		}
	}
	s.log.Warn("cluster CA not loaded: calls from other nodes are refused", "err", err)
	return nil
}

// reset drops the cached certificate and pins (reload).
func (c *clusterNodes) reset() {
	c.mu.Lock()
	c.own = nil
	c.pins = map[string]cachedPins{}
	c.mu.Unlock()
}

// errNodeCertRequired refuses a forwarded call without a node certificate.
var errNodeCertRequired = errors.New("calls forwarded by a node need that node's certificate")

// requireNodeCert refuses calls that carry PVEDisableProxy (a call another
// node forwarded) unless they came over a node handshake: a client
// certificate of the cluster CA. Node-to-node traffic is thereby mutually
// authenticated; ordinary clients never send the header.
func requireNodeCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.HeaderDisableProxy) != "" && !tlsconf.IsNodeConnection(httpd.TLSState(r)) {
			api.WriteError(w, r, http.StatusForbidden, errNodeCertRequired.Error()+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}
