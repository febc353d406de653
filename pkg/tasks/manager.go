package tasks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultRoot is where PVE keeps task logs, active and index.
const DefaultRoot = "/var/log/pve/tasks"

// Defaults of Config.
const (
	DefaultMaxTasks   = 128
	DefaultMaxLineLen = 4096
)

var (
	// ErrNoSuchTask: the task's log file does not exist (PVE: "no such task").
	ErrNoSuchTask = errors.New("no such task")
	// ErrTooManyTasks: Config.MaxTasks tasks are running.
	ErrTooManyTasks = errors.New("too many running tasks")
	// ErrClosed: the Manager is closed and starts no new task.
	ErrClosed = errors.New("task manager closed")
	// ErrNotOwner: Stop of a task that another live process runs.
	ErrNotOwner = errors.New("task is run by another process")
	// ErrInterrupted is the cancellation cause of a stopped task's context;
	// a task that ends with it (or with context.Canceled after Stop) gets
	// PVE's status "received interrupt".
	ErrInterrupted = errors.New(StatusInterrupt)
)

// Owner is a file owner (PVE makes task logs owned by www-data).
type Owner struct{ UID, GID int }

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	Root       string // default DefaultRoot
	Node       string // node name, default for TaskSpec.Node
	MaxTasks   int    // concurrently running tasks, default DefaultMaxTasks
	MaxLineLen int    // bytes per log line, default DefaultMaxLineLen
	LogOwner   *Owner // chown new log files (PVE: www-data, group unchanged = -1); nil: no chown
	Logger     *slog.Logger

	// Hooks for tests. PID and PStart default to this process's values.
	PID         int
	PStart      uint64
	Now         func() time.Time
	ProcRunning func(pid int, pstart uint64) bool // default ProcessRunning
}

// TaskSpec describes a task to start. Type defaults to "unknown" as in PVE;
// User is required. None may contain ':', '/' or whitespace.
type TaskSpec struct {
	Type, ID, User, Node string
}

// Func is a task's body. ctx is cancelled by Stop (cause ErrInterrupted) and
// by Close; the returned error's text (newlines replaced by spaces) becomes
// the task status.
type Func func(ctx context.Context, log *Log) error

type worker struct {
	cancel  context.CancelCauseFunc
	stopped bool // Stop was called
	ended   bool // fn returned and the log is complete; active not yet updated
	done    chan struct{}
}

// Manager runs tasks and keeps PVE's task files below its root.
type Manager struct {
	cfg    Config
	root   string
	pid    int
	pstart uint64
	now    func() time.Time
	procOK func(int, uint64) bool
	log    *slog.Logger

	fileMu sync.Mutex // serialises active/index updates in this process (flock across processes)

	mu      sync.Mutex
	running map[string]*worker // by canonical UPID string, until the task's end is recorded
	closed  bool
	wg      sync.WaitGroup
}

