// Package pvedaemon wires the privileged API daemon: root, plain HTTP on
// 127.0.0.1:85 only, serving every API method including the protected ones,
// for calls forwarded by the local pveproxy.
package pvedaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api2/jobsapi"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/api2/vzdumpapi"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/replication"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmm"
	"github.com/pvenode/pvenode/pkg/vncterm"
	"github.com/pvenode/pvenode/pkg/vzdump"

	"github.com/pvenode/pvenode/pkg/tasks"

	"github.com/pvenode/pvenode/pkg/api2/pools"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	accessapi "github.com/pvenode/pvenode/pkg/api2/access"
	"github.com/pvenode/pvenode/pkg/api2/cluster"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/api2/tree"
	"github.com/pvenode/pvenode/pkg/apimux"
	"github.com/pvenode/pvenode/pkg/audit"
	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/defaultsfile"
	"github.com/pvenode/pvenode/pkg/httpd"
	"github.com/pvenode/pvenode/pkg/loginguard"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/nodestatus"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/setup"
	"github.com/pvenode/pvenode/pkg/spicehandoff"
	"github.com/pvenode/pvenode/pkg/spiceticket"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// Name is the daemon's name.
const Name = "pvedaemon"

// Spec returns the daemon.Spec of pvedaemon.
func Spec() daemon.Spec {
	return daemon.Spec{
		Name:  Name,
		Short: "PVE API daemon (privileged, 127.0.0.1:85)",
		Flags: func(fs *pflag.FlagSet) {
			fs.String("listen", buildinfo.DaemonAddr, "loopback address to listen on (host must be 127.0.0.1)")
			fs.String("node", "", "node name (default: the host name up to the first dot)")
			fs.String("pam-service", access.DefaultPAMService, "PAM service of the pam realm")
			fs.Int("proxy-port", 8006, "port of the other nodes' pveproxy (storage replication sends replicas there)")
		},
		New: New,
	}
}

// Service is a running pvedaemon.
type Service struct {
	env  daemon.Env
	log  *slog.Logger
	addr string
	node string
	pam  string
	// proxyPort is the port of every node's pveproxy.
	proxyPort int
	root      *pvefs.Root
	ln        net.Listener
	// unixLn is the HTTP socket pveproxy falls back to; muxLn the socket
	// it forwards through (pkg/apimux), served by mux.
	unixLn net.Listener
	muxLn  net.Listener
	mux    *apimux.Server
	// handoffLn takes SPICE client connections from spiceproxy, handed to
	// the VMs' QEMU by handoff (pkg/spicehandoff).
	handoffLn *net.UnixListener
	handoff   *spicehandoff.Server
	// tasks runs the node's worker tasks (LogDir/pve/tasks, PVE's layout).
	tasks *tasks.Manager
	// vms runs the node's QEMU processes (RunDir/qemu-server); stopWatch
	// ends its watch of adopted processes.
	vms       *vmm.Manager
	stopWatch context.CancelFunc
	srv       *http.Server
	auth      *access.Authenticator
	// audit records the calls made on 127.0.0.1:85 (pveproxy records the
	// ones it forwards): LogDir/pvedaemon/audit.log, see docs/audit.md.
	audit *audit.Logger
}

// New builds the service from the parsed flags.
func New(env daemon.Env) (daemon.Service, error) {
	addr, _ := env.Flags.GetString("listen")
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	node, _ := env.Flags.GetString("node")
	pam, _ := env.Flags.GetString("pam-service")
	proxyPort, _ := env.Flags.GetInt("proxy-port")
	return &Service{env: env, log: env.Log, addr: addr, node: node, pam: pam, proxyPort: proxyPort}, nil
}

// CheckLoopback refuses any listen address but 127.0.0.1: pvedaemon runs as
// root and trusts the client address pveproxy passes, so it must never be
// reachable from elsewhere.
func CheckLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ap.Addr() != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return fmt.Errorf("listen address %q: pvedaemon listens on 127.0.0.1 only", addr)
	}
	return nil
}

