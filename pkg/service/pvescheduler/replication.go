package pvescheduler

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// DefaultReplPoll is the longest a replication job's next run is left
// unchecked: its due time depends on its state (last try, failures,
// schedule_now from the API), which changes outside the scheduler.
const DefaultReplPoll = 10 * time.Second

// replSchedule is a replication job's schedule for cron: its next run as
// PVE computes it from the job's state, looked at again at least every
// replPoll.
type replSchedule struct {
	s   *Scheduler
	job jobs.ReplicationJob
}

func (r replSchedule) Next(t time.Time) time.Time {
	poll := r.s.ReplPoll
	if poll <= 0 {
		poll = DefaultReplPoll
	}
	next := t.Add(poll)
	st, err := r.s.Replication.Read()
	if err != nil {
		return next
	}
	if n := jobs.NextReplication(r.job, st.Job(r.job.Guest, r.job.Target)); n > 0 {
		due := time.Unix(n, 0)
		if due.Before(t.Add(time.Second)) {
			due = t.Add(time.Second) // due: at the next second, never in a loop
		}
		if due.Before(next) {
			next = due
		}
	}
	return next
}

// ReloadReplication re-reads replication.cfg and schedules the jobs of the
// guests on this node.
func (s *Scheduler) ReloadReplication() error {
	data, err := s.Root.ReadFileOrEmpty(jobs.ReplicationFile)
	if err != nil {
		return err
	}
	cfg, perr := jobs.ParseReplication(jobs.ReplicationFile, data)
	if perr != nil {
		s.Log.Warn("replication.cfg has errors; the sections affected are left out", "err", perr)
	}
	guests, err := vmlist.Read(s.Root)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.repl {
		s.cron.Remove(id)
	}
	clear(s.repl)
	for _, j := range jobs.ReplicationJobs(cfg) {
		if g, ok := guests[j.Guest]; !ok || g.Node != s.Node {
			continue
		}
		if j.Disabled && j.Opts["remove_job"] == "" {
			continue
		}
		job := j
		s.repl[j.ID] = s.cron.Schedule(replSchedule{s: s, job: job}, cron.FuncJob(func() { s.fireReplication(job) }))
	}
	return nil
}

// fireReplication starts a run of the job if it is due and not running.
func (s *Scheduler) fireReplication(job jobs.ReplicationJob) {
	s.wg.Add(1)
	defer s.wg.Done()
	now := time.Now()
	all, err := s.Replication.Read()
	if err != nil {
		s.Log.Warn("replication state", "err", err)
		return
	}
	st := all.Job(job.Guest, job.Target)
	if st.Running() {
		return
	}
	n := jobs.NextReplication(job, st)
	if n == 0 || now.Unix() < n {
		return
	}
	f := Firing{Job: "replication/" + job.ID, Due: time.Unix(n, 0), Woken: now, Started: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	f.UPID, f.Err = s.Runner.RunReplication(ctx, job.ID)
	cancel()
	if f.Err != nil {
		s.Log.Error("replication job failed to start", "job", job.ID, "err", f.Err)
	} else {
		s.Log.Info("replication job started", "job", job.ID, "upid", f.UPID)
	}
	if s.OnFire != nil {
		s.OnFire(f)
	}
}