// New returns a Manager over cfg.Root, creating the directory. Call Settle
// once at daemon start.
func New(cfg Config) (*Manager, error) {
	m := &Manager{cfg: cfg, root: cfg.Root, pid: cfg.PID, pstart: cfg.PStart, now: cfg.Now,
		procOK: cfg.ProcRunning, log: cfg.Logger, running: map[string]*worker{}}
	if m.root == "" {
		m.root = DefaultRoot
	}
	if m.cfg.MaxTasks <= 0 {
		m.cfg.MaxTasks = DefaultMaxTasks
	}
	if m.cfg.MaxLineLen <= 0 {
		m.cfg.MaxLineLen = DefaultMaxLineLen
	}
	if m.cfg.MaxLineLen < 16 {
		m.cfg.MaxLineLen = 16
	}
	if m.pid == 0 {
		m.pid = os.Getpid()
	}
	if m.pstart == 0 {
		st, err := SelfStartTime()
		if err != nil {
			return nil, fmt.Errorf("unable to read process start time: %w", err)
		}
		m.pstart = st
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.procOK == nil {
		m.procOK = ProcessRunning
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if err := os.MkdirAll(m.root, 0o755); err != nil {
		return nil, err
	}
	return m, nil
}

// Root is the directory of the task files.
func (m *Manager) Root() string { return m.root }

var fieldRe = regexp.MustCompile(`^[^:\t\n\v\f\r /]*$`)

// Start creates the task's UPID and log file, records it in the active
// file and runs fn in a new goroutine. It returns at once. The task does not
// end with ctx (only ctx's values are passed on): it runs until fn returns,
// Stop or Close.
func (m *Manager) Start(ctx context.Context, spec TaskSpec, fn Func) (UPID, error) {
	if spec.Type == "" {
		spec.Type = "unknown"
	}
	if spec.Node == "" {
		spec.Node = m.cfg.Node
	}
	if spec.User == "" || !fieldRe.MatchString(spec.Type) || !fieldRe.MatchString(spec.ID) || !fieldRe.MatchString(spec.User) {
		return UPID{}, fmt.Errorf("%w: invalid task type, id or user (%q, %q, %q)", ErrInvalidUPID, spec.Type, spec.ID, spec.User)
	}
	u := UPID{Node: spec.Node, PID: m.pid, PStart: m.pstart, StartTime: m.now().Unix(),
		Type: spec.Type, ID: spec.ID, User: spec.User}
	if err := u.Validate(); err != nil {
		return UPID{}, err
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return UPID{}, ErrClosed
	}
	if len(m.running) >= m.cfg.MaxTasks {
		m.mu.Unlock()
		return UPID{}, fmt.Errorf("%w (%d)", ErrTooManyTasks, m.cfg.MaxTasks)
	}
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	w := &worker{cancel: cancel, done: make(chan struct{})}
	// Reserve a slot under a placeholder key while the file is created.
	slot := fmt.Sprintf("\x00reserve:%p", w)
	m.running[slot] = w
	m.wg.Add(1)
	m.mu.Unlock()

	f, err := m.createLog(&u)
	m.mu.Lock()
	delete(m.running, slot)
	if err == nil {
		m.running[u.String()] = w
	}
	m.mu.Unlock()
	if err != nil {
		cancel(nil)
		m.wg.Done()
		return UPID{}, err
	}
	l := &Log{f: f, upid: u, max: m.cfg.MaxLineLen}

	if _, err := m.updateActive(u.String(), true); err != nil {
		err = fmt.Errorf("unable to register task: %w", err)
		l.finish(func(int) string { return "TASK ERROR: " + oneLine(err.Error(), m.cfg.MaxLineLen) })
		m.mu.Lock()
		delete(m.running, u.String())
		m.mu.Unlock()
		cancel(nil)
		close(w.done)
		m.wg.Done()
		return UPID{}, err
	}

	go m.run(tctx, u, l, w, fn)
	return u, nil
}

// createLog creates the log file with O_EXCL, advancing the starttime while
// the name is taken (see the package documentation).
func (m *Manager) createLog(u *UPID) (*os.File, error) {
	for range 1000 {
		s := u.String()
		p := logPath(m.root, s)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		m.mu.Lock()
		_, taken := m.running[s]
		m.mu.Unlock()
		if !taken {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			if err == nil {
				if o := m.cfg.LogOwner; o != nil {
					if err := f.Chown(o.UID, o.GID); err != nil {
						f.Close()
						os.Remove(p)
						return nil, fmt.Errorf("failed to change owner of '%s' to %d:%d - %w", p, o.UID, o.GID, err)
					}
				}
				return f, nil
			}
			if !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("unable to create file '%s' - %w", p, err)
			}
		}
		u.StartTime++
	}
	return nil, errors.New("unable to find a free UPID")
}

func (m *Manager) run(ctx context.Context, u UPID, l *Log, w *worker, fn Func) {
	defer m.wg.Done()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return fn(ctx, l)
	}()
	m.mu.Lock()
	stopped := w.stopped
	m.mu.Unlock()
	if err != nil && stopped && (errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted)) {
		err = ErrInterrupted
	}
	ferr := l.finish(func(warnings int) string {
		switch {
		case err != nil:
			return "TASK ERROR: " + oneLine(err.Error(), m.cfg.MaxLineLen)
		case warnings > 0:
			return fmt.Sprintf("TASK WARNINGS: %d", warnings)
		default:
			return "TASK OK"
		}
	})
	if ferr != nil {
		m.log.Error("task log write failed", "upid", u.String(), "err", ferr)
	}
	w.cancel(nil)
	m.mu.Lock()
	w.ended = true
	m.mu.Unlock()
	if _, err := m.updateActive("", true); err != nil {
		m.log.Error("unable to update task list", "upid", u.String(), "err", err)
	}
	m.mu.Lock()
	delete(m.running, u.String())
	m.mu.Unlock()
	close(w.done)
}

