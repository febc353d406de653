package pvescheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/pvenode/pvenode/pkg/calendar"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Runner starts one job's work and returns the UPID of the task doing it.
type Runner interface {
	RunVZDump(ctx context.Context, job jobs.VZDumpJob) (upid string, err error)
	RunReplication(ctx context.Context, jobID string) (upid string, err error)
}

// Firing is one job start, for logs and measurements.
type Firing struct {
	Job     string
	Due     time.Time // the calendar time the run was due
	Woken   time.Time // when cron called the scheduler for it
	Started time.Time // when the runner was called
	UPID    string
	Err     error
}

// Scheduler fires the vzdump jobs of jobs.cfg that belong to this node at
// their calendar times, with robfig/cron running calendar events, and keeps
// PVE's job state files so that a restart neither repeats nor loses a run.
type Scheduler struct {
	Node   string
	Root   *pvefs.Root
	Store  *jobs.Store
	Status jobs.TaskStatus
	Runner Runner
	// Replication is the node's replication state file; ReplPoll how often
	// a replication job's state is looked at (default DefaultReplPoll).
	Replication jobs.ReplicationStateFile
	ReplPoll    time.Duration
	Log         *slog.Logger
	// Location is the time zone calendar events without UTC are read in;
	// nil is time.Local.
	Location *time.Location
	// OnFire, if set, is told of every job start (tests, benchmarks).
	OnFire func(Firing)

	mu      sync.Mutex // guards cron, entries, repl, first
	cron    *cron.Cron
	entries map[string]cron.EntryID
	repl    map[string]cron.EntryID
	first   bool
	wg      sync.WaitGroup
}

// jobSchedule is a job's calendar event as a cron.Schedule whose first next
// time is computed from the job's last run (so a run missed while the
// scheduler was down comes at once when repeat-missed asks for it) and
// later ones from the time cron asks.
type jobSchedule struct {
	ev *calendar.Event

	mu   sync.Mutex
	from time.Time // last run, used once
}

func (j *jobSchedule) Next(t time.Time) time.Time {
	j.mu.Lock()
	from := j.from
	j.from = time.Time{}
	j.mu.Unlock()
	if !from.IsZero() && from.Before(t) {
		return j.ev.Next(from.In(t.Location()))
	}
	return j.ev.Next(t)
}

func (s *Scheduler) loc() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	return time.Local
}

// Start reads jobs.cfg and starts firing; Stop ends it.
func (s *Scheduler) Start() error {
	if err := s.Store.Setup(); err != nil {
		return err
	}
	s.mu.Lock()
	s.cron = cron.New(cron.WithLocation(s.loc()))
	s.entries = map[string]cron.EntryID{}
	s.repl = map[string]cron.EntryID{}
	s.first = true
	s.mu.Unlock()
	s.cron.Start()
	if err := s.Reload(); err != nil {
		return err
	}
	return s.ReloadReplication()
}

// Stop stops firing and waits for job starts under way.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	c := s.cron
	s.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	s.wg.Wait()
}

