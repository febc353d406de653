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
// after the last try. 0 when the job is disabled or has no next event.
func NextReplication(j ReplicationJob, st ReplicationJobState) int64 {
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
