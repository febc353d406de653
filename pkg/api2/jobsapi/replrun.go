package jobsapi

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/replication"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// ReplicationRun is what the node's replication methods need to run jobs.
type ReplicationRun struct {
	Runner *replication.Runner
	Tasks  *tasks.Manager
}

func nodeReplicationParams() map[string]*api.Schema {
	return map[string]*api.Schema{
		"id":   replIDParam(),
		"node": api.Str().Fmt("pve-node").TT("<string>"),
	}
}

func nodeReplicationMethods(d *Deps) []api.Method {
	all := api.Permissions{User: "all"}
	logParams := nodeReplicationParams()
	logParams["limit"] = api.Int().Min(0).Opt().TT("<integer> (0 - N)")
	logParams["start"] = api.Int().Min(0).Opt().TT("<integer> (0 - N)")
	return []api.Method{
		{
			Name: "index", Path: "/nodes/{node}/replication/{id}", HTTP: "GET",
			Description: "Directory index.",
			Permissions: all,
			Params:      nodeReplicationParams(),
			Returns:     api.Arr(api.Obj(map[string]*api.Schema{})).WithLinks(api.Link{Href: "{name}", Rel: "child"}),
			Handle:      api.DirIndex("name", "schedule_now", "log", "status"),
		},
		{
			Name: "job_status", Path: "/nodes/{node}/replication/{id}/status", HTTP: "GET",
			Description: "Get replication job status.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: all,
			Params:      nodeReplicationParams(),
			Returns:     &api.Schema{Type: "object"},
			Handle:      d.replicationJobStatus,
		},
		{
			Name: "read_job_log", Path: "/nodes/{node}/replication/{id}/log", HTTP: "GET",
			Description: "Read replication job log.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: all,
			Params:      logParams,
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"n": api.Int(),
				"t": api.Str(),
			})),
			Handle: d.replicationLog,
		},
		{
			Name: "schedule_now", Path: "/nodes/{node}/replication/{id}/schedule_now", HTTP: "POST",
			Description: "Schedule replication job to start as soon as possible.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: all,
			Params:      nodeReplicationParams(),
			Returns:     api.Str(),
			Handle:      d.replicationScheduleNow,
		},
		{
			Name: "pvenode-run", Path: "/nodes/{node}/replication/{id}/pvenode-run", HTTP: "POST",
			Description: "Run a replication job now, as a task (pvenode: how pvescheduler runs jobs through pvedaemon). Only root@pam.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Description: "Only root@pam.", User: "all"},
			Params:      nodeReplicationParams(),
			Returns:     api.Str(),
			Handle:      d.replicationRunNow,
		},
	}
}

// localJob returns a job whose guest lives on this node, checking the
// caller's privilege on the guest.
func (d *Deps) localJob(r *api.Request, priv string) (jobs.ReplicationJob, error) {
	cfg, err := d.replicationConfig()
	if err != nil {
		return jobs.ReplicationJob{}, err
	}
	id, _ := jobs.ParseReplicationID(r.Params.Get("id"))
	for _, j := range jobs.ReplicationJobs(cfg) {
		if j.ID != id {
			continue
		}
		p := "/vms/" + strconv.Itoa(j.Guest)
		if !d.Access.CheckPrivs(r.Identity.AuthID, p, []string{priv}, false) {
			return j, api.PermissionDenied(p, priv)
		}
		return j, nil
	}
	return jobs.ReplicationJob{}, api.Errorf(http.StatusInternalServerError, "no such replication job '%s'", r.Params.Get("id"))
}

func (d *Deps) replicationJobStatus(ctx context.Context, r *api.Request) (any, error) {
	j, err := d.localJob(r, "VM.Audit")
	if err != nil {
		return nil, err
	}
	var state jobs.ReplicationState
	if d.ReplicationState != nil {
		if state, err = d.ReplicationState(); err != nil {
			return nil, err
		}
	}
	return statusJSON(j, state.Job(j.Guest, j.Target)), nil
}

// replicationLog reads the job's last run log (/var/log/pve/replicate/<id>).
func (d *Deps) replicationLog(ctx context.Context, r *api.Request) (any, error) {
	j, err := d.localJob(r, "VM.Audit")
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	if d.Run == nil || d.Run.Runner == nil || d.Run.Runner.LogDir == "" {
		return out, nil
	}
	f, err := os.Open(filepath.Join(d.Run.Runner.LogDir, j.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start, limit := int(r.Params.Int("start", 0)), int(r.Params.Int("limit", 50))
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if n <= start || len(out) >= limit {
			continue
		}
		out = append(out, map[string]any{"n": n, "t": sc.Text()})
	}
	return out, sc.Err()
}

// replicationScheduleNow makes the job due at once (PVE: last_try = 0 in
// its state, if it has one); pvescheduler starts it within seconds.
func (d *Deps) replicationScheduleNow(ctx context.Context, r *api.Request) (any, error) {
	j, err := d.localJob(r, "VM.Replicate")
	if err != nil {
		return nil, err
	}
	if d.Run == nil || d.Run.Runner == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: replication in this daemon")
	}
	err = d.Run.Runner.State.Update(j.Guest, j.Target, func(st jobs.ReplicationJobState) *jobs.ReplicationJobState {
		st.LastTry = 0
		return &st
	})
	return "", err
}

// replicationRunNow starts a run of the job as a task and answers its
// UPID once the run is recorded in the state.
func (d *Deps) replicationRunNow(ctx context.Context, r *api.Request) (any, error) {
	if r.Identity.AuthID != "root@pam" {
		return nil, api.Errorf(http.StatusForbidden, "Permission check failed (only root@pam)")
	}
	if d.Run == nil || d.Run.Runner == nil || d.Run.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: replication in this daemon")
	}
	j, err := d.localJob(r, "VM.Replicate")
	if err != nil {
		return nil, err
	}
	run := d.Run.Runner
	if j.Opts["remove_job"] == "" {
		if err := run.Check(j); err != nil {
			return nil, api.Errorf(http.StatusInternalServerError, "%v", err)
		}
	}
	ok, err := run.Begin(j, os.Getpid())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Errorf(http.StatusInternalServerError, "replication job '%s' is already running", j.ID)
	}
	u, err := d.Run.Tasks.Start(context.Background(), tasks.TaskSpec{Type: "pvesr", ID: j.ID, User: r.Identity.AuthID},
		func(ctx context.Context, l *tasks.Log) error { return run.Run(ctx, j, l) })
	if err != nil {
		run.Abort(j, err)
		return nil, err
	}
	return u.String(), nil
}
