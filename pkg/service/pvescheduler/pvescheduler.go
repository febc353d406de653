// Package pvescheduler is the job scheduler daemon: it fires the vzdump
// jobs of /etc/pve/jobs.cfg that belong to this node at their calendar
// times (PVE's calendar events run by robfig/cron), starting each backup
// through the local pvedaemon as root@pam, and keeps PVE's job state files
// in /var/lib/pve-manager/jobs. Edits of jobs.cfg take effect at once.
package pvescheduler

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/lockfile"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// Name is the daemon's name.
const Name = "pvescheduler"

// Spec returns the daemon.Spec of pvescheduler.
func Spec() daemon.Spec {
	return daemon.Spec{
		Name:  Name,
		Short: "PVE scheduler (backup jobs of jobs.cfg on their calendar events)",
		Flags: func(fs *pflag.FlagSet) {
			fs.String("node", "", "this node's name (default: the host name)")
		},
		New: New,
	}
}

// Service is a running pvescheduler.
type Service struct {
	env    daemon.Env
	log    *slog.Logger
	node   string
	sched  *Scheduler
	watch  *pvefs.Watcher
	unlock func()
	stop   chan struct{}
	done   chan struct{}
}

// New builds the service from the parsed flags.
func New(env daemon.Env) (daemon.Service, error) {
	node, _ := env.Flags.GetString("node")
	return &Service{env: env, log: env.Log, node: node, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Listen takes the node's scheduler lock (one instance per node), opens
// the config root and prepares the scheduler.
func (s *Service) Listen(ctx context.Context) error {
	lockDir := filepath.Join(s.env.Paths.LockDir, "pve-manager")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return err
	}
	unlock, err := lockOnce(filepath.Join(lockDir, "pvescheduler.lck"))
	if err != nil {
		return err
	}
	s.unlock = unlock
	root, err := pvefs.Open(s.env.Paths.ConfigRoot)
	if err != nil {
		return err
	}
	if s.node, err = nodename.Resolve(s.node); err != nil {
		return err
	}
	auth, err := access.NewAuthenticator(access.Deps{FS: root, Clock: time.Now, Log: s.log})
	if err != nil {
		return err
	}
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(s.env.Paths.LogDir, "pve", "tasks"), Node: s.node, Logger: s.log})
	if err != nil {
		return fmt.Errorf("task directory: %w", err)
	}
	s.sched = &Scheduler{
		Node: s.node, Root: root, Log: s.log,
		Store: &jobs.Store{
			Dir:     filepath.Join(s.env.Paths.LibDir, "jobs"),
			LockDir: lockDir,
		},
		Status: TaskStatusFrom(tm),
		Replication: jobs.ReplicationStateFile{
			Path:     filepath.Join(s.env.Paths.LibDir, "pve-replication-state.json"),
			LockPath: filepath.Join(s.env.Paths.LibDir, "pve-replication-state.lck"),
		},
		Runner: NewDaemonRunner(s.node, s.env.Paths.DaemonSocket(), auth.DaemonTicket),
	}
	if s.watch, err = root.Watch(jobs.JobsFile, jobs.ReplicationFile); err != nil {
		return err
	}
	return nil
}

// TaskStatusFrom reads task states from the node's task files.
func TaskStatusFrom(tm *tasks.Manager) jobs.TaskStatus {
	return func(upid string) (string, bool, error) {
		st, err := tm.Status(upid)
		if err != nil {
			return "", false, err
		}
		return st.ExitStatus, st.Status == "running", nil
	}
}

// Serve schedules until Shutdown: jobs.cfg is re-read on every change, and
// the state of finished job tasks is recorded every minute.
func (s *Service) Serve(ctx context.Context) error {
	defer close(s.done)
	if err := s.sched.Start(); err != nil {
		return err
	}
	defer s.sched.Stop()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return nil
		case name := <-s.watch.Events():
			if name == jobs.ReplicationFile {
				if err := s.sched.ReloadReplication(); err != nil {
					s.log.Error("reading replication.cfg", "err", err)
				}
				continue
			}
			if err := s.sched.Reload(); err != nil {
				s.log.Error("reading jobs.cfg", "err", err)
			}
		case <-tick.C:
			s.sched.RefreshStates()
			// guests move between nodes: their replication jobs follow
			if err := s.sched.ReloadReplication(); err != nil {
				s.log.Error("reading replication.cfg", "err", err)
			}
		}
	}
}

// Reload re-reads jobs.cfg and replication.cfg (they are also re-read on
// every change).
func (s *Service) Reload(ctx context.Context) error {
	if err := s.sched.Reload(); err != nil {
		return err
	}
	return s.sched.ReloadReplication()
}

// Shutdown stops firing; job tasks already started run on in pvedaemon.
func (s *Service) Shutdown(ctx context.Context) error {
	close(s.stop)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	s.watch.Close()
	if s.unlock != nil {
		s.unlock()
	}
	return nil
}

// lockOnce takes the node's scheduler lock without waiting: a second
// pvescheduler on the node refuses to start.
func lockOnce(path string) (func(), error) {
	unlock, err := lockfile.Lock(path, 0)
	if err != nil {
		return nil, fmt.Errorf("another pvescheduler runs on this node: %w", err)
	}
	return unlock, nil
}
