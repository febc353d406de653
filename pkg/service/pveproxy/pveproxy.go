// Package pveproxy wires the public API front: HTTPS on port 8006 on every
// address, running as www-data after binding. It applies the host ACL and
// TLS policy of /etc/default/pveproxy, answers unprotected calls itself and
// forwards protected ones to the local pvedaemon.
package pveproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pvenode/pvenode/pkg/api2/jobsapi"
	"github.com/pvenode/pvenode/pkg/api2/pools"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/api2/vzdumpapi"
	"github.com/pvenode/pvenode/pkg/storage"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	accessapi "github.com/pvenode/pvenode/pkg/api2/access"
	"github.com/pvenode/pvenode/pkg/api2/cluster"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/api2/tree"
	"github.com/pvenode/pvenode/pkg/audit"
	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/httpd"
	"github.com/pvenode/pvenode/pkg/netacl"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/nodestatus"
	"github.com/pvenode/pvenode/pkg/proxyconf"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/reqinfo"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// Name is the daemon's name.
const Name = "pveproxy"

// Spec returns the daemon.Spec of pveproxy.
func Spec() daemon.Spec {
	return daemon.Spec{
		Name:  Name,
		Short: "PVE API proxy (HTTPS on port 8006, runs as www-data)",
		User:  buildinfo.ServiceUser,
		Flags: func(fs *pflag.FlagSet) {
			fs.Int("port", buildinfo.ProxyPort, "TCP port to listen on")
			fs.String("daemon-addr", buildinfo.DaemonAddr, "address of the local pvedaemon")
			fs.String("node", "", "node name (default: the host name up to the first dot)")
			fs.Duration("auth-fail-delay", 3*time.Second, "how long failed authentications are held back (PVE: 3s)")
		},
		New: New,
	}
}

// settings is the part of the configuration a reload swaps, with what is
// derived from it once per load rather than per request.
type settings struct {
	cfg *proxyconf.Config
	// realIPHeader is PROXY_REAL_IP_HEADER in canonical form ("" = unset);
	// realIPTrusted tells the peers allowed to set it (nil = any peer).
	realIPHeader  string
	realIPTrusted func(netip.Addr) bool
}

// newSettings derives the per-request settings of cfg.
func newSettings(cfg *proxyconf.Config) *settings {
	st := &settings{cfg: cfg, realIPHeader: http.CanonicalHeaderKey(strings.TrimSpace(cfg.RealIPHeader))}
	if set := cfg.RealIPAllowFrom; set != nil {
		st.realIPTrusted = func(a netip.Addr) bool { return netacl.Contains(set, a) }
	}
	return st
}

// Service is a running pveproxy.
type Service struct {
	env        daemon.Env
	log        *slog.Logger
	port       int
	daemonAddr string
	node       string
	failDelay  time.Duration
	defaults   string // /etc/default/pveproxy

	root    *pvefs.Root
	cur     atomic.Pointer[settings]
	tls     *tlsconf.Manager
	lns     []net.Listener
	srv     *http.Server
	alog    *httpd.AccessLog
	audit   *audit.Logger // audit.log beside access.log (docs/audit.md)
	forward *api.Forwarder
	tokens  *tokenChecker
	nodes   *clusterNodes // the other nodes of the cluster (proxyto)
	serveWG sync.WaitGroup
}

// New builds the service from the parsed flags.
func New(env daemon.Env) (daemon.Service, error) {
	port, _ := env.Flags.GetInt("port")
	daddr, _ := env.Flags.GetString("daemon-addr")
	node, _ := env.Flags.GetString("node")
	delay, _ := env.Flags.GetDuration("auth-fail-delay")
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("--port %d: out of range", port)
	}
	return &Service{
		env: env, log: env.Log, port: port, daemonAddr: daddr, node: node, failDelay: delay,
		defaults: env.Paths.DefaultsFile(Name),
	}, nil
}

