package jobs

import "github.com/pvenode/pvenode/pkg/api"

// VZDumpJobParams returns the parameters of POST /cluster/backup (PVE's
// create_job), which are also the options a vzdump section of jobs.cfg may
// hold (less id, and the legacy starttime and dow, which become schedule).
// A new map of new schemas on each call.
func VZDumpJobParams() map[string]*api.Schema {
	return map[string]*api.Schema{
		"all":                       api.Bool().Def(0).Opt().TT("<boolean>"),
		"bwlimit":                   api.Int().Min(0).Def(0).Opt().TT("<integer> (0 - N)"),
		"comment":                   api.Str().MaxLen(512).Opt().TT("<string>"),
		"compress":                  api.Str().Enums("0", "1", "gzip", "lzo", "zstd").Def("0").Opt(),
		"dow":                       api.Str().Fmt("pve-day-of-week-list").Def("mon,tue,wed,thu,fri,sat,sun").Opt().Req("starttime").TT("<string>"),
		"dumpdir":                   api.Str().Opt().TT("<string>"),
		"enabled":                   api.Bool().Def("1").Opt().TT("<boolean>"),
		"exclude":                   api.Str().Fmt("pve-vmid-list").Opt().TT("<string>"),
		"exclude-path":              api.Arr(api.Str()).Opt().TT("<array>"),
		"fleecing":                  api.Str().Fmt("backup-fleecing").Opt().TT("[[enabled=]<1|0>] [,storage=<storage ID>]"),
		"id":                        api.Str().Fmt("pve-configid").Opt().TT("<string>"),
		"ionice":                    api.Int().Range(0, 8).Def(7).Opt().TT("<integer> (0 - 8)"),
		"lockwait":                  api.Int().Min(0).Def(180).Opt().TT("<integer> (0 - N)"),
		"mailnotification":          api.Str().Enums("always", "failure").Def("always").Opt(),
		"mailto":                    api.Str().Fmt("email-or-username-list").Opt().TT("<string>"),
		"maxfiles":                  api.Int().Min(1).Opt().TT("<integer> (1 - N)"),
		"mode":                      api.Str().Enums("snapshot", "suspend", "stop").Def("snapshot").Opt(),
		"node":                      api.Str().Fmt("pve-node").Opt().TT("<string>"),
		"notes-template":            api.Str().MaxLen(1024).Opt().Req("storage").TT("<string>"),
		"notification-mode":         api.Str().Enums("auto", "legacy-sendmail", "notification-system").Def("auto").Opt(),
		"pbs-change-detection-mode": api.Str().Enums("legacy", "data", "metadata").Opt(),
		"performance":               api.Str().Fmt("backup-performance").Opt().TT("[max-workers=<integer>] [,pbs-entries-max=<integer>]"),
		"pigz":                      api.Int().Def(0).Opt().TT("<integer>"),
		"pool":                      api.Str().Opt().TT("<string>"),
		"protected":                 api.Bool().Opt().Req("storage").TT("<boolean>"),
		"prune-backups":             api.Str().Fmt("prune-backups").Def("keep-all=1").Opt().TT("[keep-all=<1|0>] [,keep-daily=<N>] [,keep-hourly=<N>] [,keep-last=<N>] [,keep-monthly=<N>] [,keep-weekly=<N>] [,keep-yearly=<N>]"),
		"quiet":                     api.Bool().Def(0).Opt().TT("<boolean>"),
		"remove":                    api.Bool().Def(1).Opt().TT("<boolean>"),
		"repeat-missed":             api.Bool().Def(0).Opt().TT("<boolean>"),
		"schedule":                  api.Str().Fmt("pve-calendar-event").MaxLen(128).Opt().TT("<string>"),
		"script":                    api.Str().Opt().TT("<string>"),
		"starttime":                 api.Str().Pat("\\d{1,2}:\\d{1,2}").Opt().TT("HH:MM"),
		"stdexcludes":               api.Bool().Def(1).Opt().TT("<boolean>"),
		"stop":                      api.Bool().Def(0).Opt().TT("<boolean>"),
		"stopwait":                  api.Int().Min(0).Def(10).Opt().TT("<integer> (0 - N)"),
		"storage":                   api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>"),
		"tmpdir":                    api.Str().Opt().TT("<string>"),
		"vmid":                      api.Str().Fmt("pve-vmid-list").Opt().TT("<string>"),
		"zstd":                      api.Int().Def(1).Opt().TT("<integer>"),
	}
}

// ReplicationJobParams returns the parameters of POST /cluster/replication,
// the options of a replication.cfg section (less id and type).
func ReplicationJobParams() map[string]*api.Schema {
	return map[string]*api.Schema{
		"comment":    api.Str().MaxLen(4096).Opt().TT("<string>"),
		"disable":    api.Bool().Opt().TT("<boolean>"),
		"id":         api.Str().Fmt("pve-replication-job-id").Pat(`[1-9][0-9]{2,8}-\d{1,9}`),
		"rate":       api.Num().Min(1).Opt().TT("<number> (1 - N)"),
		"remove_job": api.Str().Enums("local", "full").Opt(),
		"schedule":   api.Str().Fmt("pve-calendar-event").MaxLen(128).Def("*/15").Opt().TT("<string>"),
		"source":     api.Str().Fmt("pve-node").Opt().TT("<string>"),
		"target":     api.Str().Fmt("pve-node").TT("<string>"),
		"type":       api.Str().Enums("local"),
	}
}