// oneLine makes an error text a status: PVE chomps it and replaces newlines
// by spaces; it is also bounded here.
func oneLine(s string, max int) string {
	s = strings.TrimSuffix(s, "\n")
	s = strings.ReplaceAll(s, "\n", " ")
	if s == "" {
		s = "unknown error"
	}
	if len(s) > max {
		s = s[:cut([]byte(s), max)]
	}
	return s
}

// running reports whether the task u is running: tasks of this process are
// looked up in the Manager, others in /proc by pid and pstart.
func (m *Manager) isRunning(u UPID) bool {
	if u.PID == m.pid && u.PStart == m.pstart {
		m.mu.Lock()
		defer m.mu.Unlock()
		w := m.running[u.String()]
		return w != nil && !w.ended
	}
	if !m.procOK(u.PID, u.PStart) {
		return false
	}
	// Our tasks run inside their daemon (PVE forks a process per task), so
	// seen from another process (pvescheduler) the daemon living does not
	// mean the task is: one whose log ends with its final status has ended.
	line, ok, err := readLastLine(logPath(m.root, u.String()))
	return err != nil || !ok || statusFromLine(line) == StatusUnexpected
}

// updateActive is PVE's active_workers: under the lock it reads active,
// gives every entry whose worker is gone an endtime and the status of its
// log, appends those not yet saved to the index (rotating it), and rewrites
// active with the running tasks plus the most recent finished ones. newUPID
// (may be empty) is added as running. It returns the number of entries
// that were settled (got an endtime now).
func (m *Manager) updateActive(newUPID string, save bool) (int, error) {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	unlock, err := lockFile(filepath.Join(m.root, lockName), lockTimeout)
	if err != nil {
		return 0, err
	}
	defer unlock()

	activePath := filepath.Join(m.root, activeName)
	data, err := os.ReadFile(activePath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	seen := map[string]bool{}
	var running, finished []entry
	check := func(e entry, forceRunning bool) {
		if forceRunning || m.isRunning(e.u) {
			running = append(running, e)
		} else {
			finished = append(finished, e)
		}
	}
	for _, e := range parseActive(data) {
		if seen[e.raw] {
			continue
		}
		seen[e.raw] = true
		check(e, false)
	}
	if newUPID != "" && !seen[newUPID] {
		u, err := Parse(newUPID)
		if err != nil {
			return 0, err
		}
		check(entry{raw: newUPID, u: u}, true)
	}
	sort.SliceStable(finished, func(i, j int) bool { return finished[i].u.StartTime > finished[j].u.StartTime })

	settled := 0
	now := m.now().Unix()
	for i := range finished {
		if finished[i].endtime != 0 {
			continue
		}
		finished[i].endtime = now
		finished[i].status = m.readStatus(finished[i].raw)
		settled++
		save = true
	}
	var archive []byte
	var archived []int
	for i := range finished {
		if !finished[i].saved {
			archive = fmt.Appendf(archive, "%s %08X %s\n", finished[i].raw, finished[i].endtime, finished[i].status)
			finished[i].saved = true
			archived = append(archived, i)
			save = true
		}
	}
	if len(archive) > 0 {
		if err := appendIndex(m.root, archive); err != nil {
			m.log.Error("unable to append to task index", "err", err)
			for _, i := range archived {
				finished[i].saved = false
			}
		}
	}
	list := running
	for i := 0; i < len(finished) && len(list) < maxFinished; i++ {
		list = append(list, finished[i])
	}
	if save {
		if err := writeAtomic(activePath, formatActive(list), 0o644); err != nil {
			return settled, err
		}
	}
	return settled, nil
}

// Settle is run once at daemon start: every task that active lists as
// running but whose worker is gone (for this daemon's pid and pstart: any
// task not started by this Manager; for other processes: pid/pstart no longer
// alive) gets an endtime and its log's status ("unexpected status" when the
// log has no final line) and is moved to the index. It returns how many
// tasks it settled. Every Start and task end does the same.
func (m *Manager) Settle() (int, error) {
	return m.updateActive("", false)
}

// readStatus is PVE::UPID::read_status for a validated UPID string.
func (m *Manager) readStatus(s string) string {
	line, _, err := readLastLine(logPath(m.root, s))
	if err != nil {
		return "unable to get last line from task log - " + oneLine(err.Error(), m.cfg.MaxLineLen)
	}
	return statusFromLine(line)
}

func statusFromLine(line string) string {
	switch {
	case line == "TASK OK":
		return StatusOK
	case strings.HasPrefix(line, "TASK ERROR: ") && len(line) > len("TASK ERROR: "):
		return line[len("TASK ERROR: "):]
	case warningsLineRe.MatchString(line):
		return line[len("TASK "):]
	default:
		return StatusUnexpected
	}
}

var (
	warningsLineRe   = regexp.MustCompile(`^TASK WARNINGS: \d+$`)
	warningsStatusRe = regexp.MustCompile(`^WARNINGS: \d+$`)
)

// ExitStatus is the status a finished task's log gives (PVE's
// upid_read_status): "OK", "WARNINGS: n", the error text, or
// "unexpected status".
func (m *Manager) ExitStatus(upid string) (string, error) {
	if _, err := Parse(upid); err != nil {
		return "", err
	}
	return m.readStatus(upid), nil
}

// IsErrorStatus reports whether a status is an error (anything but "OK" and
// "WARNINGS: n"; PVE's upid_status_is_error).
func IsErrorStatus(status string) bool {
	return !(status == StatusOK || warningsStatusRe.MatchString(status))
}

// StatusType classifies a status as "ok", "warning", "error" or "unknown"
// (empty or "unexpected status"; PVE's upid_normalize_status_type).
func StatusType(status string) string {
	switch {
	case status == "":
		return "unknown"
	case status == StatusOK:
		return "ok"
	case warningsStatusRe.MatchString(status):
		return "warning"
	case status == StatusUnexpected:
		return "unknown"
	default:
		return "error"
	}
}

// Stop asks a running task of this Manager to stop: its context is
// cancelled with ErrInterrupted (PVE sends SIGTERM; the worker dies with
// "received interrupt"). Stop does not wait; see Wait. Stopping a task that
// is not running is not an error (as in PVE); ErrNoSuchTask is returned when
// the task has no log file, ErrNotOwner when another live process runs it.
func (m *Manager) Stop(upid string) error {
	u, err := Parse(upid)
	if err != nil {
		return err
	}
	if _, err := os.Stat(logPath(m.root, upid)); err != nil {
		return ErrNoSuchTask
	}
	m.mu.Lock()
	w := m.running[u.String()]
	if w != nil && !w.ended && u.PID == m.pid && u.PStart == m.pstart {
		w.stopped = true
		m.mu.Unlock()
		w.cancel(ErrInterrupted)
		return nil
	}
	m.mu.Unlock()
	if !(u.PID == m.pid && u.PStart == m.pstart) && m.procOK(u.PID, u.PStart) {
		return ErrNotOwner
	}
	return nil
}

// Wait blocks until the task upid of this Manager has ended and its end is
// recorded in active and index, or ctx is done. It returns at once for a
// task that is not running here.
func (m *Manager) Wait(ctx context.Context, upid string) error {
	u, err := Parse(upid)
	if err != nil {
		return err
	}
	m.mu.Lock()
	w := m.running[u.String()]
	m.mu.Unlock()
	if w == nil || u.PID != m.pid || u.PStart != m.pstart {
		return nil
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Running is the number of tasks of this Manager whose end is not yet
// recorded in active and index.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.running)
}

// Close stops accepting tasks and waits for the running ones to end. When
// ctx is done first, it stops them all (as Stop) and returns ctx's error
// without waiting further; tasks still running when the process exits are
// settled by the next Settle.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	for _, w := range m.running {
		w.stopped = true
		w.cancel(ErrInterrupted)
	}
	m.mu.Unlock()
	return ctx.Err()
}
