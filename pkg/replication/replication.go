// Package replication runs storage replication jobs (replication.cfg): it
// copies a guest's disks, as of one instant, to the same volumes of the
// same storages on the job's target node, so that the guest can be started
// there from its last replicated state (PVE::Replication).
//
// PVE replicates only ZFS volumes (snapshots, zfs send/receive over SSH).
// Here the disks are directory-storage images (qcow2, raw): the point-in-
// time copy comes from QEMU's own block jobs while the VM runs (or from
// the files while it is stopped), and each disk is streamed as raw data
// over HTTPS, with the nodes' certificates on both ends, to the target
// node's API, which writes it as the replica in one atomic replace. Image
// files have no snapshots to send differences from, so every run is a full
// copy; runs are still PVE's: state in pve-replication-state.json, a log
// per job, retries after failures at PVE's intervals.
package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmlist"
	"github.com/pvenode/pvenode/pkg/vzdump"
)

// Snapshotter takes point-in-time raw copies of a VM's disks
// (*vzdump.Engine).
type Snapshotter interface {
	SnapshotDisks(ctx context.Context, vmid int, tmpdir string, include func(key string, drive map[string]string) bool, out vzdump.Output) ([]vzdump.SnapshotDisk, func(), error)
}

// Sender writes one raw disk image as a volume of a storage on another
// node (*HTTPSender).
type Sender interface {
	Send(ctx context.Context, node, storage, volname string, size int64, src io.ReaderAt) (SendStats, error)
}

// Log receives a run's log lines (a task log).
type Log interface {
	Printf(format string, a ...any)
}

// Runner runs this node's replication jobs.
type Runner struct {
	Node    string
	Root    *pvefs.Root
	Storage *storage.Host
	Snap    Snapshotter
	Send    Sender
	State   jobs.ReplicationStateFile
	// LogDir keeps the last run's log of each job
	// (/var/log/pve/replicate/<jobid>).
	LogDir string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Job returns a job of replication.cfg.
func (r *Runner) Job(id string) (jobs.ReplicationJob, error) {
	data, err := r.Root.ReadFileOrEmpty(jobs.ReplicationFile)
	if err != nil {
		return jobs.ReplicationJob{}, err
	}
	cfg, _ := jobs.ParseReplication(jobs.ReplicationFile, data)
	for _, j := range jobs.ReplicationJobs(cfg) {
		if j.ID == id {
			return j, nil
		}
	}
	return jobs.ReplicationJob{}, fmt.Errorf("no such job '%s'", id)
}

// Check refuses a job this node cannot run now (PVE's run_single_job
// checks).
func (r *Runner) Check(j jobs.ReplicationJob) error {
	if j.Disabled {
		return fmt.Errorf("job '%s' is disabled", j.ID)
	}
	guests, err := vmlist.Read(r.Root)
	if err != nil {
		return err
	}
	g, ok := guests[j.Guest]
	if !ok {
		return fmt.Errorf("no such guest '%d'", j.Guest)
	}
	if g.Node != r.Node {
		return fmt.Errorf("guest '%d' is not on local node", j.Guest)
	}
	if g.Type != "qemu" {
		return fmt.Errorf("guest '%d': replication of %s guests is not implemented", j.Guest, g.Type)
	}
	if j.Target == r.Node {
		return errors.New("unable to sync to local node")
	}
	return nil
}

// Begin records that a run starts (last_try, pid) and reports false when
// another run of the job is under way.
func (r *Runner) Begin(j jobs.ReplicationJob, pid int) (bool, error) {
	started := false
	now := r.now().Unix()
	err := r.State.Update(j.Guest, j.Target, func(st jobs.ReplicationJobState) *jobs.ReplicationJobState {
		if st.Running() {
			return &st
		}
		started = true
		st.LastTry = now
		st.LastIteration = now
		st.PID = pid
		st.LastNode = r.Node
		return &st
	})
	return started, err
}

// Run replicates the job's guest once and records the outcome in the
// state; Begin must have been called. The log goes to l and to the job's
// log file.
func (r *Runner) Run(ctx context.Context, j jobs.ReplicationJob, l Log) (err error) {
	start := r.now()
	out := &jobLog{task: l, start: start}
	defer func() {
		r.finish(j, start, out, err)
	}()
	out.Printf("start replication job")
	if j.Opts["remove_job"] != "" {
		return r.remove(ctx, j, out)
	}
	out.Printf("guest => VM %d", j.Guest)
	tmp, err := r.tmpDir(j.Guest)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	disks, done, err := r.Snap.SnapshotDisks(ctx, j.Guest, tmp, replicatable, out)
	if err != nil {
		return err
	}
	defer done()
	if len(disks) == 0 {
		return errors.New("no replicatable volumes found")
	}
	var vols []string
	for _, d := range disks {
		vols = append(vols, d.VolID)
	}
	out.Printf("volumes => %s", strings.Join(vols, ","))
	var stores []string
	for _, d := range disks {
		sid, volname, err := storage.ParseVolumeID(d.VolID)
		if err != nil {
			return err
		}
		if !slices.Contains(stores, sid) {
			stores = append(stores, sid)
		}
		f, err := os.Open(d.Path)
		if err != nil {
			return err
		}
		t0 := r.now()
		st, err := r.Send.Send(ctx, j.Target, sid, volname, d.Size, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("sync '%s' to node '%s': %w", d.VolID, j.Target, err)
		}
		secs := r.now().Sub(t0).Seconds()
		kind := "full sync"
		if st.Incremental {
			kind = "incremental sync"
		}
		out.Printf("%s '%s' (%s) to node '%s': %d of %d chunks changed, %s sent in %.1fs", kind, d.VolID,
			formatSize(d.Size), j.Target, st.Changed, st.Chunks, formatSize(st.Bytes), secs)
	}
	out.stores = stores
	return nil
}

// replicatable is PVE's choice of disks: all but cdroms and those with
// replicate=0.
func replicatable(key string, drive map[string]string) bool {
	return api.NormBool(drive["replicate"]) != "0"
}

// remove handles a job marked for removal: the state and the job go; with
// remove_job=full the replicas on the target would be removed too, which
// is not implemented (they stay, and the log says so).
func (r *Runner) remove(ctx context.Context, j jobs.ReplicationJob, out *jobLog) error {
	if j.Opts["remove_job"] == "full" {
		out.Printf("WARN: removing the replicated volumes on node '%s' is not implemented; they are left there", j.Target)
	}
	err := r.Root.Update(ctx, jobs.ReplicationFile, 0o640, func(old []byte) ([]byte, error) {
		cfg, _ := jobs.ParseReplication(jobs.ReplicationFile, old)
		cfg.Delete(j.ID)
		return cfg.Marshal(jobs.ReplicationTypes()), nil
	})
	if err != nil {
		return err
	}
	out.Printf("job removed")
	out.removed = true
	return nil
}

// tmpDir makes a directory for the run's point-in-time copies, in the
// guest's image directory of the "local" storage.
func (r *Runner) tmpDir(vmid int) (string, error) {
	local, err := r.Storage.Storage("local")
	if err != nil {
		return "", err
	}
	base := filepath.Join(local.Root(), "images", fmt.Sprint(vmid))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, ".replicate-")
}

