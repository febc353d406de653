package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/pvenode/pvenode/pkg/calendar"
	"github.com/pvenode/pvenode/pkg/lockfile"
)

// ReplicationJobState is one job's entry of PVE's replication state file
// (/var/lib/pve-manager/pve-replication-state.json).
type ReplicationJobState struct {
	LastIteration int64    `json:"last_iteration"`
	LastTry       int64    `json:"last_try"`
	LastSync      int64    `json:"last_sync"`
	FailCount     int      `json:"fail_count"`
	PID           int      `json:"pid,omitempty"`
	PTime         uint64   `json:"ptime,omitempty"`
	LastNode      string   `json:"last_node,omitempty"`
	StoreIDList   []string `json:"storeid_list,omitempty"`
	Duration      float64  `json:"duration,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// ReplicationState is the whole file: guest → "local/<target>" → state.
type ReplicationState map[string]map[string]ReplicationJobState

// Job returns the state of the guest's job to target (zero if none).
func (s ReplicationState) Job(guest int, target string) ReplicationJobState {
	return s[strconv.Itoa(guest)]["local/"+target]
}

// ReadReplicationState reads the state file; a missing file is no state.
func ReadReplicationState(path string) (ReplicationState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ReplicationState{}, nil
	}
	if err != nil {
		return nil, err
	}
	st := ReplicationState{}
	if len(data) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// NextReplication is when the job runs next (PVE's next_sync): after a
// failure 5, 10, 15 minutes after the last try for the first three
// failures, then every 30 minutes; otherwise the schedule's next event
// after the last try; 1 (at once) for a job marked for removal. 0 when
// the job is disabled or has no next event.
func NextReplication(j ReplicationJob, st ReplicationJobState) int64 {
	if j.Opts["remove_job"] != "" {
		return 1 // as soon as possible
	}
	if j.Disabled {
		return 0
	}
	if st.FailCount > 0 {
		if st.FailCount <= 3 {
			return st.LastTry + 60*5*int64(st.FailCount)
		}
		return st.LastTry + 1800
	}
	ev, err := calendar.Parse(j.Schedule)
	if err != nil {
		return 0
	}
	next := ev.Next(time.Unix(st.LastTry, 0))
	if next.IsZero() {
		return 0
	}
	return next.Unix()
}

// ReplicationStateFile is the node's replication state file and its lock.
type ReplicationStateFile struct {
	Path, LockPath string
}

// Read reads the whole state.
func (f ReplicationStateFile) Read() (ReplicationState, error) { return ReadReplicationState(f.Path) }

// Update changes one job's state under the file's lock (PVE's
// pve-replication-state.lck); fn gets the current state (zero if none).
// A nil result removes the job's entry.
func (f ReplicationStateFile) Update(guest int, target string, fn func(st ReplicationJobState) *ReplicationJobState) error {
	unlock, err := lockfile.Lock(f.LockPath, lockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := ReadReplicationState(f.Path)
	if err != nil {
		return err
	}
	g := strconv.Itoa(guest)
	key := "local/" + target
	next := fn(all[g][key])
	if next == nil {
		delete(all[g], key)
		if len(all[g]) == 0 {
			delete(all, g)
		}
	} else {
		if all[g] == nil {
			all[g] = map[string]ReplicationJobState{}
		}
		all[g][key] = *next
	}
	data, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return lockfile.WriteAtomic(f.Path, data, 0o644)
}

// Running reports whether the run recorded in the state is still going
// (its process exists).
func (s ReplicationJobState) Running() bool {
	if s.PID == 0 {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(s.PID))
	return err == nil
}
