package pvestatd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/corosync"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/gossip"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/nodestatus"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/rrd"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tlsconf"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// Name is the daemon's name.
const Name = "pvestatd"

// DefaultInterval is PVE's status cycle.
const DefaultInterval = 10 * time.Second

// Spec returns the daemon.Spec of pvestatd.
func Spec() daemon.Spec {
	return daemon.Spec{
		Name:  Name,
		Short: "PVE status daemon (node, guest and storage status, shared with the cluster)",
		Flags: func(fs *pflag.FlagSet) {
			fs.String("node", "", "this node's name (default: the host name)")
			fs.Duration("interval", DefaultInterval, "time between two status collections")
		},
		New: New,
	}
}

// Service is a running pvestatd.
type Service struct {
	env      daemon.Env
	log      *slog.Logger
	node     string
	interval time.Duration

	root   *pvefs.Root
	col    *collector
	store  *storage.Host
	hist   *history
	histLn net.Listener
	rrd    *rrd.Store

	mu      sync.Mutex // guards cluster, gossip, version, states, last
	cluster *corosync.Cluster
	gossip  *gossip.Node
	version uint64                  // of the view file
	states  map[string]decodedState // other nodes' states, decoded once per version
	last    *clusterstate.NodeState // this node's latest records
	lastID  string                  // what made the last state "urgent"

	reload chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// New builds the service from the parsed flags.
func New(env daemon.Env) (daemon.Service, error) {
	node, _ := env.Flags.GetString("node")
	interval, _ := env.Flags.GetDuration("interval")
	if interval < time.Second {
		return nil, fmt.Errorf("--interval %v: at least 1s", interval)
	}
	return &Service{env: env, log: env.Log, node: node, interval: interval, states: map[string]decodedState{},
		reload: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Listen opens the config root and prepares the collector and the run
// directory the view file goes to. Gossip starts in Serve.
func (s *Service) Listen(ctx context.Context) error {
	root, err := pvefs.Open(s.env.Paths.ConfigRoot)
	if err != nil {
		return err
	}
	s.root = root
	if s.node, err = nodename.Resolve(s.node); err != nil {
		return err
	}
	dir := filepath.Dir(s.env.Paths.ClusterStateFile())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	s.rrd, err = rrd.Open(rrd.Options{Dir: s.env.Paths.RRDDir(), Log: s.log})
	if err != nil {
		return fmt.Errorf("status history: %w", err)
	}
	s.hist = newHistory(s.rrd, s.log)
	if s.histLn, err = listenHistory(s.env.Paths.RRDSocket()); err != nil {
		return fmt.Errorf("status history socket: %w", err)
	}
	// The collector bounds each storage itself and never starts a second
	// call while one hangs; the storage package's own bound would abandon
	// a stuck statfs and let the next cycle start another.
	s.store = &storage.Host{Root: root, Node: s.node, LocalPath: storage.LocalPathUnder(s.env.Paths.Prefix),
		Dir: storage.DirOptions{StatTimeout: 24 * time.Hour}}
	vms := vmm.New(vmm.Config{RunDir: filepath.Join(s.env.Paths.RunDir, "qemu-server")})
	s.col = newCollector(s.node, root, nodestatus.New(nodestatus.Roots{}, nodestatus.Version{}), vms, s.store, s.log)
	return nil
}

// Serve runs the status cycle until Shutdown: collect, publish, write the
// view; between cycles the view is rewritten whenever the gossip brings a
// change.
func (s *Service) Serve(ctx context.Context) error {
	defer close(s.done)
	go func() {
		if err := s.hist.serve(s.histLn); err != nil {
			s.log.Error("status history socket", "err", err)
		}
	}()
	if err := s.startCluster(); err != nil {
		s.log.Error("cluster gossip not started", "err", err)
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	trig := newTrigger(s.log, filepath.Join(s.env.Paths.RunDir, "qemu-server"),
		filepath.Join(s.root.Dir(), "nodes", s.node, "qemu-server"))
	defer trig.close()
	s.cycle(ctx)
	for {
		var changes <-chan struct{}
		s.mu.Lock()
		if s.gossip != nil {
			changes = s.gossip.Changes()
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.cycle(ctx)
		case <-trig.C():
			s.cycle(ctx)
		case <-changes:
			s.writeView()
		case <-s.reload:
			s.restartCluster()
			s.cycle(ctx)
		}
	}
}

// cycle collects this node's records, publishes them and writes the view.
func (s *Service) cycle(ctx context.Context) {
	began := time.Now()
	st := s.col.collect(ctx)
	id := identity(st)
	s.mu.Lock()
	urgent := id != s.lastID
	s.last, s.lastID = st, id
	g := s.gossip
	s.mu.Unlock()
	if g != nil {
		data, err := st.Encode()
		if err == nil {
			_, _, err = g.SetLocalState(data, urgent)
		}
		if err != nil {
			s.log.Warn("publish status", "err", err)
		}
	}
	s.hist.record(st)
	s.writeView()
	if d := time.Since(began); d > s.interval/2 {
		s.log.Warn("status update time", "seconds", d.Seconds())
	}
}

// identity is what makes a change of this node's records worth spreading
// at once (a guest started, stopped, renamed, locked; a storage came or
// went): figures alone are spread lazily.
func identity(st *clusterstate.NodeState) string {
	b := make([]byte, 0, 64*len(st.Guests))
	for _, g := range st.Guests {
		b = strconv.AppendInt(b, int64(g.VMID), 10)
		b = append(b, g.Status...)
		b = append(b, g.Name...)
		b = append(b, g.Lock...)
		b = strconv.AppendBool(b, g.Template)
		b = strconv.AppendUint(b, g.MaxMem, 10)
		b = append(b, ';')
	}
	for _, s := range st.Storages {
		b = append(b, s.ID...)
		b = strconv.AppendBool(b, s.Active)
		b = append(b, ';')
	}
	return string(b)
}

// startCluster starts the gossip when this node is a cluster member.
func (s *Service) startCluster() error {
	c, err := corosync.Load(s.root)
	if errors.Is(err, corosync.ErrNoCluster) {
		s.log.Info("not a cluster member: status stays local")
		return nil
	}
	if c == nil {
		return err
	}
	if err != nil {
		s.log.Warn("cluster settings", "err", err) // the good lines and defaults apply
	}
	self, ok := c.Node(s.node)
	if !ok {
		return fmt.Errorf("node %s is not in corosync.conf", s.node)
	}
	keys, err := corosync.ReadGossipKeys(s.root)
	if err != nil {
		return err
	}
	tlsCfg, err := s.nodeTLS()
	if err != nil {
		return err
	}
	port := c.Settings.GossipPort
	var peers []string
	for _, n := range c.Nodes {
		if n.Name != s.node {
			peers = append(peers, n.Name+"/"+net.JoinHostPort(n.Addr(), strconv.Itoa(port)))
		}
	}
	g, err := gossip.Start(gossip.Config{
		Name: s.node, BindAddr: self.Addr(), BindPort: port, Peers: peers,
		ClusterName: c.Name, Key: keys[0], TLS: tlsCfg, Log: s.log,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cluster, s.gossip = c, g
	s.mu.Unlock()
	s.log.Info("cluster gossip started", "cluster", c.Name, "addr", g.Addr(), "peers", len(peers))
	return nil
}

// nodeTLS is the TLS material of the gossip streams: this node's
// certificate and the cluster CA.
func (s *Service) nodeTLS() (*tls.Config, error) {
	dir := filepath.Join(s.root.Dir(), "nodes", s.node)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "pve-ssl.pem"), filepath.Join(dir, "pve-ssl.key"))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	ca, err := tlsconf.LoadClusterCA(filepath.Join(s.root.Dir(), "pve-root-ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca, ClientCAs: ca, MinVersion: tls.VersionTLS13}, nil
}

// restartCluster stops the gossip and starts it with the configuration as
// it is now (reload).
func (s *Service) restartCluster() {
	s.mu.Lock()
	g := s.gossip
	s.gossip, s.cluster = nil, nil
	s.mu.Unlock()
	if g != nil {
		if err := g.Leave(2 * time.Second); err != nil {
			s.log.Warn("leave gossip", "err", err)
		}
	}
	if err := s.startCluster(); err != nil {
		s.log.Error("cluster gossip not restarted", "err", err)
	}
}

// writeView writes the merged view for pveproxy and pvedaemon.
func (s *Service) writeView() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	v := &clusterstate.View{Version: s.version, Generated: time.Now().Unix(), LocalNode: s.node}
	local := clusterstate.Member{Name: s.node, Online: true, Received: time.Now().Unix(), State: s.last}
	if s.cluster == nil || s.gossip == nil {
		v.Quorate = true
		v.Members = []clusterstate.Member{local}
	} else {
		v.Cluster, v.ConfigVersion = s.cluster.Name, int(s.cluster.ConfigVersion)
		snap := map[string]gossip.NodeState{}
		for _, ns := range s.gossip.Snapshot() {
			snap[ns.Name] = ns
		}
		online := 0
		for _, n := range s.cluster.Nodes {
			m := clusterstate.Member{Name: n.Name, NodeID: n.NodeID, IP: n.Addr()}
			if n.Name == s.node {
				m.Online, m.Received, m.State = true, local.Received, s.last
			} else if ns, ok := snap[n.Name]; ok {
				m.Online = ns.Status == gossip.StatusAlive
				if st := s.decoded(ns); st != nil {
					m.State, m.Received = st, ns.Received.Unix()
				}
			}
			if m.Online {
				online++
			}
			v.Members = append(v.Members, m)
		}
		slices.SortFunc(v.Members, func(a, b clusterstate.Member) int {
			if a.Name < b.Name {
				return -1
			}
			if a.Name > b.Name {
				return 1
			}
			return 0
		})
		v.Quorate = online*2 > len(s.cluster.Nodes)
	}
	if err := clusterstate.WriteFile(s.env.Paths.ClusterStateFile(), v, 0o644); err != nil {
		s.log.Warn("write cluster view", "err", err)
	}
}

// decoded returns a node's published state, decoding (and recording in
// the history) each version once; nil for none or an undecodable one.
// s.mu is held.
func (s *Service) decoded(ns gossip.NodeState) *clusterstate.NodeState {
	if len(ns.Data) == 0 {
		return nil
	}
	if d, ok := s.states[ns.Name]; ok && d.version == ns.Version {
		return d.state
	}
	st, err := clusterstate.DecodeNodeState(ns.Data)
	if err != nil {
		s.log.Warn("undecodable status from node", "node", ns.Name, "err", err)
	}
	s.states[ns.Name] = decodedState{version: ns.Version, state: st}
	if st != nil {
		s.hist.record(st)
	}
	return st
}

// decodedState is a node's state as decoded for one version.
type decodedState struct {
	version uint64
	state   *clusterstate.NodeState
}

// Reload re-reads the cluster configuration and restarts the gossip with
// it, between two cycles.
func (s *Service) Reload(ctx context.Context) error {
	select {
	case s.reload <- struct{}{}:
	default:
	}
	return nil
}

// Shutdown leaves the cluster (peers show this node as left, not dead)
// and ends the cycle.
func (s *Service) Shutdown(ctx context.Context) error {
	close(s.stop)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	g := s.gossip
	s.gossip = nil
	s.mu.Unlock()
	var err error
	if g != nil {
		err = g.Leave(2 * time.Second)
	}
	s.histLn.Close()
	if cerr := s.rrd.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
