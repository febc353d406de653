package nodes

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// taskMethods are /nodes/{node}/tasks (PVE's API2/Tasks.pm), answered from
// d.Tasks; without it (pveproxy, the schema dump) they are declared only
// and forwarded or refused.
func (d Deps) taskMethods() []api.Method {
	return []api.Method{
		{
			Name: "node_tasks", Path: "/nodes/{node}/tasks", HTTP: "GET",
			Description: "Read task list for one node (finished tasks).",
			// Protected here (not in PVE): pvedaemon owns the task files.
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"errors":       api.Bool().Def(0).Opt().TT("<boolean>"),
				"limit":        api.Int().Min(0).Def(50).Opt().TT("<integer> (0 - N)"),
				"node":         api.Str().Fmt("pve-node").TT("<string>"),
				"since":        api.Int().Opt().TT("<integer>"),
				"source":       api.Str().Enums("archive", "active", "all").Def("archive").Opt(),
				"start":        api.Int().Min(0).Def(0).Opt().TT("<integer> (0 - N)"),
				"statusfilter": api.Str().Fmt("pve-task-status-type-list").Opt().TT("<string>"),
				"typefilter":   api.Str().Opt().TT("<string>"),
				"until":        api.Int().Opt().TT("<integer>"),
				"userfilter":   api.Str().Opt().TT("<string>"),
				"vmid":         api.Int().Fmt("pve-vmid").Range(100, 999999999).Opt().TT("<integer> (100 - 999999999)"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"endtime":   api.Int().Opt(),
				"id":        api.Str(),
				"node":      api.Str(),
				"pid":       api.Int(),
				"pstart":    api.Int(),
				"starttime": api.Int(),
				"status":    api.Str().Opt(),
				"type":      api.Str(),
				"upid":      api.Str(),
				"user":      api.Str(),
			})).WithLinks(api.Link{Href: "{upid}", Rel: "child"}),
			Handle: d.listTasks,
		},
		{
			Name: "stop_task", Path: "/nodes/{node}/tasks/{upid}", HTTP: "DELETE",
			Description: "Stop a task.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"node": api.Str().Fmt("pve-node").TT("<string>"),
				"upid": api.Str().TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.stopTask,
		},
		{
			Name: "upid_index", Path: "/nodes/{node}/tasks/{upid}", HTTP: "GET",
			Description: "",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"node": api.Str().Fmt("pve-node").TT("<string>"),
				"upid": api.Str().TT("<string>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{})).WithLinks(api.Link{Href: "{name}", Rel: "child"}),
			Handle:  upidIndex,
		},
		{
			Name: "read_task_log", Path: "/nodes/{node}/tasks/{upid}/log", HTTP: "GET",
			Description:     "Read task log.",
			Protected:       true,
			DownloadAllowed: true,
			ProxyTo:         "node",
			Permissions:     api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"download": api.Bool().Opt().TT("<boolean>"),
				"limit":    api.Int().Min(0).Def(50).Opt().TT("<integer> (0 - N)"),
				"node":     api.Str().Fmt("pve-node").TT("<string>"),
				"start":    api.Int().Min(0).Def(0).Opt().TT("<integer> (0 - N)"),
				"upid":     api.Str().TT("<string>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"n": api.Int(),
				"t": api.Str(),
			})),
			Handle: d.readTaskLog,
		},
		{
			Name: "read_task_status", Path: "/nodes/{node}/tasks/{upid}/status", HTTP: "GET",
			Description: "Read task status.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"node": api.Str().Fmt("pve-node").TT("<string>"),
				"upid": api.Str().TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"exitstatus": api.Str().Opt(),
				"id":         api.Str(),
				"node":       api.Str(),
				"pid":        api.Int(),
				"pstart":     api.Int(),
				"starttime":  api.Int(),
				"status":     api.Str().Enums("running", "stopped"),
				"type":       api.Str(),
				"upid":       api.Str(),
				"user":       api.Str(),
			}),
			Handle: d.readTaskStatus,
		},
	}
}

// upidIndex lists the sub-paths of a task.
func upidIndex(context.Context, *api.Request) (any, error) {
	return []map[string]string{{"name": "log"}, {"name": "status"}}, nil
}

// ownTask is PVE's check_task_user: a user sees its own tasks and those of
// its tokens, a token only its own.
func ownTask(authid string, u tasks.UPID) bool {
	return authid == u.User || strings.HasPrefix(u.User, authid+"!")
}

