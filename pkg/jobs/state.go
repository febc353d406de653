package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/pvenode/pvenode/pkg/lockfile"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// The states of a job (PVE::Jobs): created → starting → started (with the
// task's UPID) → stopped (with the task's exit status).
const (
	StateCreated  = "created"
	StateStarting = "starting"
	StateStarted  = "started"
	StateStopped  = "stopped"
)

// State is a job's state file, /var/lib/pve-manager/jobs/<type>-<id>.json,
// in PVE's JSON form.
type State struct {
	State string `json:"state"`
	// Time is when the job was created or last started (starting, and a
	// run that failed to start); PVE's default state has 0.
	Time int64  `json:"time,omitempty"`
	UPID string `json:"upid,omitempty"`
	// Msg is the final task status: OK, an error text, "WARNINGS: n".
	Msg string `json:"msg,omitempty"`
	// Updated is set when the schedule or enabled flag changed, and on
	// the scheduler's first round for jobs without repeat-missed; it
	// counts as the last run.
	Updated int64 `json:"updated,omitempty"`
	// Config keeps the job's enabled and schedule, to notice changes made
	// on another node.
	Config map[string]any `json:"config,omitempty"`
}

// LastRun is PVE's get_last_runtime: updated if set, else the start time
// of the recorded task, else time.
func (s *State) LastRun() (int64, error) {
	if s.Updated != 0 {
		return s.Updated, nil
	}
	if s.UPID != "" {
		u, err := tasks.Parse(s.UPID)
		if err != nil {
			return 0, fmt.Errorf("unable to parse worker upid: %w", err)
		}
		return u.StartTime, nil
	}
	return s.Time, nil
}

// Store keeps the state files of one node's jobs.
type Store struct {
	// Dir holds the state files (/var/lib/pve-manager/jobs), LockDir their
	// lock files (/var/lock/pve-manager).
	Dir, LockDir string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// lockTimeout is PVE's lock_file timeout for job states.
const lockTimeout = 10 * time.Second

func (s *Store) now() int64 {
	if s.Now != nil {
		return s.Now().Unix()
	}
	return time.Now().Unix()
}

func (s *Store) path(typ, id string) string {
	return filepath.Join(s.Dir, typ+"-"+id+".json")
}

// Setup creates the state and lock directories.
func (s *Store) Setup() error {
	for _, d := range []string{s.Dir, s.LockDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("job state: %w", err)
		}
	}
	return nil
}

// Read returns a job's state, nil when it has no state file.
func (s *Store) Read(typ, id string) (*State, error) {
	p := s.path(typ, id)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job state: %w", err)
	}
	st := &State{State: StateCreated}
	if len(data) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("invalid json data in '%s': %w", p, err)
	}
	return st, nil
}

func (s *Store) write(typ, id string, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return lockfile.WriteAtomic(s.path(typ, id), data, 0o644)
}

