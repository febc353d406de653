// Package spiceproxy wires PVE's SPICE proxy: plain HTTP CONNECT on port
// 3128, running as www-data after binding, with pveproxy's host ACL and
// LISTEN_IP from /etc/default/pveproxy. A CONNECT whose Host header is a
// valid SPICE proxy ticket (pkg/spiceticket) is tunnelled to the VM's SPICE
// TLS port on this node, or through the spiceproxy of the node that runs
// the VM; anything else gets PVE's error answer and no tunnel.
package spiceproxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/httpd"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/proxyconf"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/spicehandoff"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Name is the daemon's name.
const Name = "spiceproxy"

// wwwKeyFile is the file the CSRF secret, which signs SPICE tickets, is
// derived from (access.WWWKeyFile; readable by www-data).
const wwwKeyFile = "pve-www.key"

// Spec returns the daemon.Spec of spiceproxy.
func Spec() daemon.Spec {
	return daemon.Spec{
		Name:  Name,
		Short: "PVE SPICE proxy (HTTP CONNECT on port 3128, runs as www-data)",
		User:  buildinfo.ServiceUser,
		Flags: func(fs *pflag.FlagSet) {
			fs.Int("port", buildinfo.SpicePort, "TCP port to listen on (and of the other nodes' spiceproxy)")
			fs.String("node", "", "node name (default: the host name up to the first dot)")
		},
		New: New,
	}
}

// Service is a running spiceproxy.
type Service struct {
	env      daemon.Env
	log      *slog.Logger
	port     int
	node     string
	defaults string // /etc/default/pveproxy: spiceproxy shares pveproxy's

	root   *pvefs.Root
	cfg    atomic.Pointer[proxyconf.Config]
	secret atomic.Pointer[string]
	alog   *httpd.AccessLog
	lns    []net.Listener
	proxy  *Proxy
}

// New builds the service from the parsed flags.
func New(env daemon.Env) (daemon.Service, error) {
	port, _ := env.Flags.GetInt("port")
	node, _ := env.Flags.GetString("node")
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("--port %d: out of range", port)
	}
	return &Service{
		env: env, log: env.Log, port: port, node: node,
		defaults: env.Paths.DefaultsFile("pveproxy"),
	}, nil
}

// Listen reads /etc/default/pveproxy and the secret, opens the access log
// and binds the listening socket.
func (s *Service) Listen(ctx context.Context) error {
	cfg, err := proxyconf.Load(s.defaults)
	if err != nil {
		return err
	}
	s.cfg.Store(cfg)
	if s.root, err = pvefs.Open(s.env.Paths.ConfigRoot); err != nil {
		return err
	}
	if s.node, err = nodename.Resolve(s.node); err != nil {
		return err
	}
	if err := s.loadSecret(); err != nil {
		return err
	}
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
	logFile := filepath.Join(logDir, "access.log")
	if s.alog, err = httpd.OpenAccessLog(logFile, httpd.AccessLogOptions{Log: s.log}); err != nil {
		return err
	}
	_ = chownToService(logFile)

	view := clusterstate.NewReader(s.env.Paths.ClusterStateFile())
	s.proxy = NewProxy(Config{
		Node:      s.node,
		Port:      s.port,
		Secret:    func() string { return *s.secret.Load() },
		Lookup:    func(node string) (string, bool) { return lookupNode(view, node) },
		Handoff:   (&spicehandoff.Client{Socket: s.env.Paths.SpiceHandoffSocket()}).Handoff,
		AccessLog: s.alog,
		Log:       s.log,
	})
	lns, err := proxyconf.Listen(ctx, cfg, s.port)
	if err != nil {
		return err
	}
	for _, ln := range lns {
		s.lns = append(s.lns, httpd.ACLListener(ln, s.allowed, s.alog.Denied))
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	return nil
}

func (s *Service) allowed(a netip.Addr) bool { return s.cfg.Load().Policy.Allowed(a) }

// loadSecret reads pve-www.key. A missing file is not fatal (the cluster
// may not be set up yet): every ticket is refused until a reload finds it.
func (s *Service) loadSecret() error {
	data, err := s.root.ReadFile(wwwKeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.log.Warn("no ticket secret: every SPICE ticket is refused until reload", "path", filepath.Join(s.root.Dir(), wwwKeyFile))
		empty := ""
		s.secret.Store(&empty)
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", wwwKeyFile, err)
	}
	sec := ticket.CSRFSecret(data)
	s.secret.Store(&sec)
	return nil
}

// lookupNode returns the address of a member of the cluster from pvestatd's
// view: its IP, or its name when the view has none (PVE then resolves it).
func lookupNode(view *clusterstate.Reader, node string) (string, bool) {
	v, err := view.View()
	if err != nil {
		return "", false
	}
	m := v.Member(node)
	if m == nil {
		for i := range v.Members { // tickets carry the name lowercased
			if strings.EqualFold(v.Members[i].Name, node) {
				m = &v.Members[i]
				break
			}
		}
	}
	if m == nil {
		return "", false
	}
	if m.IP != "" {
		return m.IP, true
	}
	return m.Name, true
}

// Serve serves on every listener until Shutdown.
func (s *Service) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(s.lns))
	for _, ln := range s.lns {
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			if err := s.proxy.Serve(ln); err != nil {
				errc <- err
			}
		}(ln)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// Reload re-reads /etc/default/pveproxy (the host ACL; LISTEN_IP needs a
// restart) and pve-www.key, and reopens the access log. A bad file keeps
// the running configuration; open tunnels are not touched.
func (s *Service) Reload(ctx context.Context) error {
	cfg, err := proxyconf.Load(s.defaults)
	if err != nil {
		return err
	}
	if err := s.loadSecret(); err != nil {
		return err
	}
	old := s.cfg.Swap(cfg)
	if old.ListenIP != cfg.ListenIP {
		s.log.Warn("LISTEN_IP changed; it takes effect on restart", "path", s.defaults)
	}
	if err := s.alog.Reopen(); err != nil {
		s.log.Warn("reopen access log", "err", err)
	}
	return nil
}

// Shutdown stops accepting and closes every connection, tunnels included.
func (s *Service) Shutdown(ctx context.Context) error {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	s.proxy.Close()
	return s.alog.Close()
}

// chownToService gives path to the service user when running as root, so
// the dropped daemon can reopen its log.
func chownToService(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(buildinfo.ServiceUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

var _ daemon.Service = (*Service)(nil)
