package jobsapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/calendar"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvetext"
	"github.com/pvenode/pvenode/pkg/sectioncfg"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// backupJobID is PVE's pve-backup-jobid option.
func backupJobID() *api.Schema { return api.Str().Pat(`\S+`).MaxLen(50) }

// backupUpdateParams are PUT /cluster/backup/{id}'s parameters.
func backupUpdateParams() map[string]*api.Schema {
	p := jobs.VZDumpJobParams()
	p["id"] = backupJobID()
	p["delete"] = api.Str().Fmt("pve-configid-list").Opt().TT("<string>")
	dow := *p["dow"]
	dow.Default = nil
	p["dow"] = &dow
	return p
}

// backupJobReturn is the schema of one job as GET answers it: the options
// without type texts, property strings as objects, the ID and next-run.
func backupJobReturn() map[string]*api.Schema {
	out := map[string]*api.Schema{}
	for k, s := range jobs.VZDumpJobParams() {
		if k == "starttime" || k == "dow" {
			continue
		}
		c := *s
		c.TypeText = ""
		switch k {
		case "prune-backups":
			c = *api.Obj(api.PruneBackupsFormat()).Opt()
		case "fleecing":
			c = *api.Obj(api.BackupFleecingFormat()).Opt()
		case "performance":
			c = *api.Obj(api.BackupPerformanceFormat()).Opt()
		}
		out[k] = &c
	}
	out["id"] = backupJobID()
	out["next-run"] = api.Int().Opt()
	return out
}

func backupMethods(d *Deps) []api.Method {
	audit := api.Permissions{Check: []any{"perm", "/", []any{"Sys.Audit"}}}
	modify := api.Permissions{Check: []any{"perm", "/", []any{"Sys.Modify"}}}
	return []api.Method{
		{
			Name: "index", Path: "/cluster/backup", HTTP: "GET",
			Description: "List vzdump backup schedule.",
			Permissions: audit,
			Returns:     api.Arr(api.Obj(backupJobReturn())).WithLinks(api.Link{Href: "{id}", Rel: "child"}),
			Handle:      d.listBackupJobs,
		},
		{
			Name: "create_job", Path: "/cluster/backup", HTTP: "POST",
			Description: "Create new vzdump backup job.",
			Protected:   true,
			Permissions: modify,
			Params:      jobs.VZDumpJobParams(),
			Returns:     api.Null(),
			Handle:      d.createBackupJob,
		},
		{
			Name: "delete_job", Path: "/cluster/backup/{id}", HTTP: "DELETE",
			Description: "Delete vzdump backup job definition.",
			Protected:   true,
			Permissions: modify,
			Params:      map[string]*api.Schema{"id": backupJobID()},
			Returns:     api.Null(),
			Handle:      d.deleteBackupJob,
		},
		{
			Name: "read_job", Path: "/cluster/backup/{id}", HTTP: "GET",
			Description: "Read vzdump backup job definition.",
			Permissions: audit,
			Params:      map[string]*api.Schema{"id": backupJobID()},
			Returns:     api.Obj(backupJobReturn()),
			Handle:      d.readBackupJob,
		},
		{
			Name: "update_job", Path: "/cluster/backup/{id}", HTTP: "PUT",
			Description: "Update vzdump backup job definition.",
			Protected:   true,
			Permissions: modify,
			Params:      backupUpdateParams(),
			Returns:     api.Null(),
			Handle:      d.updateBackupJob,
		},
		{
			Name: "index", Path: "/cluster/backup-info", HTTP: "GET",
			Description: "Index for backup info related endpoints",
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"subdir": api.Str(),
			})).WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
			Handle: api.DirIndex("subdir", "not-backed-up"),
		},
		{
			Name: "get_guests_not_in_backup", Path: "/cluster/backup-info/not-backed-up", HTTP: "GET",
			Description: "Shows all guests which are not covered by any backup job.",
			Protected:   true,
			Permissions: audit,
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"name": api.Str().Opt(),
				"type": api.Str().Enums("qemu", "lxc"),
				"vmid": api.Int(),
			})),
			Handle: d.notBackedUp,
		},
	}
}

// vzdumpProps are the options of a vzdump job, built once: every job of
// every GET is typed with them.
var vzdumpProps = sync.OnceValue(jobs.VZDumpJobParams)

