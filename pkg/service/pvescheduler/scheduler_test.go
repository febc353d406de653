package pvescheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// taskRunner starts a real task (in a real task directory) per job start,
// standing in for pvedaemon's vzdump call, which the e2e test covers.
type taskRunner struct {
	tm *tasks.Manager

	mu       sync.Mutex
	calls    []string
	repl     []string
	replFail bool
	state    jobs.ReplicationStateFile
}

func (r *taskRunner) RunVZDump(ctx context.Context, job jobs.VZDumpJob) (string, error) {
	u, err := r.tm.Start(ctx, tasks.TaskSpec{Type: "vzdump", User: "root@pam"}, func(ctx context.Context, l *tasks.Log) error {
		l.Printf("job %s", job.ID)
		return nil
	})
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.calls = append(r.calls, job.ID)
	r.mu.Unlock()
	return u.String(), nil
}

// RunReplication stands in for pvedaemon's run: it records the call and
// the run's start and end in the real state file, as the run does.
func (r *taskRunner) RunReplication(ctx context.Context, id string) (string, error) {
	r.mu.Lock()
	r.repl = append(r.repl, id)
	fail := r.replFail
	r.mu.Unlock()
	now := time.Now().Unix()
	err := r.state.Update(100, "node2", func(st jobs.ReplicationJobState) *jobs.ReplicationJobState {
		st.LastTry = now
		if fail {
			st.FailCount++
			st.Error = "target offline"
		} else {
			st.LastSync, st.FailCount, st.Error = now, 0, ""
		}
		return &st
	})
	return "UPID:node1:00000001:00000001:00000001:pvesr:" + id + ":root@pam:", err
}

func (r *taskRunner) replRuns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.repl)
}

func (r *taskRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

type lab struct {
	t      testing.TB
	dir    string
	root   *pvefs.Root
	tm     *tasks.Manager
	runner *taskRunner
	fired  chan Firing
}

func newLab(t testing.TB) *lab {
	dir := t.TempDir()
	root, err := pvefs.Open(filepath.Join(dir, "etc-pve"))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Close(context.Background()) })
	state := jobs.ReplicationStateFile{Path: filepath.Join(dir, "lib", "repl.json"), LockPath: filepath.Join(dir, "lib", "repl.lck")}
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, dir: dir, root: root, tm: tm, runner: &taskRunner{tm: tm, state: state}, fired: make(chan Firing, 16)}
}

func (l *lab) scheduler() *Scheduler {
	return &Scheduler{
		Node: "node1", Root: l.root, Location: time.UTC,
		Store:  &jobs.Store{Dir: filepath.Join(l.dir, "lib", "jobs"), LockDir: filepath.Join(l.dir, "lock")},
		Status: TaskStatusFrom(l.tm), Runner: l.runner,
		Replication: l.runner.state, ReplPoll: 500 * time.Millisecond,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFire: func(f Firing) { l.fired <- f },
	}
}

func (l *lab) writeJobs(text string) {
	if err := l.root.WriteFile(jobs.JobsFile, []byte(text), 0o640); err != nil {
		l.t.Fatal(err)
	}
}

