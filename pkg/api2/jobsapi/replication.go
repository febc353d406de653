package jobsapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/calendar"
	"github.com/pvenode/pvenode/pkg/corosync"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvetext"
	"github.com/pvenode/pvenode/pkg/sectioncfg"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

func jobsMethods(d *Deps) []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/cluster/jobs", HTTP: "GET",
			Description: "Index for jobs related endpoints.",
			Permissions: api.Permissions{User: "all"},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"subdir": api.Str(),
			})).WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
			Handle: api.DirIndex("subdir", "schedule-analyze"),
		},
		{
			Name: "schedule-analyze", Path: "/cluster/jobs/schedule-analyze", HTTP: "GET",
			Description: "Returns a list of future schedule runtimes.",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"iterations": api.Int().Range(1, 100).Def(10).Opt().TT("<integer> (1 - 100)"),
				"schedule":   api.Str().Fmt("pve-calendar-event").MaxLen(128).TT("<string>"),
				"starttime":  api.Int().Opt().TT("<integer>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"timestamp": api.Int(),
				"utc":       api.Str(),
			})),
			Handle: d.scheduleAnalyze,
		},
	}
}

// perlGMTime is Perl's scalar(gmtime(t)): "Thu Mar 12 08:00:00 2026".
func perlGMTime(t time.Time) string { return t.UTC().Format("Mon Jan _2 15:04:05 2006") }

func (d *Deps) scheduleAnalyze(ctx context.Context, r *api.Request) (any, error) {
	ev, err := calendar.Parse(r.Params.Get("schedule"))
	if err != nil {
		return nil, api.ParamError(map[string]string{"schedule": err.Error()})
	}
	start := time.Unix(r.Params.Int("starttime", d.now().Unix()), 0)
	n := int(r.Params.Int("iterations", 10))
	out := []map[string]any{}
	for range n {
		next := ev.Next(start)
		if next.IsZero() {
			break
		}
		out = append(out, map[string]any{"timestamp": next.Unix(), "utc": perlGMTime(next)})
		start = next
	}
	return out, nil
}

func replIDParam() *api.Schema {
	return api.Str().Fmt("pve-replication-job-id").Pat(`[1-9][0-9]{2,8}-\d{1,9}`)
}

// replicationReturn is a replication job as the API answers it.
func replicationReturn() map[string]*api.Schema {
	return map[string]*api.Schema{
		"comment":    api.Str().MaxLen(4096).Opt(),
		"disable":    api.Bool().Opt(),
		"guest":      api.Int(),
		"id":         replIDParam(),
		"jobnum":     api.Int(),
		"rate":       api.Num().Min(1).Opt(),
		"remove_job": api.Str().Enums("local", "full").Opt(),
		"schedule":   api.Str().Fmt("pve-calendar-event").MaxLen(128).Def("*/15").Opt(),
		"source":     api.Str().Fmt("pve-node").Opt(),
		"target":     api.Str().Fmt("pve-node"),
		"type":       api.Str().Enums("local"),
	}
}