// Listen prepares the config root (keys and certificates on first start),
// checks /etc/default/pvedaemon and binds the loopback socket.
func (s *Service) Listen(ctx context.Context) error {
	root, err := pvefs.Open(s.env.Paths.ConfigRoot)
	if err != nil {
		return err
	}
	s.root = root
	res, err := setup.Ensure(ctx, root, setup.Options{NodeName: s.node, Log: s.log})
	if err != nil {
		return err
	}
	s.node = res.NodeName
	if err := s.checkDefaults(); err != nil {
		return err
	}
	if err := s.openAudit(); err != nil {
		return err
	}
	s.auth, err = access.NewAuthenticator(access.Deps{
		FS: root, Clock: time.Now, Log: s.log, PAMService: s.pam, KeyGID: serviceGID(),
		// PVE: /run/pve-private/tfa-challenges (node-local, root only).
		TFAStateDir: filepath.Join(s.env.Paths.RunDir, "pve-private", "tfa-challenges"),
	})
	if err != nil {
		return err
	}
	if err := s.auth.EnsureKeys(ctx); err != nil {
		return err
	}
	if s.tasks, err = newTaskManager(s.env.Paths.LogDir, s.node, s.log); err != nil {
		return err
	}
	nodeIP := nodename.Address(ctx, s.node)
	store := &storage.Host{Root: root, Node: s.node,
		Dir:       storage.DirOptions{LockDir: filepath.Join(s.env.Paths.LockDir, "pve-manager")},
		LocalPath: storage.LocalPathUnder(s.env.Paths.Prefix)}
	qemuDeps := s.newVMs(ctx, root, store)
	view := clusterstate.NewReader(s.env.Paths.ClusterStateFile())
	engine := &vzdump.Engine{Config: root, VMs: s.vms, Storage: store, Node: s.node, QemuImg: store.Dir.QemuImg}
	replState := jobs.ReplicationStateFile{
		Path:     filepath.Join(s.env.Paths.LibDir, "pve-replication-state.json"),
		LockPath: filepath.Join(s.env.Paths.LibDir, "pve-replication-state.lck"),
	}
	reg := tree.Registry(tree.Deps{
		Cluster: cluster.Deps{NodeIP: func() string { return nodeIP }, Root: root, Access: s.auth, View: view},
		Nodes: nodes.Deps{
			Status:          nodestatus.New(nodestatus.Roots{}, nodestatus.Version{}),
			Privs:           s.auth,
			Fingerprint:     func() string { return tlsconf.NodeCertFingerprint(root.ReadFile, s.node) },
			NodeFingerprint: func(node string) string { return tlsconf.NodeCertFingerprint(root.ReadFile, node) },
			Tasks:           s.tasks,
			Storage:         &nodes.StorageDeps{Config: root, Dir: store.Dir, LocalPath: store.LocalPath},
			RRD:             newRRDClient(s.env.Paths.RRDSocket()),
			View:            view,
			VNC:             s.auth,
		},
		Access: accessapi.Deps{Access: s.auth, Log: s.log, Root: root, Guard: loginguard.New(loginguard.Config{})},
		Pools:  pools.Deps{Access: s.auth, Root: root},
		Qemu:   qemuDeps,
		VZDump: &vzdumpapi.Deps{Config: root, Privs: s.auth, Storage: store, Tasks: s.tasks,
			DefaultsFile: filepath.Join(s.env.Paths.Prefix, vzdumpapi.DefaultDefaultsFile),
			Engine:       engine},
		Jobs: &jobsapi.Deps{Root: root, Access: s.auth,
			Store:            &jobs.Store{Dir: filepath.Join(s.env.Paths.LibDir, "jobs"), LockDir: filepath.Join(s.env.Paths.LockDir, "pve-manager")},
			ReplicationState: replState.Read,
			Run: &jobsapi.ReplicationRun{Tasks: s.tasks, Runner: &replication.Runner{
				Node: s.node, Root: root, Storage: store, Snap: engine, State: replState,
				LogDir: filepath.Join(s.env.Paths.LogDir, "pve", "replicate"),
				Send: &replication.HTTPSender{Node: s.node, Root: root, Ticket: s.auth.DaemonTicket,
					Addr: func(node string) (string, error) { return memberAddr(view, node, s.proxyPort) }},
			}}},
	})
	apiSrv, err := api.NewServer(api.Config{
		Registry: reg, Auth: s.auth, Mode: api.ModeDaemon, NodeName: s.node, Log: s.log,
		Audit: s.audit, FromProxy: viaSocket,
		ClientIP: forwardedClientIP,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api2/", apiSrv)
	mux.HandleFunc("POST "+api.TokenCheckPath, s.tokenCheck)
	s.srv = httpd.NewServer(httpd.ServerConfig{
		Handler: httpd.Chain(mux, httpd.StdHeaders, httpd.Limits(512<<10)),
		Log:     s.log,
	})
	ln, err := net.Listen("tcp4", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	s.ln = httpd.ReasonListener(ln)
	s.log.Info("listening", "addr", ln.Addr().String(), "node", s.node)
	uln, err := listenUnix("unix", s.env.Paths.DaemonSocket())
	if err != nil {
		return err
	}
	s.unixLn = httpd.ReasonListener(uln)
	s.log.Info("listening", "socket", s.env.Paths.DaemonSocket())
	if s.muxLn, err = listenUnix("unix", s.env.Paths.DaemonMuxSocket()); err != nil {
		return err
	}
	hln, err := listenUnix("unixpacket", s.env.Paths.SpiceHandoffSocket())
	if err != nil {
		return err
	}
	s.handoffLn = hln.(*net.UnixListener)
	s.handoff = &spicehandoff.Server{Handle: s.spiceHandoff, AllowUID: proxyUID, Log: s.log}
	s.log.Info("listening", "socket", s.env.Paths.SpiceHandoffSocket())
	// The same handler chain as the HTTP listeners.
	s.mux = &apimux.Server{Handler: s.srv.Handler, Log: s.log}
	s.log.Info("listening", "socket", s.env.Paths.DaemonMuxSocket())
	return nil
}

// spiceHandoff gives a SPICE client's connection from spiceproxy to the
// VM its ticket names (pkg/spicehandoff): the ticket is verified here
// again (signature, age), the VM must run on this node and its SPICE port
// be the ticket's; QEMU then checks the SPICE password as for any client.
func (s *Service) spiceHandoff(ctx context.Context, connect string, conn *os.File) error {
	secret, err := s.auth.CSRFSecret()
	if err != nil {
		return errors.New("no ticket secret")
	}
	vmid, node, port, err := spiceticket.Verify(secret, connect, time.Now())
	if err != nil {
		return errors.New("invalid ticket")
	}
	if node != "localhost" && !strings.EqualFold(node, s.node) {
		return fmt.Errorf("VM %d is on node '%s'", vmid, node)
	}
	if err := s.vms.AddSpiceClient(ctx, vmid, port, conn); err != nil {
		return err
	}
	s.log.Debug("spice client handed to QEMU", "vmid", vmid, "port", port)
	return nil
}

// proxyUID allows root, the proxies' account (www-data) and pvedaemon's
// own user (a test installation run by another user) to hand over SPICE
// connections; the socket's mode already keeps others out.
func proxyUID(uid uint32) bool {
	if uid == 0 || int(uid) == os.Geteuid() {
		return true
	}
	u, err := user.Lookup(buildinfo.ServiceUser)
	if err != nil {
		return false
	}
	return u.Uid == strconv.FormatUint(uint64(uid), 10)
}

// openAudit opens the audit log in pvedaemon's own log directory (root
// 0750): not in /var/log/pveproxy, which www-data owns and could fill with a
// symlink for root to follow.
func (s *Service) openAudit() error {
	// LogDir itself (/var/log, or under a prefix) must stay traversable
	// for pveproxy, which reopens its logs as www-data.
	if err := os.MkdirAll(s.env.Paths.LogDir, 0o755); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	dir := filepath.Join(s.env.Paths.LogDir, Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l, err := audit.Open(filepath.Join(dir, "audit.log"), audit.Options{Daemon: Name, Log: s.log})
	if err != nil {
		return err
	}
	s.audit = l
	return nil
}

// listenUnix binds pvedaemon's Unix socket. Its directory is root:www-data
// 0750 and the socket 0660, so only root and the proxies' account can
// connect; pveproxy forwards through it (cheaper than loopback TCP).
// A stale socket of an earlier run is removed: the pid-file lock already
// guarantees no other pvedaemon runs.
func listenUnix(network, path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	gid := serviceGID()
	if err := os.Chmod(dir, 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Chown(dir, 0, gid); err != nil && os.Geteuid() == 0 {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.Listen(network, path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: %w", path, err)
		}
	}
	return ln, nil
}

// checkDefaults validates /etc/default/pvedaemon; PVE reads only
// MAX_WORKERS from it, which this implementation (one process, goroutines)
// accepts and range-checks.
func (s *Service) checkDefaults() error {
	path := s.env.Paths.DefaultsFile(Name)
	vals, err := defaultsfile.Load(path)
	if err != nil {
		return err
	}
	if v, ok := vals["MAX_WORKERS"]; ok {
		var n int
		if _, err := fmt.Sscan(v.Value, &n); err != nil || n < 1 || n > 127 {
			s.log.Warn("ignoring invalid MAX_WORKERS", "path", path, "line", v.Line, "value", v.Value)
		}
	}
	return nil
}

// forwardedClientIP is the client address of a call: the PVEClientIP
// header pveproxy sets when the call came through the Unix socket, which
// only root and www-data can open; for calls on 127.0.0.1:85, which any
// local process can reach, the peer's own address. (PVE's pvedaemon trusts
// the header from every local peer, so any local user could choose the
// rhost= that fail2ban reads.)
func forwardedClientIP(r *http.Request) netip.Addr {
	if viaSocket(r) {
		if a, err := netip.ParseAddr(r.Header.Get(api.HeaderClientIP)); err == nil {
			return a.Unmap()
		}
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return api.PeerAddr(r)
}

// viaSocket reports whether r came through the Unix socket, which only root
// and www-data (pveproxy) can open.
func viaSocket(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && la.Network() == "unix"
}

// tokenCheck answers pveproxy's question whether an API token secret is
// valid: 204 if so, 403 if not; only through the Unix socket. Only the
// secret is checked here; expiry and the owner's state are checked by the
// caller from user.cfg.
func (s *Service) tokenCheck(w http.ResponseWriter, r *http.Request) {
	if !viaSocket(r) {
		http.Error(w, "token checks are answered on the socket only", http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if err := s.auth.VerifyTokenSecret(r.PostForm.Get("tokenid"), r.PostForm.Get("secret")); err != nil {
		http.Error(w, "invalid token", http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// newVMs builds the VM manager and the VM methods' collaborators. QEMU is
// probed once for its version and build; a missing QEMU leaves the VM
// methods working on configs, and starts fail with the exec error.
func (s *Service) newVMs(ctx context.Context, root *pvefs.Root, store *storage.Host) *qemuapi.Deps {
	bin, err := vmm.ProbeBinary(ctx, "")
	if err != nil {
		s.log.Warn("QEMU not usable, VMs cannot start", "err", err)
		bin.Upstream = true
	} else {
		s.log.Info("QEMU", "version", bin.Version, "upstream", bin.Upstream)
	}
	vcfg := vmm.Config{
		RunDir:        filepath.Join(s.env.Paths.RunDir, "qemu-server"),
		ResolveVolume: store.Resolve,
		Upstream:      bin.Upstream,
		// No bridges or pve-bridge scripts are assumed: NICs use QEMU's
		// user-mode network (see docs/vms.md).
		NetBackend: "user",
		// SPICE displays serve TLS with the node certificate (PVE's
		// /etc/pve/local/pve-ssl.*) and the cluster CA.
		SpiceKeyFile:    filepath.Join(root.Dir(), "nodes", s.node, "pve-ssl.key"),
		SpiceCertFile:   filepath.Join(root.Dir(), "nodes", s.node, "pve-ssl.pem"),
		SpiceCACertFile: filepath.Join(root.Dir(), "pve-root-ca.pem"),
		Died: func(vmid int, err error) {
			s.log.Info("QEMU process ended", "vmid", vmid, "err", err)
		},
	}
	// Under systemd each QEMU gets its own VMID.scope in qemu.slice, as on
	// PVE, so that stopping or restarting pvedaemon.service leaves the
	// guests running.
	if sc := vmm.NewSystemdScope(); sc != nil {
		vcfg.Scope = sc
	} else {
		s.log.Info("systemd is not running: QEMU processes stay in pvedaemon's cgroup")
	}
	s.vms = vmm.New(vcfg)
	return &qemuapi.Deps{
		Config: root, Privs: s.auth, Tasks: s.tasks, VMs: s.vms, Storage: store,
		QEMUVersion: func() string { return bin.Version },
		HostCPUs:    runtime.NumCPU(),
		Log:         s.log,
		SpiceSecret: s.auth.CSRFSecret,
		SerialTerminal: func(ctx context.Context, client net.Conn, serial io.ReadWriteCloser, password, name string) error {
			return vncterm.Serve(ctx, client, serial, vncterm.Options{Password: password, Name: name})
		},
	}
}

// Serve serves on the TCP and the Unix socket until Shutdown.
func (s *Service) Serve(ctx context.Context) error {
	wctx, stop := context.WithCancel(context.Background())
	s.stopWatch = stop
	go s.vms.Watch(wctx, 2*time.Second)
	errc := make(chan error, 4)
	for _, ln := range []net.Listener{s.ln, s.unixLn} {
		go func(ln net.Listener) { errc <- s.srv.Serve(ln) }(ln)
	}
	go func() { errc <- s.mux.Serve(s.muxLn) }()
	go func() { errc <- s.handoff.Serve(s.handoffLn) }()
	var first error
	for range 4 {
		err := <-errc
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, apimux.ErrServerClosed) &&
			!errors.Is(err, spicehandoff.ErrServerClosed) && first == nil {
			first = err
			s.srv.Close()
			s.mux.Close()
			s.handoff.Close()
		}
	}
	return first
}

// Reload re-reads /etc/default/pvedaemon and reopens the audit log (after
// logrotate); the access files are re-read by the authenticator whenever
// they change.
func (s *Service) Reload(ctx context.Context) error {
	if err := s.audit.Reopen(); err != nil {
		s.log.Warn("reopen audit log", "err", err)
	}
	return s.checkDefaults()
}

// Shutdown lets in-flight calls finish within ctx's deadline.
func (s *Service) Shutdown(ctx context.Context) error {
	muxDone := make(chan error, 1)
	go func() { muxDone <- s.mux.Shutdown(ctx) }()
	s.handoff.Close() // each handoff in progress is bounded (spicehandoff.Timeout)
	err := httpd.Shutdown(ctx, s.srv)
	if merr := <-muxDone; merr != nil && err == nil {
		err = fmt.Errorf("shutdown of the mux socket: %w", merr)
	}
	if cerr := s.audit.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	// Tasks end with the process (PVE's workers are processes of their
	// own and survive it); what is left running is settled at next start.
	if terr := s.tasks.Close(ctx); terr != nil && err == nil && !errors.Is(terr, context.DeadlineExceeded) {
		err = terr
	}
	return err
}

// newTaskManager opens the task directory (PVE: /var/log/pve/tasks, logs
// owned by www-data) and settles the tasks a previous pvedaemon left
// running.
func newTaskManager(logDir, node string, log *slog.Logger) (*tasks.Manager, error) {
	cfg := tasks.Config{Root: filepath.Join(logDir, "pve", "tasks"), Node: node, Logger: log}
	if u, err := user.Lookup(buildinfo.ServiceUser); err == nil && os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(u.Uid)
		cfg.LogOwner = &tasks.Owner{UID: uid, GID: -1}
	}
	m, err := tasks.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("task directory: %w", err)
	}
	n, err := m.Settle()
	if err != nil {
		return nil, fmt.Errorf("settle tasks: %w", err)
	}
	if n > 0 {
		log.Warn("tasks of an earlier pvedaemon settled", "count", n)
	}
	return m, nil
}

// serviceGID is the group of files the unprivileged daemons read, or 0
// when the account does not exist.
func serviceGID() int {
	g, err := user.LookupGroup(buildinfo.ServiceUser)
	if err != nil {
		return 0
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// memberAddr is where a cluster member's pveproxy listens: its address in
// pvestatd's view of the cluster (else its name), on the cluster's pveproxy
// port.
func memberAddr(view *clusterstate.Reader, node string, port int) (string, error) {
	v, err := view.View()
	if err != nil {
		return "", fmt.Errorf("cluster view: %w", err)
	}
	m := v.Member(node)
	if m == nil {
		return "", fmt.Errorf("node '%s' is not a cluster member", node)
	}
	if !m.Online {
		return "", fmt.Errorf("node '%s' is offline", node)
	}
	host := m.IP
	if host == "" {
		host = node
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
