// Package vmm runs the QEMU processes of VMs on this node: it builds the
// command line with pkg/qemu, starts QEMU as a detached child (own process
// group, not tied to the caller's context), drives it over QMP (stop,
// shutdown, suspend, resume, reset), reports its state from /proc and QMP
// (Status, and Stats with the figures of PVE's status/current), and
// notices when a QEMU process exits on its own.
//
// Files per VM in Config.RunDir: VMID.qmp (QMP socket), VMID.pid (written
// by QEMU's -pidfile), VMID.vnc (VNC socket), VMID.log (QEMU's output,
// capped at MaxLogSize).
package vmm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// MaxLogSize caps RunDir/VMID.log; output beyond it is discarded.
const MaxLogSize = 1 << 20

// ErrRunning is returned by Start for a VM whose QEMU is already running
// (or being started).
var ErrRunning = errors.New("VM is already running")

// ErrNotRunning is returned by operations that need a running VM.
var ErrNotRunning = errors.New("VM is not running")

// Config configures a Manager.
type Config struct {
	// RunDir holds sockets, pid files and logs; default qemu.DefaultRunDir.
	RunDir string
	// QEMUBinary is the QEMU executable; default "qemu-system-x86_64".
	QEMUBinary string
	// KVM reports whether hardware virtualisation is usable; default:
	// /dev/kvm can be opened read-write.
	KVM func() bool
	// ResolveVolume maps a volume ID to the path and format QEMU opens.
	ResolveVolume func(volid string) (path, format string, err error)
	// Upstream says QEMUBinary is upstream QEMU rather than pve-qemu-kvm.
	Upstream bool
	// NetBackend is passed to qemu.Options ("user" or "tap"; default "tap").
	NetBackend string
	// Output, if set, returns the writer for a VM's QEMU stdout/stderr
	// instead of RunDir/VMID.log.
	Output func(vmid int) io.Writer
	// Scope, if set, moves each QEMU process out of the daemon's cgroup
	// (NewSystemdScope under systemd); a failure fails the start.
	Scope Scoper
	// Died, if set, is called (from a goroutine of the Manager) when a QEMU
	// process exits, whether asked to or not, after its files are removed.
	Died func(vmid int, err error)
	// StatsTimeout bounds each QMP exchange of Stats (the connection
	// handshake and each command); default DefaultStatsTimeout.
	StatsTimeout time.Duration
	// Now returns the current time for Stats' CPU rate (default time.Now).
	Now func() time.Time
	// SpiceKeyFile, SpiceCertFile and SpiceCACertFile are the TLS files of
	// QEMU's SPICE server (PVE: /etc/pve/local/pve-ssl.key,
	// /etc/pve/local/pve-ssl.pem, /etc/pve/pve-root-ca.pem); needed to
	// start a VM with a SPICE display on Upstream QEMU.
	SpiceKeyFile    string
	SpiceCertFile   string
	SpiceCACertFile string
}

// State is what /proc and QMP say about a VM's QEMU process.
type State struct {
	Running   bool
	QMPStatus string // query-status: "running", "paused", "shutdown", ...; "" if QMP did not answer
	PID       int
	Uptime    time.Duration // since the process started (/proc/PID/stat starttime)
	CPUTime   time.Duration // user+system time consumed (/proc/PID/stat utime+stime)
	RSS       uint64        // resident memory in bytes (/proc/PID/status VmRSS)
	VSize     uint64        // virtual memory in bytes (/proc/PID/stat vsize)
	Threads   int           // /proc/PID/status Threads
}

type proc struct {
	pid    int
	exited chan struct{} // closed when the process has exited
	err    error         // exit status, set before exited is closed
}

// Manager runs the QEMU processes of VMs. It is safe for concurrent use.
type Manager struct {
	cfg   Config
	locks sync.Map // vmid -> *sync.Mutex

	hostCPUs   int    // for Stats' CPU rate window
	cgroupRoot string // where cgroup file systems are mounted
	procNetDev string // the interface counters file

	mu       sync.Mutex        // guards the maps below
	procs    map[int]*proc     // processes this Manager started
	starting map[int]bool      // Start in progress
	adopted  map[int]int       // vmid -> pid of processes found via pid file
	samples  map[int]cpuSample // vmid -> last CPU sample of Stats, running VMs only

	spice spicePorts // SPICE ports of starts in progress
}