// locked runs fn under the job's state lock.
func (s *Store) locked(typ, id string, fn func() error) error {
	unlock, err := lockfile.Lock(filepath.Join(s.LockDir, typ+"-"+id+".lck"), lockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// savedProps are the job options kept in the state to notice changes.
var savedProps = []string{"enabled", "schedule"}

func savedValue(k, v string) any {
	if k == "enabled" {
		if v == "0" {
			return 0
		}
		return 1
	}
	return v
}

// Sync makes the state files mirror the jobs of one type: a state for each
// new job (created now), updated = now for a job whose schedule or enabled
// flag changed, and no state for a job that is gone (PVE's
// synchronize_job_states_with_config).
func (s *Store) Sync(typ string, jobs map[string]map[string]string) error {
	var errs []error
	for id, opts := range jobs {
		err := s.locked(typ, id, func() error {
			st, err := s.Read(typ, id)
			if err != nil {
				return err
			}
			if st == nil {
				st = &State{State: StateCreated, Time: s.now(), Config: map[string]any{}}
				for _, k := range savedProps {
					if v, ok := opts[k]; ok {
						st.Config[k] = savedValue(k, v)
					}
				}
				return s.write(typ, id, st)
			}
			changed := false
			if st.Config == nil {
				st.Config = map[string]any{}
			}
			for _, k := range savedProps {
				old, had := st.Config[k]
				v, has := opts[k]
				oldS := ""
				if had {
					oldS = fmt.Sprint(old)
				}
				newS := ""
				if has {
					newS = fmt.Sprint(savedValue(k, v))
				}
				if oldS == newS {
					continue
				}
				if has {
					st.Config[k] = savedValue(k, v)
				} else {
					delete(st.Config, k)
				}
				changed = true
			}
			if !changed {
				return nil
			}
			st.Updated = s.now()
			return s.write(typ, id, st)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", id, err))
		}
	}
	names, err := filepath.Glob(filepath.Join(s.Dir, typ+"-*.json"))
	if err != nil {
		return err
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(typ) + `-(.*)\.json$`)
	for _, n := range names {
		m := re.FindStringSubmatch(filepath.Base(n))
		if m == nil {
			continue
		}
		if _, ok := jobs[m[1]]; !ok {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// TaskStatus tells whether a task still runs and, if not, its exit status.
type TaskStatus func(upid string) (exit string, running bool, err error)

// UpdateStopped records the end of a started job's task (PVE's
// update_job_stopped).
func (s *Store) UpdateStopped(typ, id string, status TaskStatus) error {
	st, err := s.Read(typ, id)
	if err != nil || st == nil || st.State != StateStarted {
		return err
	}
	if _, running, err := status(st.UPID); err != nil || running {
		return err
	}
	return s.locked(typ, id, func() error {
		st, err := s.Read(typ, id)
		if err != nil || st == nil || st.State != StateStarted {
			return err
		}
		exit, running, err := status(st.UPID)
		if err != nil || running {
			return err
		}
		if exit == "" {
			exit = "internal error"
		}
		return s.write(typ, id, &State{State: StateStopped, Msg: exit, UPID: st.UPID, Config: st.Config, Updated: st.Updated})
	})
}

// Starting moves a job to "starting" unless it is already started or gone,
// and reports whether it may be started (PVE's starting_job).
func (s *Store) Starting(typ, id string) (bool, error) {
	ok := false
	err := s.locked(typ, id, func() error {
		st, err := s.Read(typ, id)
		if err != nil || st == nil || st.State == StateStarted {
			return err
		}
		ok = true
		return s.write(typ, id, &State{State: StateStarting, Time: s.now(), Config: st.Config})
	})
	return ok && err == nil, err
}

// Started records the outcome of starting a job: its task's UPID, or, when
// msg is set (the job failed to start, or finished at once), a stopped state
// with that message (PVE's started_job).
func (s *Store) Started(typ, id, upid, msg string) error {
	return s.locked(typ, id, func() error {
		st, err := s.Read(typ, id)
		if err != nil || st == nil {
			return err // removed meanwhile: nothing to record
		}
		if st.State != StateStarting {
			return fmt.Errorf("unexpected state '%s'", st.State)
		}
		next := &State{State: StateStarted, UPID: upid, Config: st.Config}
		if msg != "" {
			next = &State{State: StateStopped, Msg: msg, Time: s.now(), Config: st.Config}
		}
		return s.write(typ, id, next)
	})
}

// TouchUpdated sets updated = now, so the job's next run is computed from
// now (PVE's update_last_runtime).
func (s *Store) TouchUpdated(typ, id string) error {
	return s.locked(typ, id, func() error {
		st, err := s.Read(typ, id)
		if err != nil {
			return err
		}
		if st == nil {
			st = &State{State: StateCreated}
		}
		st.Updated = s.now()
		return s.write(typ, id, st)
	})
}
