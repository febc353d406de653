package vzdumpapi

import (
	"maps"

	"github.com/pvenode/pvenode/pkg/api"
)

const pruneTypeText = "[keep-all=<1|0>] [,keep-daily=<N>] [,keep-hourly=<N>] [,keep-last=<N>] [,keep-monthly=<N>] [,keep-weekly=<N>] [,keep-yearly=<N>]"

// jobProps are the vzdump job options (PVE::VZDump::Common's confdesc), as
// parameters; typeText false leaves out the type texts (return schema).
func jobProps(typeText bool) map[string]*api.Schema {
	tt := func(s *api.Schema, t string) *api.Schema {
		if typeText {
			s.TT(t)
		}
		return s
	}
	return map[string]*api.Schema{
		"all":                       tt(api.Bool().Def(0).Opt(), "<boolean>"),
		"bwlimit":                   tt(api.Int().Min(0).Def(0).Opt(), "<integer> (0 - N)"),
		"compress":                  api.Str().Enums("0", "1", "gzip", "lzo", "zstd").Def("0").Opt(),
		"dumpdir":                   tt(api.Str().Opt(), "<string>"),
		"exclude":                   tt(api.Str().Fmt("pve-vmid-list").Opt(), "<string>"),
		"exclude-path":              tt(api.Arr(api.Str()).Opt(), "<array>"),
		"fleecing":                  tt(api.Str().Fmt("backup-fleecing").Opt(), "[[enabled=]<1|0>] [,storage=<storage ID>]"),
		"ionice":                    tt(api.Int().Range(0, 8).Def(7).Opt(), "<integer> (0 - 8)"),
		"lockwait":                  tt(api.Int().Min(0).Def(180).Opt(), "<integer> (0 - N)"),
		"mailnotification":          api.Str().Enums("always", "failure").Def("always").Opt(),
		"mailto":                    tt(api.Str().Fmt("email-or-username-list").Opt(), "<string>"),
		"maxfiles":                  tt(api.Int().Min(1).Opt(), "<integer> (1 - N)"),
		"mode":                      api.Str().Enums("snapshot", "suspend", "stop").Def("snapshot").Opt(),
		"node":                      tt(api.Str().Fmt("pve-node").Opt(), "<string>"),
		"notes-template":            tt(api.Str().MaxLen(1024).Req("storage").Opt(), "<string>"),
		"notification-mode":         api.Str().Enums("auto", "legacy-sendmail", "notification-system").Def("auto").Opt(),
		"pbs-change-detection-mode": api.Str().Enums("legacy", "data", "metadata").Opt(),
		"performance":               tt(api.Str().Fmt("backup-performance").Opt(), "[max-workers=<integer>] [,pbs-entries-max=<integer>]"),
		"pigz":                      tt(api.Int().Def(0).Opt(), "<integer>"),
		"pool":                      tt(api.Str().Opt(), "<string>"),
		"protected":                 tt(api.Bool().Req("storage").Opt(), "<boolean>"),
		"prune-backups":             tt(api.Str().Fmt("prune-backups").Def("keep-all=1").Opt(), pruneTypeText),
		"quiet":                     tt(api.Bool().Def(0).Opt(), "<boolean>"),
		"remove":                    tt(api.Bool().Def(1).Opt(), "<boolean>"),
		"script":                    tt(api.Str().Opt(), "<string>"),
		"stdexcludes":               tt(api.Bool().Def(1).Opt(), "<boolean>"),
		"stop":                      tt(api.Bool().Def(0).Opt(), "<boolean>"),
		"stopwait":                  tt(api.Int().Min(0).Def(10).Opt(), "<integer> (0 - N)"),
		"storage":                   tt(api.Str().Fmt("pve-storage-id").Opt(), "<storage ID>"),
		"tmpdir":                    tt(api.Str().Opt(), "<string>"),
		"vmid":                      tt(api.Str().Fmt("pve-vmid-list").Opt(), "<string>"),
		"zstd":                      tt(api.Int().Def(1).Opt(), "<integer>"),
	}
}

// Methods returns the declarations of this package.
func Methods(d *Deps) []api.Method {
	postParams := jobProps(true)
	maps.Copy(postParams, map[string]*api.Schema{
		"job-id": api.Str().MaxLen(50).Pat(`\S+`).Opt(),
		"stdout": api.Bool().Opt().TT("<boolean>"),
	})
	nodeParam := api.Str().Fmt("pve-node").TT("<string>")
	return []api.Method{
		{
			Name: "vzdump", Path: "/nodes/{node}/vzdump", HTTP: "POST",
			Description: "Create backup.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{
				Description: "The user needs 'VM.Backup' permissions on any VM, and 'Datastore.AllocateSpace' on the backup storage (and fleecing storage when fleecing is used). The 'tmpdir', 'dumpdir', 'script' and 'job-id' parameters are restricted to the 'root@pam' user. The 'prune-backups' setting requires 'Datastore.Allocate' on the backup storage. The 'bwlimit', 'performance' and 'ionice' parameters require 'Sys.Modify' on '/'.",
				User:        "all",
			},
			Params:  postParams,
			Returns: api.Str(),
			Handle:  d.vzdump,
		},
		{
			Name: "defaults", Path: "/nodes/{node}/vzdump/defaults", HTTP: "GET",
			Description: "Get the currently configured vzdump defaults.",
			ProxyTo:     "node",
			Permissions: api.Permissions{
				Description: "The user needs 'Datastore.Audit' or 'Datastore.AllocateSpace' permissions for the specified storage (or default storage if none specified). Some properties are only returned when the user has 'Sys.Audit' permissions for the node.",
				User:        "all",
			},
			Params: map[string]*api.Schema{
				"node":    nodeParam,
				"storage": api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>"),
			},
			Returns: api.Obj(jobProps(false)).Additional(false),
			Handle:  d.defaults,
		},
		{
			Name: "extractconfig", Path: "/nodes/{node}/vzdump/extractconfig", HTTP: "GET",
			Description: "Extract configuration from vzdump backup archive.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{
				Description: "The user needs 'VM.Backup' permissions on the backed up guest ID, and 'Datastore.AllocateSpace' on the backup storage.",
				User:        "all",
			},
			Params: map[string]*api.Schema{
				"node":   api.Str().Fmt("pve-node").TT("<string>"),
				"volume": api.Str().TT("<string>"),
			},
			Returns: api.Str(),
			Handle:  d.extractConfig,
		},
	}
}
