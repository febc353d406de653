package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Bounds of the waits below. They are generous because the tests of this
// package run in parallel on small CI machines; every wait returns as soon
// as its condition holds.
const (
	startWait  = 30 * time.Second // a foreground daemon reports "started"
	stopWait   = 20 * time.Second // a stopped foreground daemon exits
	reloadWait = 10 * time.Second // a SIGHUP reload is logged as done
	logWait    = 5 * time.Second  // an access log line is flushed (every 1 s)
	cfgWait    = 5 * time.Second  // a user.cfg change is seen (stat every 1 s)
	cmdTimeout = 60 * time.Second // any control command (start, stop, reload)
)

// nodeOpts select how newNode starts the daemons.
type nodeOpts struct {
	defaults  string   // content of /etc/default/pveproxy; "" writes no file
	proxyFG   bool     // run pveproxy with --foreground, capturing its log
	daemonFG  bool     // run pvedaemon with --foreground, capturing its log
	proxyArgs []string // extra pveproxy start flags
	// realDelay keeps pveproxy's default --auth-fail-delay (3 s) instead of
	// the 100 ms the other tests use to stay fast.
	realDelay  bool
	daemonArgs []string // extra pvedaemon start flags
	noStart    bool     // prepare the prefix only
}

// node is one installation under a prefix: a pvedaemon and a pveproxy.
type node struct {
	t      *testing.T
	name   string // node name (nodeName unless a cluster test names it)
	netns  string // network namespace the daemons run in; "" for the test's
	prefix string
	root   *pvefs.Root // the config root, P/etc/pve
	dport  int         // pvedaemon's port on 127.0.0.1
	pport  int         // pveproxy's port
	opts   nodeOpts

	mu     sync.Mutex // guards pool, proxy and daemon
	pool   *x509.CertPool
	proxy  *proc // nil unless pveproxy runs in the foreground
	daemon *proc // nil unless pvedaemon runs in the foreground
}

// proc is a daemon started with --foreground by the test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *logBuf
	done chan struct{} // closed when cmd.Wait has returned
	err  error         // cmd.Wait's result, set before done is closed
}

// logBuf collects a process's output; safe for concurrent use.
type logBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the lines of the log containing sub.
func (l *logBuf) lines(sub string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return out
}

// newNode prepares a prefix and starts pvedaemon and pveproxy on free ports
// (unless opts.noStart); both are stopped when the test ends.
func newNode(t *testing.T, opts nodeOpts) *node {
	t.Helper()
	n := &node{t: t, name: nodeName, prefix: newPrefix(t), opts: opts}
	root, err := pvefs.Open(filepath.Join(n.prefix, "etc/pve"))
	if err != nil {
		t.Fatal(err)
	}
	n.root = root
	n.dport = freePort(t, "tcp4", "127.0.0.1:0")
	n.pport = freePort(t, "tcp", ":0")
	ca, err := os.ReadFile(filepath.Join(n.prefix, "etc/pve/pve-root-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	n.pool = x509.NewCertPool()
	if !n.pool.AppendCertsFromPEM(ca) {
		t.Fatal("pve-root-ca.pem holds no certificate")
	}
	if opts.defaults != "" {
		n.writeDefaults(t, opts.defaults)
	}
	if opts.noStart {
		return n
	}
	t.Cleanup(n.stopAll)
	if err := n.startDaemon(opts.daemonFG, opts.daemonArgs...); err != nil {
		t.Fatalf("start pvedaemon: %v", err)
	}
	if err := n.startProxy(opts.proxyFG, opts.proxyArgs...); err != nil {
		t.Fatalf("start pveproxy: %v", err)
	}
	return n
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T, network, addr string) int {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// certPool returns the CAs clients of this node trust.
func (n *node) certPool() *x509.CertPool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pool
}

// trust adds a CA to the pool clients created afterwards use.
func (n *node) trust(ca *x509.Certificate) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.pool.Clone()
	p.AddCert(ca)
	n.pool = p
}

// run runs one of the binaries and returns its stdout, stderr and error.
func (n *node) run(bin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.bin, bin), args...)
	if n.netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.netns, filepath.Join(h.bin, bin)}, args...)...)
	}
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A daemonizing start leaves its child running; it must not hold our
	// pipes, which it does not (its stdio is /dev/null).
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (n *node) daemonStartArgs(fg bool, extra []string) []string {
	args := []string{"start", "--prefix", n.prefix, "--listen", fmt.Sprintf("127.0.0.1:%d", n.dport), "--node", n.name,
		"--proxy-port", strconv.Itoa(n.pport)}
	if fg {
		args = append(args, "--foreground")
	}
	return append(args, extra...)
}