// at returns a one-shot calendar event for t (UTC, seconds).
func at(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func (l *lab) state(id string) *jobs.State {
	st, err := (&jobs.Store{Dir: filepath.Join(l.dir, "lib", "jobs")}).Read("vzdump", id)
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

func (l *lab) waitFire(d time.Duration) (Firing, bool) {
	select {
	case f := <-l.fired:
		return f, true
	case <-time.After(d):
		return Firing{}, false
	}
}

func jobText(id, schedule string, extra ...string) string {
	s := fmt.Sprintf("vzdump: %s\n\tschedule %s\n\tall 1\n", id, schedule)
	if !strings.Contains(strings.Join(extra, " "), "enabled") {
		s += "\tenabled 1\n"
	}
	for _, e := range extra {
		s += "\t" + e + "\n"
	}
	return s + "\n"
}

// A job due in a few seconds fires once; a restart right after it does
// not fire it again (with or without repeat-missed).
func TestFiresOnceAcrossRestart(t *testing.T) {
	for _, missed := range []string{"0", "1"} {
		t.Run("repeat-missed="+missed, func(t *testing.T) {
			l := newLab(t)
			due := time.Now().Truncate(time.Second).Add(2 * time.Second)
			l.writeJobs(jobText("backup-a", at(due), "repeat-missed "+missed))
			s := l.scheduler()
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			f, ok := l.waitFire(6 * time.Second)
			if !ok {
				t.Fatal("the job did not fire")
			}
			if f.Err != nil || f.UPID == "" || f.Started.Before(due) {
				t.Fatalf("firing %+v (due %v)", f, due)
			}
			s.Stop()
			s2 := l.scheduler()
			if err := s2.Start(); err != nil {
				t.Fatal(err)
			}
			defer s2.Stop()
			if f, ok := l.waitFire(3 * time.Second); ok {
				t.Fatalf("fired again after the restart: %+v", f)
			}
			if n := l.runner.count(); n != 1 {
				t.Fatalf("%d runs, want 1", n)
			}
			if err := l.tm.Wait(context.Background(), f.UPID); err != nil {
				t.Fatal(err)
			}
			s2.RefreshStates()
			st := l.state("backup-a")
			if st.State != jobs.StateStopped || st.UPID != f.UPID || st.Msg != "OK" {
				t.Fatalf("state %+v", st)
			}
		})
	}
}

// A run due while the scheduler is down is made up at start with
// repeat-missed, exactly once, and skipped without it.
func TestMissedRunWhileDown(t *testing.T) {
	for _, tc := range []struct {
		missed string
		runs   int
	}{{"1", 1}, {"0", 0}} {
		t.Run("repeat-missed="+tc.missed, func(t *testing.T) {
			l := newLab(t)
			due := time.Now().Truncate(time.Second).Add(2 * time.Second)
			l.writeJobs(jobText("backup-b", at(due), "repeat-missed "+tc.missed))
			s := l.scheduler()
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			s.Stop() // down across the due time
			time.Sleep(time.Until(due) + 1500*time.Millisecond)
			for range 2 { // two restarts after the due time
				s := l.scheduler()
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(1500 * time.Millisecond)
				s.Stop()
			}
			if n := l.runner.count(); n != tc.runs {
				t.Fatalf("%d runs, want %d", n, tc.runs)
			}
		})
	}
}

// Edits of jobs.cfg take effect without a restart: a job added while the
// scheduler runs fires; a disabled one, one for another node and a removed
// one do not, and the removed one's state file goes.
func TestReloadFollowsEdits(t *testing.T) {
	l := newLab(t)
	l.writeJobs("")
	s := l.scheduler()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	due := time.Now().Truncate(time.Second).Add(2 * time.Second)
	l.writeJobs(jobText("on", at(due)) + jobText("off", at(due), "enabled 0") +
		jobText("elsewhere", at(due), "node node2") + jobText("gone", at(due)))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	l.writeJobs(jobText("on", at(due)) + jobText("off", at(due), "enabled 0") + jobText("elsewhere", at(due), "node node2"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	f, ok := l.waitFire(6 * time.Second)
	if !ok || f.Job != "on" {
		t.Fatalf("firing %+v %v", f, ok)
	}
	if f, ok := l.waitFire(2 * time.Second); ok {
		t.Fatalf("unexpected firing %+v", f)
	}
	if _, err := os.Stat(filepath.Join(l.dir, "lib", "jobs", "vzdump-gone.json")); !os.IsNotExist(err) {
		t.Fatalf("state of a removed job: %v", err)
	}
	if st := l.state("off"); st == nil || st.State != jobs.StateCreated {
		t.Fatalf("disabled job state %+v", st)
	}
}

// A job whose previous run still goes is not started again.
func TestNoOverlap(t *testing.T) {
	l := newLab(t)
	block := make(chan struct{})
	defer close(block)
	slow := &blockingRunner{tm: l.tm, block: block}
	l.writeJobs(jobText("slow", "*:*:*")) // every second
	s := l.scheduler()
	s.Runner = slow
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	time.Sleep(3500 * time.Millisecond)
	if n := slow.count(); n != 1 {
		t.Fatalf("%d starts while the first run went on, want 1", n)
	}
}

type blockingRunner struct {
	tm    *tasks.Manager
	block chan struct{}
	mu    sync.Mutex
	n     int
}

func (r *blockingRunner) RunVZDump(ctx context.Context, job jobs.VZDumpJob) (string, error) {
	u, err := r.tm.Start(ctx, tasks.TaskSpec{Type: "vzdump", User: "root@pam"}, func(ctx context.Context, l *tasks.Log) error {
		<-r.block
		return nil
	})
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	return u.String(), err
}

func (r *blockingRunner) RunReplication(ctx context.Context, id string) (string, error) {
	return "", errors.New("no replication in this test")
}

func (r *blockingRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Only one scheduler runs per node.
func TestOneInstance(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockOnce(filepath.Join(dir, "pvescheduler.lck"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := lockOnce(filepath.Join(dir, "pvescheduler.lck")); err == nil || !strings.Contains(err.Error(), "another pvescheduler") {
		t.Fatalf("second lock: %v", err)
	}
}

// The vzdump parameters of a job are its vzdump options, without the
// job-level keys, with job-id and quiet (PVE's Jobs::VZDump::run).
func TestVZDumpParams(t *testing.T) {
	j := jobs.VZDumpJob{ID: "backup-x", Opts: map[string]string{
		"schedule": "daily", "enabled": "1", "comment": "c", "repeat-missed": "1",
		"all": "1", "storage": "local", "mode": "snapshot", "node": "node1",
	}, Lists: map[string][]string{"exclude-path": {"/a", "/b"}}}
	got := VZDumpParams(j).Encode()
	want := "all=1&exclude-path=%2Fa&exclude-path=%2Fb&job-id=backup-x&mode=snapshot&node=node1&quiet=1&storage=local"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Replication jobs of the guests on this node run as PVE schedules them: a
// new job at once, then on its schedule; schedule_now (last_try = 0) runs
// it again within the poll interval; after a failure the next try waits
// PVE's 5 minutes; a job of a guest on another node is left alone.
func TestReplicationJobs(t *testing.T) {
	l := newLab(t)
	for _, f := range []struct{ name, text string }{
		{"nodes/node1/qemu-server/100.conf", "memory: 64\n"},
		{"nodes/node2/qemu-server/101.conf", "memory: 64\n"},
		{jobs.ReplicationFile, "local: 100-0\n\ttarget node2\n\n" + "local: 101-0\n\ttarget node1\n\n"},
	} {
		if d := filepath.Dir(f.name); d != "." {
			if err := l.root.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.root.WriteFile(f.name, []byte(f.text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s := l.scheduler()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	f, ok := l.waitFire(3 * time.Second)
	if !ok || f.Job != "replication/100-0" || f.Err != nil {
		t.Fatalf("first run: %+v %v", f, ok)
	}
	if f, ok := l.waitFire(2 * time.Second); ok {
		t.Fatalf("ran again before its schedule: %+v", f)
	}
	// schedule_now
	l.runner.mu.Lock()
	l.runner.replFail = true
	l.runner.mu.Unlock()
	if err := l.runner.state.Update(100, "node2", func(st jobs.ReplicationJobState) *jobs.ReplicationJobState {
		st.LastTry = 0
		return &st
	}); err != nil {
		t.Fatal(err)
	}
	if f, ok := l.waitFire(3 * time.Second); !ok || f.Job != "replication/100-0" {
		t.Fatalf("schedule_now: %+v %v", f, ok)
	}
	// failed: the next try is 5 minutes later
	if f, ok := l.waitFire(2 * time.Second); ok {
		t.Fatalf("retried at once after a failure: %+v", f)
	}
	if n := l.runner.replRuns(); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
}