// Abort records a run that Begin recorded but that could not start.
func (r *Runner) Abort(j jobs.ReplicationJob, err error) {
	r.finish(j, r.now(), &jobLog{task: discard{}}, err)
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// finish records the run in the state file and the job's log file.
func (r *Runner) finish(j jobs.ReplicationJob, start time.Time, out *jobLog, runErr error) {
	dur := r.now().Sub(start).Seconds()
	if runErr != nil {
		out.Printf("end replication job with error: %v", runErr)
	} else {
		out.Printf("end replication job")
	}
	_ = r.State.Update(j.Guest, j.Target, func(st jobs.ReplicationJobState) *jobs.ReplicationJobState {
		if out.removed {
			return nil
		}
		st.PID = 0
		st.Duration = dur
		if runErr != nil {
			st.FailCount++
			st.Error = runErr.Error()
			return &st
		}
		st.FailCount = 0
		st.Error = ""
		st.LastSync = start.Unix()
		st.StoreIDList = out.stores
		return &st
	})
	if r.LogDir != "" {
		if err := os.MkdirAll(r.LogDir, 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(r.LogDir, j.ID), []byte(out.text.String()), 0o640)
		}
	}
}

// jobLog writes the run's lines to the task log and keeps them, with PVE's
// "YYYY-MM-DD HH:MM:SS jobid: " prefix, for the job's log file.
type jobLog struct {
	task    Log
	start   time.Time
	text    strings.Builder
	stores  []string
	removed bool
}

func (l *jobLog) Printf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	l.task.Printf("%s", msg)
	fmt.Fprintf(&l.text, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), msg)
}

func (l *jobLog) Warnf(format string, a ...any) { l.Printf("WARN: "+format, a...) }

func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