func (n *node) proxyStartArgs(fg bool, extra []string) []string {
	args := []string{"start", "--prefix", n.prefix, "--port", strconv.Itoa(n.pport),
		"--daemon-addr", fmt.Sprintf("127.0.0.1:%d", n.dport), "--node", n.name}
	if fg {
		args = append(args, "--foreground")
	}
	hasDelay := false
	for _, a := range extra {
		if strings.HasPrefix(a, "--auth-fail-delay") {
			hasDelay = true
		}
	}
	if !hasDelay && !n.opts.realDelay {
		args = append(args, "--auth-fail-delay", "100ms")
	}
	return append(args, extra...)
}

// startDaemon starts pvedaemon, in the foreground (log captured) or with
// the daemonizing `start`.
func (n *node) startDaemon(fg bool, extra ...string) error {
	args := n.daemonStartArgs(fg, extra)
	if !fg {
		_, stderr, err := n.run("pvedaemon", args...)
		if err != nil {
			return fmt.Errorf("%w: %s", err, stderr)
		}
		return nil
	}
	p, err := startForeground("pvedaemon", args)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.daemon = p
	n.mu.Unlock()
	return nil
}

// startProxy starts pveproxy like startDaemon starts pvedaemon.
func (n *node) startProxy(fg bool, extra ...string) error {
	args := n.proxyStartArgs(fg, extra)
	if !fg {
		_, stderr, err := n.run("pveproxy", args...)
		if err != nil {
			return fmt.Errorf("%w: %s", err, stderr)
		}
		return nil
	}
	p, err := startForeground("pveproxy", args)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proxy = p
	n.mu.Unlock()
	return nil
}