// Listen reads /etc/default/pveproxy and the certificates (as root) and
// binds the listening sockets; a bad setting stops the start with an error
// naming the file, line and key.
func (s *Service) Listen(ctx context.Context) error {
	cfg, err := proxyconf.Load(s.defaults)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("setting not fully supported", "path", s.defaults, "detail", w)
	}
	s.cur.Store(newSettings(cfg))

	root, err := pvefs.Open(s.env.Paths.ConfigRoot)
	if err != nil {
		return err
	}
	s.root = root
	if s.node, err = nodename.Resolve(s.node); err != nil {
		return err
	}
	certs, err := tlsconf.LoadCertificates(s.localDir(), cfg.TLSKeyFile)
	if err != nil {
		return err
	}
	certs.ClusterCAs = s.clusterCAs()
	s.logCertWarnings(certs)
	s.tls, err = tlsconf.New(cfg.TLS, certs, s.log)
	if err != nil {
		return fmt.Errorf("%s: %w", s.defaults, err)
	}

	// LogDir (/var/log, or under a prefix) must be traversable after the
	// drop to www-data, which reopens the logs on reload.
	if err := os.MkdirAll(s.env.Paths.LogDir, 0o755); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	logDir := filepath.Join(s.env.Paths.LogDir, "pveproxy")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	if err := chownToService(logDir); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	s.alog, err = httpd.OpenAccessLog(filepath.Join(logDir, "access.log"), httpd.AccessLogOptions{})
	if err != nil {
		return err
	}
	_ = chownToService(filepath.Join(logDir, "access.log"))
	s.audit, err = audit.Open(filepath.Join(logDir, "audit.log"), audit.Options{Daemon: Name, Log: s.log})
	if err != nil {
		return err
	}
	_ = chownToService(filepath.Join(logDir, "audit.log"))

	// A call that pvedaemon answered may have changed the config root:
	// drop the cached files before relaying its answer, so that the
	// client's next call (answered here) sees its own write.
	var auth *access.Authenticator
	s.forward = api.NewForwarder(api.ForwarderConfig{
		Addr: s.daemonAddr, Socket: s.env.Paths.DaemonSocket(), MuxSocket: s.env.Paths.DaemonMuxSocket(),
		Timeout: 30 * time.Second, Log: s.log,
		AfterWrite: func() {
			s.tokens.forget()
			auth.Invalidate()
		},
	})
	s.tokens = newTokenChecker(s.forward, s.log)
	auth, err = access.NewAuthenticator(access.Deps{
		FS: root, Clock: time.Now, Log: s.log, VerifySecret: s.tokens.verify,
	})
	if err != nil {
		return err
	}
	nodeIP := nodename.Address(ctx, s.node)
	view := clusterstate.NewReader(s.env.Paths.ClusterStateFile())
	s.nodes = newClusterNodes(s, view)
	reg := tree.Registry(tree.Deps{
		Cluster: cluster.Deps{NodeIP: func() string { return nodeIP }, Root: root, Access: auth, View: view},
		Nodes: nodes.Deps{
			Status:          nodestatus.New(nodestatus.Roots{}, nodestatus.Version{}),
			Privs:           auth,
			Fingerprint:     func() string { return s.fingerprint() },
			NodeFingerprint: func(node string) string { return tlsconf.NodeCertFingerprint(root.ReadFile, node) },
			View:            view,
			VNC:             auth,
		},
		Access: accessapi.Deps{Access: auth, Log: s.log, Root: root},
		Pools:  pools.Deps{Access: auth, Root: root},
		// The unprotected VM methods (config, pending, indexes) read the
		// config root; the others are forwarded to pvedaemon.
		Qemu: &qemuapi.Deps{Config: root, Privs: auth},
		// The vzdump defaults answer here; backups and extractconfig run
		// in pvedaemon.
		VZDump: &vzdumpapi.Deps{Config: root, Privs: auth,
			Storage:      &storage.Host{Root: root, Node: s.node, LocalPath: storage.LocalPathUnder(s.env.Paths.Prefix)},
			DefaultsFile: filepath.Join(s.env.Paths.Prefix, vzdumpapi.DefaultDefaultsFile)},
		// Job configuration reads answer here; writes go to pvedaemon.
		Jobs: &jobsapi.Deps{Root: root, Access: auth},
	})
	apiSrv, err := api.NewServer(api.Config{
		Registry: reg, Auth: auth, Mode: api.ModeProxy, NodeName: s.node, Log: s.log,
		Audit:   s.audit,
		Forward: s.forward, AuthFailDelay: s.failDelay,
		Nodes: api.NewNodeForwarder(api.NodeForwarderConfig{
			Lookup: s.nodes.lookup, Certificate: s.nodes.certificate, Log: s.log,
		}),
		ClientIP: s.clientIP,
		SetUser:  func(r *http.Request, id string) { reqinfo.FromContext(r.Context()).SetUser(id) },
	})
	if err != nil {
		return err
	}
	// Two routes; a prefix test is cheaper than a ServeMux on every call.
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api2/") {
			apiSrv.ServeHTTP(w, r)
			return
		}
		indexPage(w, r)
	})
	handler := httpd.Chain(requireNodeCert(route),
		httpd.StdHeaders,
		s.alog.Wrap,
		s.realIP,
		httpd.Compress(func() bool { return s.cur.Load().cfg.Compression }),
		httpd.Limits(512<<10),
	)
	s.srv = httpd.NewServer(httpd.ServerConfig{Handler: handler, Log: s.log})

	lns, err := proxyconf.Listen(ctx, cfg, s.port)
	if err != nil {
		return err
	}
	for _, ln := range lns {
		acl := httpd.ACLListener(ln, s.allowed, s.alog.Denied)
		tlsLn := httpd.TLSSniffListener(acl, s.tls.ServerConfig(), s.log, httpd.WithRedirectLog(s.alog.Redirected))
		s.lns = append(s.lns, httpd.ReasonListener(tlsLn))
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	return nil
}