// New returns a Manager for cfg.
func New(cfg Config) *Manager {
	if cfg.RunDir == "" {
		cfg.RunDir = qemu.DefaultRunDir
	}
	if cfg.QEMUBinary == "" {
		cfg.QEMUBinary = defaultBinary
	}
	if cfg.KVM == nil {
		cfg.KVM = func() bool {
			f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
			if err != nil {
				return false
			}
			f.Close()
			return true
		}
	}
	if cfg.StatsTimeout <= 0 {
		cfg.StatsTimeout = DefaultStatsTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{
		cfg:        cfg,
		hostCPUs:   runtime.NumCPU(),
		cgroupRoot: "/sys/fs/cgroup",
		procNetDev: "/proc/net/dev",
		procs:      map[int]*proc{},
		starting:   map[int]bool{},
		adopted:    map[int]int{},
		samples:    map[int]cpuSample{},
	}
}

// Lock takes the per-VM lock of vmid and returns its release. Callers hold
// it across reading a VM's config and starting or stopping it. The Manager's
// own methods do not take it (so they can be called with it held); Start is
// nonetheless safe against concurrent Starts of the same VM.
func (m *Manager) Lock(vmid int) (unlock func()) {
	v, _ := m.locks.LoadOrStore(vmid, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	var once sync.Once
	return func() { once.Do(mu.Unlock) }
}

func (m *Manager) path(vmid int, ext string) string {
	return filepath.Join(m.cfg.RunDir, strconv.Itoa(vmid)+"."+ext)
}

// QMPSocket, PIDFile, VNCSocket and LogFile return a VM's file paths.
func (m *Manager) QMPSocket(vmid int) string { return m.path(vmid, "qmp") }
func (m *Manager) PIDFile(vmid int) string   { return m.path(vmid, "pid") }
func (m *Manager) VNCSocket(vmid int) string { return m.path(vmid, "vnc") }
func (m *Manager) LogFile(vmid int) string   { return m.path(vmid, "log") }

// runningPID is PVE's check_running: the pid in VMID.pid if that process
// exists, is not a zombie, and its command line names the pid file.
func (m *Manager) runningPID(vmid int) int {
	data, err := os.ReadFile(m.PIDFile(vmid))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !alive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(m.PIDFile(vmid))) {
		return 0
	}
	return pid
}

// alive reports whether /proc/pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// Running reports whether vmid's QEMU runs, and its pid.
func (m *Manager) Running(vmid int) (pid int, ok bool) {
	pid = m.runningPID(vmid)
	return pid, pid != 0
}

func (m *Manager) cleanup(vmid int) {
	for _, ext := range []string{"pid", "qmp", "vnc"} {
		os.Remove(m.path(vmid, ext))
	}
}

// Start starts the QEMU process of cfg and returns once its QMP socket
// answers (or ctx ends, in which case the process is killed). The process
// outlives ctx.
func (m *Manager) Start(ctx context.Context, cfg *qemu.Config) error {
	// The SPICE port is the first free one when the start begins; another
	// process (a second installation on this host, a program) can take it
	// before QEMU binds it. QEMU then exits at once, and the start is tried
	// again with the next free port, a few times.
	for attempt := 0; ; attempt++ {
		err := m.startOnce(ctx, cfg)
		if err == nil || attempt == 2 || !spiceBindFailed(err) {
			return err
		}
	}
}

// spiceBindFailed reports a start that failed because QEMU could not bind
// its SPICE port.
func spiceBindFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "binding socket to "+qemu.SpiceAddr+":") && strings.Contains(msg, "failed")
}