func replicationMethods(d *Deps) []api.Method {
	all := api.Permissions{User: "all"}
	readRet := replicationReturn()
	readRet["digest"] = api.Str().MaxLen(64).Opt()
	update := jobs.ReplicationJobParams()
	delete(update, "type")
	delete(update, "target")
	update["delete"] = api.Str().Fmt("pve-configid-list").MaxLen(4096).Opt().TT("<string>")
	update["digest"] = api.Str().MaxLen(64).Opt().TT("<string>")
	return []api.Method{
		{
			Name: "index", Path: "/cluster/replication", HTTP: "GET",
			Description: "List replication jobs.",
			Permissions: all,
			Returns:     api.Arr(api.Obj(replicationReturn())).WithLinks(api.Link{Href: "{id}", Rel: "child"}),
			Handle:      d.listReplication,
		},
		{
			Name: "create", Path: "/cluster/replication", HTTP: "POST",
			Description: "Create a new replication job",
			Protected:   true,
			Permissions: all,
			Params:      jobs.ReplicationJobParams(),
			Returns:     api.Null(),
			Handle:      d.createReplication,
		},
		{
			Name: "delete", Path: "/cluster/replication/{id}", HTTP: "DELETE",
			Description: "Mark replication job for removal.",
			Protected:   true,
			Permissions: all,
			Params: map[string]*api.Schema{
				"force": api.Bool().Def(0).Opt().TT("<boolean>"),
				"id":    replIDParam(),
				"keep":  api.Bool().Def(0).Opt().TT("<boolean>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteReplication,
		},
		{
			Name: "read", Path: "/cluster/replication/{id}", HTTP: "GET",
			Description: "Read replication job configuration.",
			Permissions: all,
			Params:      map[string]*api.Schema{"id": replIDParam()},
			Returns:     api.Obj(readRet),
			Handle:      d.readReplication,
		},
		{
			Name: "update", Path: "/cluster/replication/{id}", HTTP: "PUT",
			Description: "Update replication job configuration.",
			Protected:   true,
			Permissions: all,
			Params:      update,
			Returns:     api.Null(),
			Handle:      d.updateReplication,
		},
		{
			Name: "status", Path: "/nodes/{node}/replication", HTTP: "GET",
			Description: "List status of all replication jobs on this node.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Description: "Requires the VM.Audit permission on /vms/<vmid>.", User: "all"},
			Params: map[string]*api.Schema{
				"guest": api.Int().Fmt("pve-vmid").Range(100, 999999999).Opt().TT("<integer> (100 - 999999999)"),
				"node":  api.Str().Fmt("pve-node").TT("<string>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"id": api.Str(),
			})).WithLinks(api.Link{Href: "{id}", Rel: "child"}),
			Handle: d.replicationStatus,
		},
	}
}

func (d *Deps) replicationConfig() (*sectioncfg.Config, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	cfg, _, err := readConfig(d.Root, jobs.ReplicationFile, jobs.ParseReplication)
	return cfg, err
}

// replJSON is a replication section as the API answers it.
func replJSON(j jobs.ReplicationJob) map[string]any {
	props := replicationReturn()
	out := map[string]any{"id": j.ID, "type": "local", "guest": j.Guest, "jobnum": j.JobNum}
	for k, v := range j.Opts {
		if k == "comment" {
			out[k] = v
			continue
		}
		out[k] = api.TypedValue(props[k], v, false)
	}
	return out
}

func (d *Deps) canAudit(r *api.Request, vmid int) bool {
	return d.Access.CheckPrivs(r.Identity.AuthID, "/vms/"+strconv.Itoa(vmid), []string{"VM.Audit"}, false)
}

// replicateJob returns the job ID of the call, normalised, and its guest,
// after checking the caller's VM.Replicate on the guest (PVE's rule for
// every change of a replication job).
func (d *Deps) replicateJob(r *api.Request) (id string, guest int, err error) {
	id, err = jobs.ParseReplicationID(r.Params.Get("id"))
	if err != nil {
		return "", 0, api.ParamError(map[string]string{"id": err.Error()})
	}
	guest, _ = strconv.Atoi(id[:strings.IndexByte(id, '-')])
	p := "/vms/" + strconv.Itoa(guest)
	if !d.Access.CheckPrivs(r.Identity.AuthID, p, []string{"VM.Replicate"}, false) {
		return "", 0, api.PermissionDenied(p, "VM.Replicate")
	}
	return id, guest, nil
}

func (d *Deps) listReplication(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.replicationConfig()
	if err != nil {
		return nil, err
	}
	list := jobs.ReplicationJobs(cfg)
	slices.SortFunc(list, func(a, b jobs.ReplicationJob) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	out := []map[string]any{}
	for _, j := range list {
		if d.canAudit(r, j.Guest) {
			out = append(out, replJSON(j))
		}
	}
	return out, nil
}

func (d *Deps) readReplication(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.replicationConfig()
	if err != nil {
		return nil, err
	}
	id, _ := jobs.ParseReplicationID(r.Params.Get("id"))
	for _, j := range jobs.ReplicationJobs(cfg) {
		if j.ID != id {
			continue
		}
		p := "/vms/" + strconv.Itoa(j.Guest)
		if !d.canAudit(r, j.Guest) {
			return nil, api.PermissionDenied(p, "VM.Audit")
		}
		out := replJSON(j)
		out["digest"] = cfg.Digest
		return out, nil
	}
	return nil, api.Errorf(http.StatusInternalServerError, "no such replication job '%s'", r.Params.Get("id"))
}

func (d *Deps) createReplication(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	opts, _ := paramValues(r)
	id, guest, err := d.replicateJob(r)
	if err != nil {
		return nil, err
	}
	delete(opts, "id")
	delete(opts, "type")
	guests, err := vmlist.Read(d.Root)
	if err != nil {
		return nil, err
	}
	g, ok := guests[guest]
	if !ok {
		return nil, api.Errorf(http.StatusInternalServerError, "Guest '%d' does not exist.", guest)
	}
	target := opts["target"]
	if ok, err := d.isNode(r, target); err != nil {
		return nil, err
	} else if !ok {
		return nil, api.Errorf(http.StatusInternalServerError, "Target '%s' does not exist.", target)
	}
	if src, ok := opts["source"]; ok && src != g.Node {
		return nil, api.Errorf(http.StatusInternalServerError, "Source '%s' does not match current node of guest '%d' (%s)", src, guest, g.Node)
	}
	opts["source"] = g.Node
	if target == g.Node {
		return nil, api.Errorf(http.StatusInternalServerError, "Source and target must not be identical")
	}
	if c, ok := opts["comment"]; ok {
		opts["comment"] = pvetext.Encode(c)
	}
	sec := &sectioncfg.Section{Type: "local", ID: id, Opts: opts, Lists: map[string][]string{}}
	if err := sectioncfg.Check(sec, jobs.ReplicationTypes()); err != nil {
		return nil, api.Errorf(http.StatusBadRequest, "%v", err)
	}
	return nil, updateConfig(ctx, d.Root, jobs.ReplicationFile, jobs.ReplicationTypes(), jobs.ParseReplication, func(cfg *sectioncfg.Config) error {
		if cfg.Get(id) != nil {
			return api.Errorf(http.StatusInternalServerError, "replication job '%s' already exists", id)
		}
		for _, j := range jobs.ReplicationJobs(cfg) {
			if j.Guest == guest && j.Target == target {
				return api.Errorf(http.StatusInternalServerError, "replication job for guest '%d' to target '%s' already exists", guest, target)
			}
		}
		cfg.Sections = append(cfg.Sections, sec)
		return nil
	})
}

// isNode reports whether name is a cluster member (or this node, standalone).
func (d *Deps) isNode(r *api.Request, name string) (bool, error) {
	if name == r.NodeName {
		return true, nil
	}
	return corosync.IsMember(d.Root, name)
}

func (d *Deps) updateReplication(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	opts, _ := paramValues(r)
	id, _, err := d.replicateJob(r)
	if err != nil {
		return nil, err
	}
	delete(opts, "id")
	digest := opts["digest"]
	delete(opts, "digest")
	var del []string
	if v, ok := opts["delete"]; ok {
		del = access.SplitList(v)
		delete(opts, "delete")
	}
	props := jobs.ReplicationType().Props
	for _, k := range del {
		s, ok := props[k]
		if !ok {
			return nil, api.Errorf(http.StatusInternalServerError, "no such option '%s'", k)
		}
		if !s.Optional {
			return nil, api.Errorf(http.StatusInternalServerError, "unable to delete required option '%s'", k)
		}
	}
	return nil, updateConfig(ctx, d.Root, jobs.ReplicationFile, jobs.ReplicationTypes(), jobs.ParseReplication, func(cfg *sectioncfg.Config) error {
		if digest != "" && digest != cfg.Digest {
			return api.Errorf(http.StatusInternalServerError, "detected modified configuration - file changed by other user? Try again.")
		}
		sec := cfg.Get(id)
		if sec == nil {
			return api.Errorf(http.StatusInternalServerError, "no such job '%s'", id)
		}
		for k, v := range opts {
			if k == "comment" {
				v = pvetext.Encode(v)
			}
			sec.Opts[k] = v
		}
		for _, k := range del {
			delete(sec.Opts, k)
		}
		if err := sectioncfg.Check(sec, jobs.ReplicationTypes()); err != nil {
			return api.Errorf(http.StatusBadRequest, "%v", err)
		}
		return nil
	})
}

func (d *Deps) deleteReplication(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	id, _, err := d.replicateJob(r)
	if err != nil {
		return nil, err
	}
	force, keep := r.Params.Bool("force", false), r.Params.Bool("keep", false)
	if force && keep {
		return nil, api.ParamError(map[string]string{"keep": "conflicts with parameter 'force'"})
	}
	return nil, updateConfig(ctx, d.Root, jobs.ReplicationFile, jobs.ReplicationTypes(), jobs.ParseReplication, func(cfg *sectioncfg.Config) error {
		if force {
			cfg.Delete(id)
			return nil
		}
		sec := cfg.Get(id)
		if sec == nil {
			return api.Errorf(http.StatusInternalServerError, "no such job '%s'", id)
		}
		if keep {
			sec.Opts["remove_job"] = "local"
		} else {
			sec.Opts["remove_job"] = "full"
		}
		return nil
	})
}

// replicationStatus lists this node's replication jobs (those whose guest
// lives here) with their state, as PVE's /nodes/{node}/replication.
func (d *Deps) replicationStatus(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.replicationConfig()
	if err != nil {
		return nil, err
	}
	guests, err := vmlist.Read(d.Root)
	if err != nil {
		return nil, err
	}
	var state jobs.ReplicationState
	if d.ReplicationState != nil {
		if state, err = d.ReplicationState(); err != nil {
			return nil, err
		}
	}
	only := int(r.Params.Int("guest", 0))
	out := []map[string]any{}
	for _, j := range jobs.ReplicationJobs(cfg) {
		if g, ok := guests[j.Guest]; !ok || g.Node != r.NodeName {
			continue
		}
		if (only != 0 && j.Guest != only) || !d.canAudit(r, j.Guest) {
			continue
		}
		out = append(out, statusJSON(j, state.Job(j.Guest, j.Target)))
	}
	return out, nil
}

// statusJSON is a job with its state, as the node's replication status
// lists it.
func statusJSON(j jobs.ReplicationJob, st jobs.ReplicationJobState) map[string]any {
	e := replJSON(j)
	e["last_sync"], e["last_try"], e["fail_count"] = st.LastSync, st.LastTry, st.FailCount
	if st.Duration != 0 {
		e["duration"] = st.Duration
	}
	if st.Error != "" {
		e["error"] = st.Error
	}
	if st.PID != 0 {
		e["pid"] = st.PID
	}
	if next := jobs.NextReplication(j, st); next > 0 {
		e["next_sync"] = next
	}
	return e
}
