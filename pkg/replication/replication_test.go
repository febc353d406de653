package replication

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
)

type lines []string

func (l *lines) Printf(format string, a ...any) { *l = append(*l, fmt.Sprintf(format, a...)) }

func newRunner(t *testing.T, replCfg string) *Runner {
	dir := t.TempDir()
	root, err := pvefs.Open(filepath.Join(dir, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"nodes/n1/qemu-server/100.conf": "memory: 64\n",
		"nodes/n2/qemu-server/101.conf": "memory: 64\n",
		jobs.ReplicationFile:            replCfg,
	} {
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := root.WriteFile(name, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return &Runner{Node: "n1", Root: root, Storage: &storage.Host{Root: root, Node: "n1"},
		State:  jobs.ReplicationStateFile{Path: filepath.Join(dir, "state.json"), LockPath: filepath.Join(dir, "state.lck")},
		LogDir: filepath.Join(dir, "log")}
}

// PVE's checks before a run: disabled jobs, guests elsewhere or missing,
// a target that is this node.
func TestCheck(t *testing.T) {
	r := newRunner(t, "local: 100-0\n\ttarget n2\n\n"+"local: 100-1\n\ttarget n1\n\n"+
		"local: 101-0\n\ttarget n1\n\n"+"local: 102-0\n\ttarget n2\n\n"+"local: 100-2\n\ttarget n3\n\tdisable\n\n")
	for id, want := range map[string]string{
		"100-0": "",
		"100-1": "unable to sync to local node",
		"101-0": "guest '101' is not on local node",
		"102-0": "no such guest '102'",
		"100-2": "job '100-2' is disabled",
	} {
		j, err := r.Job(id)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Check(j)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", id, err, want)
		}
	}
}

// A run is recorded: Begin refuses a second run while one goes on; a job
// marked for removal goes from replication.cfg and the state, and its log
// says what was not done.
func TestBeginAndRemove(t *testing.T) {
	r := newRunner(t, "local: 100-0\n\ttarget n2\n\tremove_job full\n\n"+"local: 100-1\n\ttarget n3\n\n")
	j, _ := r.Job("100-0")
	ok, err := r.Begin(j, 1) // pid 1 lives: a run under way
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _ := r.Begin(j, 1); ok {
		t.Fatal("a second run began while the first goes on")
	}
	st, _ := r.State.Read()
	if s := st.Job(100, "n2"); s.PID != 1 || s.LastTry == 0 {
		t.Fatalf("state after Begin %+v", s)
	}
	var log lines
	if err := r.Run(context.Background(), j, &log); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(log, "\n")
	if !strings.Contains(text, "removing the replicated volumes on node 'n2' is not implemented") || !strings.Contains(text, "job removed") {
		t.Errorf("log:\n%s", text)
	}
	if _, err := r.Job("100-0"); err == nil {
		t.Error("job still in replication.cfg")
	}
	if _, err := r.Job("100-1"); err != nil {
		t.Error("the other job went too")
	}
	st, _ = r.State.Read()
	if _, ok := st["100"]["local/n2"]; ok {
		t.Errorf("state of the removed job: %+v", st)
	}
}