// jobJSON is a vzdump section as the API answers it.
func jobJSON(sec *sectioncfg.Section) map[string]any {
	props := vzdumpProps()
	out := map[string]any{"id": sec.ID, "type": sec.Type}
	for k, v := range sec.Opts {
		if k == "comment" {
			out[k] = pvetext.Decode(v)
			continue
		}
		out[k] = api.TypedValue(props[k], v, true)
	}
	for k, l := range sec.Lists {
		out[k] = l
	}
	return out
}

func (d *Deps) jobsConfig() (*sectioncfg.Config, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	cfg, _, err := readConfig(d.Root, jobs.JobsFile, jobs.ParseJobs)
	return cfg, err
}

func (d *Deps) listBackupJobs(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.jobsConfig()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	now := d.now()
	for _, sec := range cfg.Sections {
		if sec.Type != "vzdump" {
			continue
		}
		j := jobJSON(sec)
		if ev, err := calendar.Parse(sec.Opts["schedule"]); err == nil {
			if next := ev.Next(now); !next.IsZero() {
				j["next-run"] = next.Unix()
			}
		}
		out = append(out, j)
	}
	return out, nil
}

func (d *Deps) readBackupJob(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.jobsConfig()
	if err != nil {
		return nil, err
	}
	id := r.Params.Get("id")
	sec := cfg.Get(id)
	if sec == nil || sec.Type != "vzdump" {
		return nil, api.ParamError(map[string]string{"id": fmt.Sprintf("No such job '%s'", id)})
	}
	return jobJSON(sec), nil
}

// rootOnlyKeys may be set by root@pam only (PVE's
// assert_param_permission_common).
var rootOnlyKeys = []string{"tmpdir", "dumpdir", "script", "job-id"}

// checkJobParamPerms applies PVE's extra permission rules for job options.
func (d *Deps) checkJobParamPerms(r *api.Request, params map[string]bool, storage string) error {
	user := r.Identity.AuthID
	if user == "root@pam" {
		return nil
	}
	for _, k := range rootOnlyKeys {
		if params[k] {
			return api.ParamError(map[string]string{k: "Only root may set this option."})
		}
	}
	if storage != "" && !d.Access.CheckPrivs(user, "/storage/"+storage, []string{"Datastore.Allocate"}, false) {
		return api.PermissionDenied("/storage/"+storage, "Datastore.Allocate")
	}
	return nil
}

// paramValues returns the given parameters in file form: strings, and the
// array options as lists.
func paramValues(r *api.Request) (map[string]string, map[string][]string) {
	opts := map[string]string{}
	lists := map[string][]string{}
	for k, v := range r.Params {
		switch x := v.(type) {
		case string:
			opts[k] = x
		case []string:
			lists[k] = x
		}
	}
	return opts, lists
}

// scheduleFrom turns the legacy starttime and dow into a schedule (PVE's
// convert_to_schedule) and checks that the two ways are not mixed.
func scheduleFrom(opts map[string]string, required bool) error {
	st, hasStart := opts["starttime"]
	if _, ok := opts["schedule"]; ok {
		if hasStart {
			return api.ParamError(map[string]string{"starttime": "'starttime' and 'schedule' cannot both be set"})
		}
	} else if !hasStart {
		if required {
			return api.ParamError(map[string]string{"schedule": "neither 'starttime' nor 'schedule' were set"})
		}
	} else {
		sched := st
		if dow := opts["dow"]; dow != "" {
			days := strings.Join(access.SplitList(dow), ",")
			if days != "mon,tue,wed,thu,fri,sat,sun" {
				sched = days + " " + st
			}
		}
		opts["schedule"] = sched
	}
	delete(opts, "starttime")
	delete(opts, "dow")
	return nil
}

// verifyVZDumpParams is PVE's verify_vzdump_parameters: the guest
// selections exclude each other, and with checkMissing one must be given.
func verifyVZDumpParams(opts map[string]string, checkMissing bool) error {
	conflict := func(a, b string) error {
		return api.ParamError(map[string]string{a: fmt.Sprintf("option conflicts with option '%s'", b)})
	}
	if opts["all"] == "1" && opts["vmid"] != "" {
		return conflict("all", "vmid")
	}
	if opts["exclude"] != "" && opts["vmid"] != "" {
		return conflict("exclude", "vmid")
	}
	if opts["pool"] != "" && opts["vmid"] != "" {
		return conflict("pool", "vmid")
	}
	if _, ok := opts["prune-backups"]; ok {
		if _, ok := opts["maxfiles"]; ok {
			return conflict("prune-backups", "maxfiles")
		}
	}
	if _, ok := opts["storage"]; ok {
		if _, ok := opts["dumpdir"]; ok {
			return conflict("storage", "dumpdir")
		}
	}
	if checkMissing && opts["all"] != "1" && opts["stop"] != "1" && opts["pool"] == "" && opts["vmid"] == "" {
		return api.ParamError(map[string]string{"vmid": "property is missing and it is not optional"})
	}
	return nil
}