// Reload re-reads jobs.cfg: state files follow the jobs, and every local,
// enabled job is scheduled from its last run. A file with errors is used as
// PVE uses it (bad keys and sections left out), and the errors are logged.
func (s *Scheduler) Reload() error {
	data, err := s.Root.ReadFileOrEmpty(jobs.JobsFile)
	if err != nil {
		return err
	}
	cfg, perr := jobs.ParseJobs(jobs.JobsFile, data)
	if perr != nil {
		s.Log.Warn("jobs.cfg has errors; the sections affected are left out", "err", perr)
	}
	all := jobs.VZDumpJobs(cfg)
	byID := map[string]map[string]string{}
	for _, j := range all {
		byID[j.ID] = j.Opts
	}
	if err := s.Store.Sync("vzdump", byID); err != nil {
		s.Log.Warn("job state", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.first
	s.first = false
	for _, id := range s.entries {
		s.cron.Remove(id)
	}
	clear(s.entries)
	for _, j := range all {
		if j.Node != "" && j.Node != s.Node {
			continue
		}
		if err := s.Store.UpdateStopped("vzdump", j.ID, s.Status); err != nil {
			s.Log.Warn("could not update job state, skipping", "job", j.ID, "err", err)
			continue
		}
		if first && !j.RepeatMissed {
			// PVE: a run missed while the scheduler was down is skipped
			// unless the job asks for it.
			if err := s.Store.TouchUpdated("vzdump", j.ID); err != nil {
				s.Log.Warn("job state", "job", j.ID, "err", err)
				continue
			}
		}
		if !j.Enabled {
			continue
		}
		ev, err := calendar.Parse(j.Schedule)
		if err != nil {
			s.Log.Warn("job skipped: bad schedule", "job", j.ID, "err", err)
			continue
		}
		last, err := s.lastRun(j.ID)
		if err != nil {
			s.Log.Warn("job skipped", "job", j.ID, "err", err)
			continue
		}
		job := j
		sched := &jobSchedule{ev: ev, from: time.Unix(last, 0)}
		s.entries[j.ID] = s.cron.Schedule(sched, cron.FuncJob(func() { s.fire(job, ev) }))
	}
	return nil
}

func (s *Scheduler) lastRun(id string) (int64, error) {
	st, err := s.Store.Read("vzdump", id)
	if err != nil {
		return 0, err
	}
	if st == nil {
		return 0, errors.New("no job state")
	}
	return st.LastRun()
}

// fire runs one job if it is due: the state decides, not cron, so a job
// never starts twice for one calendar time (a reload, a restart, a clock
// step) and never while its previous run is still going.
func (s *Scheduler) fire(job jobs.VZDumpJob, ev *calendar.Event) {
	s.wg.Add(1)
	defer s.wg.Done()
	now := time.Now()
	if err := s.Store.UpdateStopped("vzdump", job.ID, s.Status); err != nil {
		s.Log.Warn("could not update job state, skipping", "job", job.ID, "err", err)
		return
	}
	last, err := s.lastRun(job.ID)
	if err != nil {
		s.Log.Warn("job skipped", "job", job.ID, "err", err)
		return
	}
	due := ev.Next(time.Unix(last, 0).In(s.loc()))
	if due.IsZero() || now.Before(due) {
		return // not yet its turn (already ran for this time)
	}
	ok, err := s.Store.Starting("vzdump", job.ID)
	if err != nil {
		s.Log.Warn("job state", "job", job.ID, "err", err)
		return
	}
	if !ok {
		s.Log.Info("job skipped: its previous run is still going", "job", job.ID)
		return
	}
	f := Firing{Job: job.ID, Due: due, Woken: now, Started: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	f.UPID, f.Err = s.Runner.RunVZDump(ctx, job)
	cancel()
	msg := ""
	if f.Err != nil {
		msg = f.Err.Error()
		s.Log.Error("backup job failed to start", "job", job.ID, "err", f.Err)
	} else {
		s.Log.Info("backup job started", "job", job.ID, "upid", f.UPID,
			"delay", f.Started.Sub(due).Round(time.Millisecond).String())
	}
	if err := s.Store.Started("vzdump", job.ID, f.UPID, msg); err != nil {
		s.Log.Warn("job state", "job", job.ID, "err", fmt.Errorf("recording start: %w", err))
	}
	if s.OnFire != nil {
		s.OnFire(f)
	}
}

// RefreshStates records the end of finished job tasks (PVE does this every
// minute from its loop, so GET /cluster/backup-info and the job state show
// results without waiting for the next run).
func (s *Scheduler) RefreshStates() {
	data, err := s.Root.ReadFileOrEmpty(jobs.JobsFile)
	if err != nil {
		return
	}
	cfg, _ := jobs.ParseJobs(jobs.JobsFile, data)
	for _, j := range jobs.VZDumpJobs(cfg) {
		if j.Node != "" && j.Node != s.Node {
			continue
		}
		if err := s.Store.UpdateStopped("vzdump", j.ID, s.Status); err != nil {
			s.Log.Warn("job state", "job", j.ID, "err", err)
		}
	}
}