// startOnce is one attempt of Start.
func (m *Manager) startOnce(ctx context.Context, cfg *qemu.Config) (err error) {
	if cfg == nil {
		return errors.New("start: no config")
	}
	vmid := cfg.VMID
	m.mu.Lock()
	if p := m.procs[vmid]; p != nil && !alive(p.pid) {
		// Exited (killed from outside, or quit) but not reaped yet: wait
		// for the reaper, which is about to remove it.
		m.mu.Unlock()
		select {
		case <-p.exited:
		case <-ctx.Done():
			return fmt.Errorf("start VM %d: %w", vmid, ctx.Err())
		}
		m.mu.Lock()
	}
	if m.starting[vmid] || m.procs[vmid] != nil || m.runningPID(vmid) != 0 {
		m.mu.Unlock()
		return fmt.Errorf("start VM %d: %w", vmid, ErrRunning)
	}
	m.starting[vmid] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.starting, vmid)
		m.mu.Unlock()
	}()

	if err := os.MkdirAll(m.cfg.RunDir, 0o755); err != nil {
		return fmt.Errorf("start VM %d: %w", vmid, err)
	}
	m.cleanup(vmid) // stale files of a dead process
	opts := qemu.Options{
		VMID:          vmid,
		Binary:        m.cfg.QEMUBinary,
		KVM:           m.cfg.KVM(),
		RunDir:        m.cfg.RunDir,
		QMPSocket:     m.QMPSocket(vmid),
		PIDFile:       m.PIDFile(vmid),
		VNCSocket:     m.VNCSocket(vmid),
		ResolveVolume: m.cfg.ResolveVolume,
		NetBackend:    m.cfg.NetBackend,
		Upstream:      m.cfg.Upstream,
	}
	releaseSpice, err := m.spiceOptions(cfg, &opts)
	if err != nil {
		return fmt.Errorf("start VM %d: %w", vmid, err)
	}
	defer releaseSpice() // QEMU has bound the port once QMP answers
	args, err := qemu.CommandLine(cfg, opts)
	if err != nil {
		return fmt.Errorf("start VM %d: %w", vmid, err)
	}
	var out io.Writer
	var logFile *os.File
	if m.cfg.Output != nil {
		out = m.cfg.Output(vmid)
	} else {
		logFile, err = os.OpenFile(m.LogFile(vmid), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fmt.Errorf("start VM %d: %w", vmid, err)
		}
		out = &capWriter{w: logFile, left: MaxLogSize}
	}
	// Not CommandContext: QEMU must outlive the request.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if m.cfg.Scope != nil {
		if err := m.cfg.Scope.Prepare(ctx, vmid); err != nil {
			if logFile != nil {
				logFile.Close()
			}
			return fmt.Errorf("start VM %d: %w", vmid, err)
		}
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return fmt.Errorf("start VM %d: %w", vmid, err)
	}
	p := &proc{pid: cmd.Process.Pid, exited: make(chan struct{})}
	m.mu.Lock()
	m.procs[vmid] = p
	m.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		m.mu.Lock()
		if m.procs[vmid] == p {
			delete(m.procs, vmid)
			delete(m.samples, vmid)
			m.cleanup(vmid)
		}
		m.mu.Unlock()
		// Closed after the entry is gone, so that a Start waiting for a
		// dead process (see Start) finds the VM free.
		close(p.exited)
		if m.cfg.Died != nil {
			m.cfg.Died(vmid, p.err)
		}
	}()
	if m.cfg.Scope != nil {
		if err := m.cfg.Scope.Enter(ctx, cfg, p.pid); err != nil {
			syscall.Kill(-p.pid, syscall.SIGKILL)
			<-p.exited
			return fmt.Errorf("start VM %d: %w", vmid, err)
		}
	}

	// Wait until QMP answers.
	for {
		c, derr := qemu.DialQMP(ctx, m.QMPSocket(vmid))
		if derr == nil {
			_, qerr := c.QueryStatus(ctx)
			c.Close()
			if qerr == nil {
				return nil
			}
			derr = qerr
		}
		select {
		case <-p.exited:
			return fmt.Errorf("start VM %d: qemu exited: %v%s", vmid, p.err, m.logTail(vmid))
		case <-ctx.Done():
			syscall.Kill(-p.pid, syscall.SIGKILL)
			<-p.exited
			return fmt.Errorf("start VM %d: QMP did not answer: %w (last: %v)", vmid, ctx.Err(), derr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *Manager) logTail(vmid int) string {
	if m.cfg.Output != nil {
		return ""
	}
	data, _ := os.ReadFile(m.LogFile(vmid))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	if len(data) == 0 {
		return ""
	}
	return ": " + strings.TrimSpace(string(data))
}

type capWriter struct {
	mu   sync.Mutex
	w    io.Writer
	left int
}

func (c *capWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if c.left <= 0 {
		return n, nil
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	w, err := c.w.Write(p)
	c.left -= w
	if err != nil {
		return w, err
	}
	return n, nil
}

// qmp runs f on a fresh QMP connection to vmid.
func (m *Manager) qmp(ctx context.Context, vmid int, f func(*qemu.QMPClient) error) error {
	if m.runningPID(vmid) == 0 {
		return fmt.Errorf("VM %d: %w", vmid, ErrNotRunning)
	}
	c, err := qemu.DialQMP(ctx, m.QMPSocket(vmid))
	if err != nil {
		return fmt.Errorf("VM %d: %w", vmid, err)
	}
	defer c.Close()
	if err := f(c); err != nil {
		return fmt.Errorf("VM %d: %w", vmid, err)
	}
	return nil
}

// Status reports vmid's process state from /proc and QMP. A VM that is not
// running gives State{} and no error. QMPStatus is "" if QMP did not answer
// within ctx.
func (m *Manager) Status(ctx context.Context, vmid int) (State, error) {
	pid := m.runningPID(vmid)
	if pid == 0 {
		return State{}, nil
	}
	st, err := readStat(pid)
	if err != nil {
		return State{}, nil // exited meanwhile
	}
	s := procState(pid, st)
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if c, err := qemu.DialQMP(qctx, m.QMPSocket(vmid)); err == nil {
		if qs, err := c.QueryStatus(qctx); err == nil {
			s.QMPStatus = qs.Status
		}
		c.Close()
	}
	return s, nil
}

// procState fills State from /proc/PID/stat (st), /proc/uptime and
// /proc/PID/status; QMPStatus is left empty.
func procState(pid int, st procStat) State {
	s := State{Running: true, PID: pid, CPUTime: ticks(st.utime + st.stime), VSize: st.vsize}
	if up, err := sysUptime(); err == nil {
		s.Uptime = up - ticks(st.starttime)
		if s.Uptime < 0 {
			s.Uptime = 0
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseUint(f[0], 10, 64)
			switch k {
			case "VmRSS":
				s.RSS = n * 1024
			case "Threads":
				s.Threads = int(n)
			}
		}
	}
	return s
}

// Suspend pauses the VM's CPUs (QMP stop).
func (m *Manager) Suspend(ctx context.Context, vmid int) error {
	return m.qmp(ctx, vmid, func(c *qemu.QMPClient) error { return c.Stop(ctx) })
}

// Resume continues the VM's CPUs (QMP cont).
func (m *Manager) Resume(ctx context.Context, vmid int) error {
	return m.qmp(ctx, vmid, func(c *qemu.QMPClient) error { return c.Cont(ctx) })
}

// Reset resets the VM (QMP system_reset).
func (m *Manager) Reset(ctx context.Context, vmid int) error {
	return m.qmp(ctx, vmid, func(c *qemu.QMPClient) error { return c.SystemReset(ctx) })
}

// Stop ends vmid's QEMU: QMP quit, then SIGTERM, and SIGKILL if it is
// still there after timeout. It returns once the process is gone (or ctx
// ends) and removes the VM's pid file and sockets. Stopping a VM that is
// not running is not an error.
func (m *Manager) Stop(ctx context.Context, vmid int, timeout time.Duration) error {
	pid := m.runningPID(vmid)
	if pid == 0 {
		m.mu.Lock()
		if m.procs[vmid] == nil {
			m.cleanup(vmid)
		}
		m.mu.Unlock()
		return nil
	}
	deadline := time.Now().Add(timeout)
	// QMP quit, bounded by a share of the timeout.
	qctx, cancel := context.WithTimeout(ctx, timeout/2+time.Second)
	if c, err := qemu.DialQMP(qctx, m.QMPSocket(vmid)); err == nil {
		c.Quit(qctx)
		c.Close()
	}
	cancel()
	if m.waitGone(ctx, pid, 2*time.Second) {
		return m.stopped(vmid, pid)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if m.waitGone(ctx, pid, time.Until(deadline)) {
		return m.stopped(vmid, pid)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop VM %d: %w", vmid, ctx.Err())
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if m.waitGone(ctx, pid, 10*time.Second) {
		return m.stopped(vmid, pid)
	}
	return fmt.Errorf("stop VM %d: process %d still there after SIGKILL", vmid, pid)
}

// waitGone waits up to d (and ctx) for pid to exit; true if it did.
func (m *Manager) waitGone(ctx context.Context, pid int, d time.Duration) bool {
	if d < 0 {
		d = 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if !m.pidAlive(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return !m.pidAlive(pid)
		case <-t.C:
			return !m.pidAlive(pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pidAlive: for our own children, the Wait goroutine decides (a zombie not
// yet reaped counts as gone only once reaped); else /proc.
func (m *Manager) pidAlive(pid int) bool {
	m.mu.Lock()
	var p *proc
	for _, q := range m.procs {
		if q.pid == pid {
			p = q
		}
	}
	m.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return alive(pid)
}

func (m *Manager) stopped(vmid, pid int) error {
	m.mu.Lock()
	p := m.procs[vmid]
	if p != nil && p.pid == pid {
		delete(m.procs, vmid)
	}
	delete(m.adopted, vmid)
	delete(m.samples, vmid)
	m.cleanup(vmid)
	m.mu.Unlock()
	return nil
}

// Shutdown asks the guest to power off (ACPI, QMP system_powerdown) and
// waits up to timeout for it; QEMU runs with -no-shutdown, so a guest that
// powered off leaves QEMU in status "shutdown" and is then quit. If the
// guest did not go down and forceStop is set, the VM is stopped (PVE's
// forceStop); else an error is returned and the VM keeps running.
func (m *Manager) Shutdown(ctx context.Context, vmid int, timeout time.Duration, forceStop bool) error {
	pid := m.runningPID(vmid)
	if pid == 0 {
		return nil
	}
	if err := m.qmp(ctx, vmid, func(c *qemu.QMPClient) error { return c.SystemPowerdown(ctx) }); err != nil && m.runningPID(vmid) != 0 {
		return fmt.Errorf("shutdown: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !m.pidAlive(pid) {
			return m.stopped(vmid, pid)
		}
		s, _ := m.Status(ctx, vmid)
		if s.QMPStatus == "shutdown" {
			return m.Stop(ctx, vmid, 10*time.Second)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shutdown VM %d: %w", vmid, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !forceStop {
		return fmt.Errorf("shutdown VM %d: guest did not power off within %v", vmid, timeout)
	}
	return m.Stop(ctx, vmid, 10*time.Second)
}

// Watch checks every interval, until ctx ends, the pid files in RunDir of
// VMs this Manager did not start (e.g. found running at daemon start): when
// such a process is gone, its pid file and sockets are removed and Died is
// called. Processes the Manager started are watched by their Wait.
func (m *Manager) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.scan()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) scan() {
	files, _ := filepath.Glob(filepath.Join(m.cfg.RunDir, "*.pid"))
	var died []int
	m.mu.Lock()
	seen := map[int]bool{}
	for _, f := range files {
		vmid, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".pid"))
		if err != nil || m.procs[vmid] != nil || m.starting[vmid] {
			continue
		}
		seen[vmid] = true
		if pid := m.runningPID(vmid); pid != 0 {
			m.adopted[vmid] = pid
			continue
		}
		delete(m.adopted, vmid)
		delete(m.samples, vmid)
		m.cleanup(vmid)
		died = append(died, vmid)
	}
	// Adopted VMs whose pid file someone else removed.
	for vmid := range m.adopted {
		if !seen[vmid] && m.procs[vmid] == nil && m.runningPID(vmid) == 0 {
			delete(m.adopted, vmid)
			delete(m.samples, vmid)
			m.cleanup(vmid)
			died = append(died, vmid)
		}
	}
	m.mu.Unlock()
	if m.cfg.Died != nil {
		for _, vmid := range died {
			m.cfg.Died(vmid, errors.New("process gone"))
		}
	}
}

type procStat struct {
	state                   byte
	utime, stime, starttime uint64
	vsize                   uint64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm may hold spaces and parens: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 21 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	return procStat{state: f[0][0], utime: u(14), stime: u(15), starttime: u(22), vsize: u(23)}, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

func sysUptime() (time.Duration, error) {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, errors.New("/proc/uptime: empty")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(secs * float64(time.Second)), nil
}
