package jobs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

func newStore(t *testing.T, now *time.Time) *Store {
	dir := t.TempDir()
	s := &Store{Dir: filepath.Join(dir, "jobs"), LockDir: filepath.Join(dir, "lock"), Now: func() time.Time { return *now }}
	if err := s.Setup(); err != nil {
		t.Fatal(err)
	}
	return s
}

func rawState(t *testing.T, s *Store, id string) map[string]any {
	data, err := os.ReadFile(s.path("vzdump", id))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The state file goes through PVE's states, in PVE's JSON form, and the
// last run is taken as PVE takes it.
func TestStateLifecycle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newStore(t, &now)
	opts := map[string]map[string]string{"j1": {"schedule": "daily", "enabled": "1"}}
	if err := s.Sync("vzdump", opts); err != nil {
		t.Fatal(err)
	}
	if got := rawState(t, s, "j1"); !reflect.DeepEqual(got, map[string]any{
		"state": "created", "time": float64(1_800_000_000),
		"config": map[string]any{"enabled": float64(1), "schedule": "daily"}}) {
		t.Fatalf("created: %v", got)
	}
	st, _ := s.Read("vzdump", "j1")
	if last, _ := st.LastRun(); last != 1_800_000_000 {
		t.Fatalf("last run of a new job %d", last)
	}
	now = now.Add(time.Hour)
	ok, err := s.Starting("vzdump", "j1")
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	upid := "UPID:node1:00001234:00000010:6B49D2A0:vzdump::root@pam:"
	if err := s.Started("vzdump", "j1", upid, ""); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Starting("vzdump", "j1"); ok {
		t.Fatal("a started job may start again")
	}
	st, _ = s.Read("vzdump", "j1")
	if last, _ := st.LastRun(); last != 0x6B49D2A0 {
		t.Fatalf("last run of a started job %d, want the UPID's start time", last)
	}
	running := true
	status := func(string) (string, bool, error) { return "OK", running, nil }
	if err := s.UpdateStopped("vzdump", "j1", status); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Read("vzdump", "j1"); st.State != StateStarted {
		t.Fatalf("still running: %+v", st)
	}
	running = false
	if err := s.UpdateStopped("vzdump", "j1", status); err != nil {
		t.Fatal(err)
	}
	if got := rawState(t, s, "j1"); got["state"] != "stopped" || got["msg"] != "OK" || got["upid"] != upid {
		t.Fatalf("stopped: %v", got)
	}
	// A schedule change counts as a run now.
	now = now.Add(time.Hour)
	opts["j1"]["schedule"] = "weekly"
	if err := s.Sync("vzdump", opts); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Read("vzdump", "j1")
	if last, _ := st.LastRun(); last != now.Unix() || st.Config["schedule"] != "weekly" {
		t.Fatalf("after a schedule change: %+v", st)
	}
	// A failed start is a stopped state with the error.
	ok, _ = s.Starting("vzdump", "j1")
	if !ok {
		t.Fatal("cannot start")
	}
	if err := s.Started("vzdump", "j1", "", "vzdump: no such storage"); err != nil {
		t.Fatal(err)
	}
	if got := rawState(t, s, "j1"); got["state"] != "stopped" || got["msg"] != "vzdump: no such storage" {
		t.Fatalf("failed start: %v", got)
	}
	// A removed job loses its state.
	if err := s.Sync("vzdump", map[string]map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Read("vzdump", "j1"); st != nil {
		t.Fatalf("state of a removed job: %+v", st)
	}
}

func TestIncludedGuests(t *testing.T) {
	guests := map[int]vmlist.Guest{100: {Node: "a", Type: "qemu"}, 101: {Node: "b", Type: "qemu"}, 102: {Node: "a", Type: "lxc"}}
	pools := map[string]*access.Pool{"p": {VMs: map[int]bool{101: true, 102: true}}}
	for _, tc := range []struct {
		opts map[string]string
		want map[string][]int
	}{
		{map[string]string{"all": "1"}, map[string][]int{"a": {100, 102}, "b": {101}}},
		{map[string]string{"all": "1", "exclude": "100,101"}, map[string][]int{"a": {102}}},
		{map[string]string{"vmid": "101,100,999"}, map[string][]int{"a": {100}, "b": {101}, "": {999}}},
		{map[string]string{"pool": "p"}, map[string][]int{"a": {102}, "b": {101}}},
		{map[string]string{"all": "1", "node": "b"}, map[string][]int{"b": {101}}},
		{map[string]string{}, map[string][]int{}},
	} {
		if got := IncludedGuests(tc.opts, guests, pools); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.opts, got, tc.want)
		}
	}
}

func TestNextReplication(t *testing.T) {
	last := time.Date(2026, 3, 11, 14, 7, 30, 0, time.UTC).Unix()
	j := ReplicationJob{Schedule: "*/15 UTC"}
	for _, tc := range []struct {
		fails int
		want  int64
	}{{0, time.Date(2026, 3, 11, 14, 15, 0, 0, time.UTC).Unix()}, {1, last + 300}, {3, last + 900}, {4, last + 1800}} {
		if got := NextReplication(j, ReplicationJobState{LastTry: last, FailCount: tc.fails}); got != tc.want {
			t.Errorf("fail_count %d: %d, want %d", tc.fails, got, tc.want)
		}
	}
	if got := NextReplication(ReplicationJob{Schedule: "*/15", Disabled: true}, ReplicationJobState{}); got != 0 {
		t.Errorf("disabled job: %d", got)
	}
}

func TestParseReplicationID(t *testing.T) {
	for in, want := range map[string]string{"100-0": "100-0", "0100-007": "100-7", "99-1": "", "100": "", "a-1": ""} {
		got, err := ParseReplicationID(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
}