// startForeground runs `<name> start --foreground ...` and waits until it
// logs that it started, or fails with its output if it exits first.
func startForeground(name string, args []string) (*proc, error) {
	cmd := exec.Command(filepath.Join(h.bin, name), args...)
	cmd.Env = childEnv()
	out := &logBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { // ends when the process exits; stopAll makes sure it does
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(startWait)
	for {
		if len(out.lines("msg=started")) > 0 {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited during start-up (%v):\n%s", name, p.err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("%s did not start within %v:\n%s", name, startWait, out.String())
		}
	}
}

// stop stops a daemon with its `stop` command and, if it ran in the
// foreground, waits for the process to end (killing it as a last resort).
func (n *node) stop(name string) error {
	_, stderr, err := n.run(name, "stop", "--prefix", n.prefix)
	n.mu.Lock()
	p := n.proxy
	if name == "pvedaemon" {
		p = n.daemon
		n.daemon = nil
	} else {
		n.proxy = nil
	}
	n.mu.Unlock()
	if p != nil {
		select {
		case <-p.done:
		case <-time.After(stopWait):
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("%s did not exit after stop; killed", name)
		}
	}
	if err != nil {
		return fmt.Errorf("%s stop: %w: %s", name, err, stderr)
	}
	return nil
}

// startStatd starts pvestatd (daemonizing) with a short cycle, and stops
// it when the test ends.
func (n *node) startStatd(extra ...string) {
	n.t.Helper()
	args := append([]string{"start", "--prefix", n.prefix, "--node", n.name, "--interval", "1s"}, extra...)
	if _, stderr, err := n.run("pvestatd", args...); err != nil {
		n.t.Fatalf("start pvestatd: %v: %s", err, stderr)
	}
	n.t.Cleanup(func() {
		if _, stderr, err := n.run("pvestatd", "stop", "--prefix", n.prefix); err != nil {
			n.t.Errorf("stop pvestatd: %v: %s", err, stderr)
		}
	})
}

// stopAll stops both daemons at the end of the test. A foreground daemon
// that exited on its own is reported as a failure.
func (n *node) stopAll() {
	for _, name := range []string{"pveproxy", "pvedaemon"} {
		n.mu.Lock()
		p := n.proxy
		if name == "pvedaemon" {
			p = n.daemon
		}
		n.mu.Unlock()
		if p != nil {
			select {
			case <-p.done:
				n.t.Errorf("%s exited during the test (%v); its log:\n%s", name, p.err, p.out.String())
			default:
			}
		}
		if err := n.stop(name); err != nil {
			n.t.Errorf("stop %s: %v", name, err)
		}
	}
}

// status returns what `<name> status` prints.
func (n *node) status(t *testing.T, name string) string {
	stdout, stderr, err := n.run(name, "status", "--prefix", n.prefix)
	if err != nil {
		t.Errorf("%s status: %v: %s", name, err, stderr)
	}
	return strings.TrimSpace(stdout)
}

// pid returns the pid in a daemon's pid file.
func (n *node) pid(t *testing.T, name string) int {
	t.Helper()
	path := filepath.Join(n.prefix, "run", name+".pid")
	if name == "pveproxy" {
		path = filepath.Join(n.prefix, "run/pveproxy/pveproxy.pid")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// proxyLog returns the foreground pveproxy's log.
func (n *node) proxyLog(t *testing.T) *logBuf {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proxy == nil {
		t.Fatal("pveproxy does not run in the foreground")
	}
	return n.proxy.out
}

// daemonLog returns the foreground pvedaemon's log.
func (n *node) daemonLog(t *testing.T) *logBuf {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.daemon == nil {
		t.Fatal("pvedaemon does not run in the foreground")
	}
	return n.daemon.out
}

// defaultsPath is P/etc/default/pveproxy.
func (n *node) defaultsPath() string { return filepath.Join(n.prefix, "etc/default/pveproxy") }

// writeDefaults writes /etc/default/pveproxy, readable by www-data (a
// reload runs after the privilege drop).
func (n *node) writeDefaults(t *testing.T, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(n.defaultsPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := n.defaultsPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, n.defaultsPath()); err != nil {
		t.Fatal(err)
	}
}

// reloadResult is what pveproxy logged for one reload.
type reloadResult struct {
	ok   bool
	line string // the "reloaded" or "reload failed" log line
}

// reloadProxy runs `pveproxy reload` and waits until the foreground
// pveproxy has logged the outcome.
func (n *node) reloadProxy(t *testing.T) reloadResult {
	t.Helper()
	log := n.proxyLog(t)
	outcomes := func() []string {
		var out []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "msg=reloaded") || strings.Contains(l, `msg="reload failed`) {
				out = append(out, l)
			}
		}
		return out
	}
	before := len(outcomes())
	if _, stderr, err := n.run("pveproxy", "reload", "--prefix", n.prefix); err != nil {
		t.Fatalf("pveproxy reload: %v: %s", err, stderr)
	}
	deadline := time.Now().Add(reloadWait)
	for time.Now().Before(deadline) {
		if o := outcomes(); len(o) > before {
			l := o[before]
			return reloadResult{ok: strings.Contains(l, "msg=reloaded"), line: l}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pveproxy logged no reload outcome within %v; log:\n%s", reloadWait, log.String())
	return reloadResult{}
}

// mustReload reloads and fails the test if the reload failed.
func (n *node) mustReload(t *testing.T) {
	t.Helper()
	if r := n.reloadProxy(t); !r.ok {
		t.Fatalf("reload failed: %s", r.line)
	}
}

// accessLogPath is pveproxy's access log.
func (n *node) accessLogPath() string {
	return filepath.Join(n.prefix, "var/log/pveproxy/access.log")
}

// accessLine is one parsed access log line.
type accessLine struct {
	raw, client, user, time, request, status, bytes string
}

// accessLineRE is PVE's access log format.
var accessLineRE = regexp.MustCompile(
	`^(\S+) - (\S+) \[(\d{2}/\d{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "([^"]*)" (\d{3}) (\d+|-)$`)

// accessLines returns the parsed lines of the access log; a line that does
// not have PVE's format fails the test.
func (n *node) accessLines(t *testing.T) []accessLine {
	t.Helper()
	b, err := os.ReadFile(n.accessLogPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []accessLine
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		m := accessLineRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("access log line not in PVE's format: %q", l)
			continue
		}
		out = append(out, accessLine{raw: l, client: m[1], user: m[2], time: m[3], request: m[4], status: m[5], bytes: m[6]})
	}
	return out
}

// waitAccess waits until the access log has a line for which match is true
// and returns it.
func (n *node) waitAccess(t *testing.T, what string, match func(accessLine) bool) accessLine {
	t.Helper()
	deadline := time.Now().Add(logWait)
	for {
		for _, l := range n.accessLines(t) {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.accessLogPath())
			t.Fatalf("no access log line %s within %v; log:\n%s", what, logWait, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeCfg replaces a file of the config root through pvefs, which is
// meant to keep the owner and group of the file it replaces. It does not
// (see TestConfigRewriteKeepsGroup), so the owner and group are put back
// here: the other tests are about other things.
func (n *node) writeCfg(t *testing.T, name, content string, perm os.FileMode) {
	t.Helper()
	path := filepath.Join(n.root.Dir(), name)
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if err := n.root.WriteFile(name, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if uid < 0 {
		return
	}
	if fi, err := os.Stat(path); err == nil {
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
			if err := os.Chown(path, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeServiceFile writes a file www-data must read (root:www-data 0640),
// as pmxcfs shows every file outside priv/.
func (n *node) writeServiceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, h.wwwGID); err != nil {
		t.Fatal(err)
	}
}

// nodeDir is P/etc/pve/nodes/<node>.
func (n *node) nodeDir() string { return filepath.Join(n.prefix, "etc/pve/nodes", nodeName) }