func (s *Service) logCertWarnings(c *tlsconf.CertSet) {
	for _, w := range c.Warnings {
		s.log.Warn("certificate", "detail", w)
	}
}

func (s *Service) localDir() string {
	return filepath.Join(s.root.Dir(), "nodes", s.node)
}

func (s *Service) allowed(a netip.Addr) bool { return s.cur.Load().cfg.Policy.Allowed(a) }

// realIP applies PROXY_REAL_IP_HEADER with the settings of the moment.
func (s *Service) realIP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := s.cur.Load(); st.realIPHeader != "" {
			httpd.ApplyRealIP(r, st.realIPHeader, st.realIPTrusted)
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address pvedaemon is told (PVEClientIP), which its
// failed-login lines carry as rhost= for fail2ban. PVE uses
// PROXY_REAL_IP_HEADER for the access log only; here the header's address is
// also used when PROXY_REAL_IP_ALLOW_FROM names the proxies trusted to set
// it, so fail2ban behind a reverse proxy bans the client, not the proxy.
// With any peer allowed to set the header it is the peer's address, so no
// client can get another address banned.
func (s *Service) clientIP(r *http.Request) netip.Addr {
	info := reqinfo.FromContext(r.Context())
	if s.cur.Load().cfg.RealIPAllowFrom != nil {
		return info.ClientIP()
	}
	return info.Peer().Addr()
}

func (s *Service) fingerprint() string {
	_, certs := s.tls.Current()
	if certs == nil || certs.Primary == nil || certs.Primary.Leaf == nil {
		return ""
	}
	return tlsconf.Fingerprint(certs.Primary.Leaf)
}

// Serve serves on every listener until Shutdown.
func (s *Service) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.lns))
	for _, ln := range s.lns {
		s.serveWG.Add(1)
		go func(ln net.Listener) {
			defer s.serveWG.Done()
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(ln)
	}
	s.serveWG.Wait()
	close(errc)
	return <-errc
}

// Reload re-reads /etc/default/pveproxy and the certificates. New settings
// apply to new connections and requests at once; the listening sockets stay
// open and in-flight requests finish under the settings they started with.
// A bad file keeps the running configuration.
func (s *Service) Reload(ctx context.Context) error {
	cfg, err := proxyconf.Load(s.defaults)
	if err != nil {
		return err
	}
	certs, err := tlsconf.LoadCertificates(s.localDir(), cfg.TLSKeyFile)
	if err != nil {
		return err
	}
	certs.ClusterCAs = s.clusterCAs()
	s.logCertWarnings(certs)
	s.nodes.reset()
	if err := s.tls.Reload(cfg.TLS, certs); err != nil {
		return fmt.Errorf("%s: %w", s.defaults, err)
	}
	old := s.cur.Swap(newSettings(cfg))
	if old.cfg.ListenIP != cfg.ListenIP {
		s.log.Warn("LISTEN_IP changed; it takes effect on restart", "path", s.defaults)
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("setting not fully supported", "path", s.defaults, "detail", w)
	}
	if err := s.alog.Reopen(); err != nil {
		s.log.Warn("reopen access log", "err", err)
	}
	if err := s.audit.Reopen(); err != nil {
		s.log.Warn("reopen audit log", "err", err)
	}
	return nil
}

// Shutdown stops accepting and lets in-flight requests finish within ctx's
// deadline.
func (s *Service) Shutdown(ctx context.Context) error {
	err := httpd.Shutdown(ctx, s.srv)
	s.forward.Close()
	if cerr := s.alog.Close(); err == nil {
		err = cerr
	}
	if cerr := s.audit.Close(); err == nil {
		err = cerr
	}
	return err
}

// chownToService gives path to the service user when running as root, so
// the dropped daemon can write its log.
func chownToService(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := serviceIDs()
	if err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

func serviceIDs() (int, int, error) {
	u, err := lookupUser(buildinfo.ServiceUser)
	if err != nil {
		return 0, 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}