func (d *Deps) checkPool(r *api.Request, pool string) error {
	if pool == "" {
		return nil
	}
	if d.Access.UserCfg().Pools[pool] == nil {
		return api.Errorf(http.StatusInternalServerError, "pool '%s' does not exist", pool)
	}
	if !d.Access.CheckPrivs(r.Identity.AuthID, "/pool/"+pool, []string{"VM.Backup"}, false) {
		return api.PermissionDenied("/pool/"+pool, "VM.Backup")
	}
	return nil
}

func (d *Deps) createBackupJob(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	opts, lists := paramValues(r)
	given := map[string]bool{}
	for k := range r.Params {
		given[k] = true
	}
	if err := d.checkJobParamPerms(r, given, opts["storage"]); err != nil {
		return nil, err
	}
	if err := d.checkPool(r, opts["pool"]); err != nil {
		return nil, err
	}
	if err := scheduleFrom(opts, true); err != nil {
		return nil, err
	}
	if _, ok := opts["enabled"]; !ok {
		opts["enabled"] = "1"
	}
	id := opts["id"]
	delete(opts, "id")
	if id == "" {
		u, err := uuid.NewRandom()
		if err != nil {
			return nil, err
		}
		id = u.String()
	}
	if err := verifyVZDumpParams(opts, true); err != nil {
		return nil, err
	}
	if c, ok := opts["comment"]; ok {
		opts["comment"] = pvetext.Encode(c)
	}
	sec := &sectioncfg.Section{Type: "vzdump", ID: id, Opts: opts, Lists: lists}
	if err := sectioncfg.Check(sec, jobs.JobTypes()); err != nil {
		return nil, api.Errorf(http.StatusBadRequest, "%v", err)
	}
	err := d.updateJobs(ctx, func(cfg *sectioncfg.Config) error {
		if cfg.Get(id) != nil {
			return api.Errorf(http.StatusInternalServerError, "Job '%s' already exists", id)
		}
		cfg.Sections = append(cfg.Sections, sec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// updateJobs changes jobs.cfg under its lock (nothing is written if fn
// fails) and makes this node's job state follow what was written at once
// (PVE's create_job / remove_job / detect_changed_runtime_props);
// pvescheduler does the same on every node when it sees the change.
func (d *Deps) updateJobs(ctx context.Context, fn func(cfg *sectioncfg.Config) error) error {
	var written *sectioncfg.Config
	err := updateConfig(ctx, d.Root, jobs.JobsFile, jobs.JobTypes(), jobs.ParseJobs, func(cfg *sectioncfg.Config) error {
		if err := fn(cfg); err != nil {
			return err
		}
		written = cfg
		return nil
	})
	if err != nil || d.Store == nil {
		return err
	}
	byID := map[string]map[string]string{}
	for _, j := range jobs.VZDumpJobs(written) {
		byID[j.ID] = j.Opts
	}
	if err := d.Store.Setup(); err == nil {
		_ = d.Store.Sync("vzdump", byID)
	}
	return nil
}

func (d *Deps) deleteBackupJob(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	id := r.Params.Get("id")
	err := d.updateJobs(ctx, func(cfg *sectioncfg.Config) error {
		if sec := cfg.Get(id); sec == nil || sec.Type != "vzdump" {
			return api.ParamError(map[string]string{"id": fmt.Sprintf("No such job '%s'", id)})
		}
		cfg.Delete(id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// deletableJobKeys are job-level options PUT may delete besides the vzdump
// options.
var deletableJobKeys = map[string]bool{"comment": true, "repeat-missed": true}

func (d *Deps) updateBackupJob(ctx context.Context, r *api.Request) (any, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	opts, lists := paramValues(r)
	id := opts["id"]
	delete(opts, "id")
	var del []string
	if v, ok := opts["delete"]; ok {
		del = access.SplitList(v)
		delete(opts, "delete")
	}
	given := map[string]bool{}
	for k := range r.Params {
		given[k] = true
	}
	delGiven := map[string]bool{}
	for _, k := range del {
		delGiven[k] = true
	}
	if err := d.checkJobParamPerms(r, given, opts["storage"]); err != nil {
		return nil, err
	}
	if err := d.checkJobParamPerms(r, delGiven, ""); err != nil {
		return nil, err
	}
	if err := d.checkPool(r, opts["pool"]); err != nil {
		return nil, err
	}
	if err := scheduleFrom(opts, false); err != nil {
		return nil, err
	}
	if len(opts) == 0 && len(lists) == 0 && len(del) == 0 {
		return nil, api.Errorf(http.StatusInternalServerError, "no options specified")
	}
	if err := verifyVZDumpParams(opts, false); err != nil {
		return nil, err
	}
	vzProps := jobs.VZDumpType().Props
	for _, k := range del {
		if _, ok := vzProps[k]; !ok && !deletableJobKeys[k] {
			return nil, api.ParamError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", k)})
		}
	}
	err := d.updateJobs(ctx, func(cfg *sectioncfg.Config) error {
		sec := cfg.Get(id)
		if sec == nil || sec.Type != "vzdump" {
			return api.Errorf(http.StatusInternalServerError, "no such vzdump job")
		}
		if r.Identity.AuthID != "root@pam" {
			if sec.Opts["dumpdir"] != "" {
				return api.Errorf(http.StatusInternalServerError, "only root@pam may edit jobs with a 'dumpdir' option.")
			}
			if st := sec.Opts["storage"]; st != "" && !d.Access.CheckPrivs(r.Identity.AuthID, "/storage/"+st, []string{"Datastore.Allocate"}, false) {
				return api.PermissionDenied("/storage/"+st, "Datastore.Allocate")
			}
		}
		next := &sectioncfg.Section{Type: sec.Type, ID: sec.ID, Line: sec.Line,
			Opts: map[string]string{}, Lists: map[string][]string{}}
		for k, v := range sec.Opts {
			next.Opts[k] = v
		}
		for k, v := range sec.Lists {
			next.Lists[k] = slices.Clone(v)
		}
		for _, k := range del {
			delete(next.Opts, k)
			delete(next.Lists, k)
		}
		for k, v := range opts {
			if k == "comment" {
				v = pvetext.Encode(v)
			}
			next.Opts[k] = v
		}
		for k, v := range lists {
			next.Lists[k] = v
		}
		if next.Opts["exclude"] != "" && next.Opts["pool"] == "" {
			next.Opts["all"] = "1"
		}
		switch {
		case opts["vmid"] != "":
			delete(next.Opts, "all")
			delete(next.Opts, "exclude")
			delete(next.Opts, "pool")
		case opts["all"] == "1":
			delete(next.Opts, "vmid")
			delete(next.Opts, "pool")
		case next.Opts["pool"] != "":
			delete(next.Opts, "vmid")
			delete(next.Opts, "all")
			delete(next.Opts, "exclude")
		}
		if err := verifyVZDumpParams(next.Opts, true); err != nil {
			return err
		}
		if err := sectioncfg.Check(next, jobs.JobTypes()); err != nil {
			return api.Errorf(http.StatusBadRequest, "%v", err)
		}
		*sec = *next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

func (d *Deps) notBackedUp(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.jobsConfig()
	if err != nil {
		return nil, err
	}
	guests, err := vmlist.Read(d.Root)
	if err != nil {
		return nil, err
	}
	pools := d.Access.UserCfg().Pools
	included := map[int]bool{}
	for _, j := range jobs.VZDumpJobs(cfg) {
		for _, ids := range jobs.IncludedGuests(j.Opts, guests, pools) {
			for _, id := range ids {
				included[id] = true
			}
		}
	}
	out := []map[string]any{}
	ids := make([]int, 0, len(guests))
	for id := range guests {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		g := guests[id]
		if included[id] || (g.Type != "qemu" && g.Type != "lxc") {
			continue
		}
		if !d.Access.CheckPrivs(r.Identity.AuthID, "/vms/"+strconv.Itoa(id), []string{"VM.Audit"}, false) {
			continue
		}
		e := map[string]any{"vmid": id, "type": g.Type}
		if name := guestName(d, g, id); name != "" {
			e["name"] = name
		}
		out = append(out, e)
	}
	return out, nil
}

// guestName reads a guest's name (qemu "name", lxc "hostname") from its
// config's main section.
func guestName(d *Deps, g vmlist.Guest, vmid int) string {
	dir, key := "qemu-server", "name"
	if g.Type == "lxc" {
		dir, key = "lxc", "hostname"
	}
	data, err := d.Root.ReadFile(fmt.Sprintf("nodes/%s/%s/%d.conf", g.Node, dir, vmid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "[") {
			break
		}
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