// task parses the upid parameter of a call, checks that the task's log
// exists and that the caller may see it (its own, or priv on the node).
func (d Deps) task(r *api.Request, priv string) (tasks.UPID, error) {
	if d.Tasks == nil {
		return tasks.UPID{}, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	u, err := tasks.Parse(r.Params.Get("upid"))
	if err != nil {
		return u, api.ParamError(map[string]string{"upid": "unable to parse worker upid"})
	}
	if !ownTask(r.Identity.AuthID, u) {
		path := "/nodes/" + r.Params.Get("node")
		if !d.Privs.CheckPrivs(r.Identity.AuthID, path, []string{priv}, false) && r.Identity.AuthID != api.RootUser {
			return u, api.PermissionDenied(path, priv)
		}
	}
	return u, nil
}

// listTasks is GET /nodes/{node}/tasks: the caller's own tasks, or all with
// Sys.Audit on the node.
func (d Deps) listTasks(ctx context.Context, r *api.Request) (any, error) {
	if d.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	p := r.Params
	caller := r.Identity.AuthID
	auditor := caller == api.RootUser || d.Privs.CheckPrivs(caller, "/nodes/"+p.Get("node"), []string{"Sys.Audit"}, false)
	f := tasks.Filter{
		Start: int(p.Int("start", 0)), Limit: int(p.Int("limit", 50)),
		UserFilter: p.Get("userfilter"), TypeFilter: p.Get("typefilter"),
		VMID: int(p.Int("vmid", 0)), Errors: p.Bool("errors", false), Source: p.Get("source"),
	}
	if p.Has("since") {
		v := p.Int("since", 0)
		f.Since = &v
	}
	if p.Has("until") {
		v := p.Int("until", 0)
		f.Until = &v
	}
	if s := p.Get("statusfilter"); s != "" {
		f.StatusFilter = access.SplitList(s)
	}
	if !auditor {
		f.Visible = func(t tasks.Task) bool {
			if t.TokenID != "" {
				return caller == t.User || caller == t.User+"!"+t.TokenID
			}
			return caller == t.User
		}
	}
	list, total, err := d.Tasks.List(f)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []tasks.Task{}
	}
	return api.List{Data: list, Total: total}, nil
}

// readTaskLog is GET /nodes/{node}/tasks/{upid}/log: lines {n, t} from
// start, limit of them, and the total; with download=1 the whole log file.
func (d Deps) readTaskLog(ctx context.Context, r *api.Request) (any, error) {
	u, err := d.task(r, "Sys.Audit")
	if err != nil {
		return nil, err
	}
	if r.Params.Bool("download", false) {
		if r.Params.Has("start") || r.Params.Has("limit") {
			return nil, api.Errorf(http.StatusInternalServerError, "'download' cannot be used together with 'start' or 'limit' parameters")
		}
		return d.taskLogDownload(u)
	}
	lines, total, err := d.Tasks.ReadLog(u.String(), int(r.Params.Int("start", 0)), int(r.Params.Int("limit", 50)))
	if err != nil {
		return nil, err
	}
	return api.List{Data: lines, Total: total}, nil
}

// taskLogDownload is the log of task u as a download named as PVE names
// it: task-<node>-<type>-<start time, UTC ISO 8601>.log. The file is opened
// here, in pvedaemon, and sent as it is when opened (a running task's log
// up to that point). PVE gzips a log of more than 1024 bytes itself; here
// pveproxy compresses it for clients that accept gzip (see api.Download).
func (d Deps) taskLogDownload(u tasks.UPID) (*api.Download, error) {
	path, err := d.Tasks.LogPath(u.String())
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, api.Errorf(http.StatusInternalServerError, "Could not open file '%s' - %s", path, strerror(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, api.Errorf(http.StatusInternalServerError, "Could not open file '%s' - %s", path, strerror(err))
	}
	start := time.Unix(u.StartTime, 0).UTC().Format("2006-01-02T15:04:05Z")
	return &api.Download{
		Body:        f,
		Size:        fi.Size(),
		ContentType: "text/plain",
		Filename:    "task-" + u.Node + "-" + u.Type + "-" + start + ".log",
	}, nil
}

// strerror renders an OS error as Perl's $! does: the errno's message
// with a capital first letter ("No such file or directory").
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if s := errno.Error(); s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}

// readTaskStatus is GET /nodes/{node}/tasks/{upid}/status.
func (d Deps) readTaskStatus(ctx context.Context, r *api.Request) (any, error) {
	u, err := d.task(r, "Sys.Audit")
	if err != nil {
		return nil, err
	}
	st, err := d.Tasks.Status(u.String())
	if errors.Is(err, tasks.ErrNoSuchTask) {
		return nil, api.ParamError(map[string]string{"upid": "no such task"})
	}
	return st, err
}

// stopTask is DELETE /nodes/{node}/tasks/{upid}: the owner or Sys.Modify.
func (d Deps) stopTask(ctx context.Context, r *api.Request) (any, error) {
	u, err := d.task(r, "Sys.Modify")
	if err != nil {
		return nil, err
	}
	err = d.Tasks.Stop(u.String())
	if errors.Is(err, tasks.ErrNoSuchTask) {
		return nil, api.ParamError(map[string]string{"upid": "no such task"})
	}
	return nil, err
}
