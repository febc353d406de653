package nodes

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// pruneTypeText is the typetext of PVE's prune-backups standard option.
const pruneTypeText = "[keep-all=<1|0>] [,keep-daily=<N>] [,keep-hourly=<N>] [,keep-last=<N>] [,keep-monthly=<N>] [,keep-weekly=<N>] [,keep-yearly=<N>]"

// pruneMethods are GET and DELETE /nodes/{node}/storage/{storage}/prunebackups
// (PVE's API2/Storage/PruneBackups.pm): the dry run listing what a prune
// would keep and remove, and the prune itself as a "prunebackups" task.
func (d Deps) pruneMethods() []api.Method {
	params := func(vmidDesc string) map[string]*api.Schema {
		return map[string]*api.Schema{
			"node":    api.Str().Fmt("pve-node").TT("<string>"),
			"storage": api.Str().Fmt("pve-storage-id").TT("<storage ID>"),
			"prune-backups": api.Str().Fmt("prune-backups").Opt().TT(pruneTypeText).
				Desc("Use these retention options instead of those from the storage configuration."),
			"type": api.Str().Enums("qemu", "lxc").Opt().
				Desc("Either 'qemu' or 'lxc'. Only consider backups for guests of this type."),
			"vmid": api.Int().Fmt("pve-vmid").Range(100, 999999999).Opt().TT("<integer> (100 - 999999999)").
				Desc(vmidDesc),
		}
	}
	return []api.Method{
		{
			Name: "dryrun", Path: "/nodes/{node}/storage/{storage}/prunebackups", HTTP: "GET",
			Description: "Get prune information for backups. NOTE: this is only a preview and might not be " +
				"what a subsequent prune call does if backups are removed/added in the meantime.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Check: []any{"perm", "/storage/{storage}", []any{"Datastore.Audit", "Datastore.AllocateSpace"}, "any", 1}},
			Params:      params("Only consider backups for this guest."),
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"ctime": api.Int().Desc("Creation time of the backup (seconds since the UNIX epoch)."),
				"mark": api.Str().Enums(storage.PruneKeep, storage.PruneRemove, storage.PruneProtected, storage.PruneRenamed).
					Desc("Whether the backup would be kept or removed. Backups that are protected or don't use the standard naming scheme are not removed."),
				"type":  api.Str().Desc("One of 'qemu', 'lxc', 'openvz' or 'unknown'."),
				"vmid":  api.Int().Opt().Desc("The VM the backup belongs to."),
				"volid": api.Str().Desc("Backup volume ID."),
			})),
			Handle: d.pruneDryRun,
		},
		{
			Name: "delete", Path: "/nodes/{node}/storage/{storage}/prunebackups", HTTP: "DELETE",
			Description: "Prune backups. Only those using the standard naming scheme are considered.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{
				Description: "You need the 'Datastore.Allocate' privilege on the storage " +
					"(or if a VM ID is specified, 'Datastore.AllocateSpace' and 'VM.Backup' for the VM).",
				User: "all",
			},
			Params:  params("Only prune backups for this VM."),
			Returns: api.Str(),
			Handle:  d.pruneDelete,
		},
	}
}

// pruneParams are the parsed parameters of both methods; keep is nil when
// the storage's own prune-backups setting applies.
type pruneParams struct {
	sid  string
	keep *storage.PruneOptions
	typ  string
	vmid int
}

func parsePruneParams(p api.Params) (pruneParams, error) {
	pp := pruneParams{sid: p.Get("storage"), typ: p.Get("type"), vmid: int(p.Int("vmid", 0))}
	if s, ok := p.String("prune-backups"); ok {
		o, err := storage.ParsePruneOptions(s)
		if err != nil {
			return pruneParams{}, api.ParamError(map[string]string{"prune-backups": "invalid format - " + err.Error()})
		}
		pp.keep = &o
	}
	return pp, nil
}

// prune is PVE's PVE::Storage::prune_backups on this node: the storage must
// exist and hold backups; without options given its own prune-backups
// setting applies (and must be there); activation checks that the storage
// is enabled on node.
func (d Deps) prune(ctx context.Context, node string, pp pruneParams, dryRun bool, logf func(format string, a ...any)) ([]storage.PruneEntry, error) {
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	s, err := section(cfg, pp.sid)
	if err != nil {
		return nil, err
	}
	if !s.HasContent(storage.VTypeBackup) {
		return nil, fmt.Errorf("storage '%s' does not support backups", s.ID)
	}
	keep := pp.keep
	if keep == nil {
		v, ok := s.Options["prune-backups"]
		if !ok {
			return nil, fmt.Errorf("no prune-backups options configured for storage '%s'", s.ID)
		}
		o, err := storage.ParsePruneOptions(v)
		if err != nil {
			return nil, fmt.Errorf("storage '%s': prune-backups: %v", s.ID, err)
		}
		keep = &o
	}
	if err := checkEnabled(s, node); err != nil {
		return nil, err
	}
	dir, err := d.dirOf(s)
	if err != nil {
		return nil, err
	}
	return dir.PruneBackups(ctx, *keep, pp.typ, pp.vmid, dryRun, time.Local, logf)
}

// pruneDryRun is GET .../prunebackups: the backups with the mark a prune
// would give them.
func (d Deps) pruneDryRun(ctx context.Context, r *api.Request) (any, error) {
	pp, err := parsePruneParams(r.Params)
	if err != nil {
		return nil, err
	}
	list, err := d.prune(ctx, r.NodeName, pp, true, nil)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []storage.PruneEntry{}
	}
	return list, nil
}

// pruneDelete is DELETE .../prunebackups: after the permission check (on
// the storage, or for one guest on the storage and the guest) a
// "prunebackups" task prunes; the storage itself is looked up by the task,
// as in PVE.
func (d Deps) pruneDelete(ctx context.Context, r *api.Request) (any, error) {
	pp, err := parsePruneParams(r.Params)
	if err != nil {
		return nil, err
	}
	caller := r.Identity.AuthID
	if pp.vmid != 0 {
		if err := d.check(caller, "/storage/"+pp.sid, false, "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
		if err := d.check(caller, "/vms/"+strconv.Itoa(pp.vmid), false, "VM.Backup"); err != nil {
			return nil, err
		}
	} else if err := d.check(caller, "/storage/"+pp.sid, false, "Datastore.Allocate"); err != nil {
		return nil, err
	}
	if d.Storage == nil || d.Storage.Config == nil {
		return nil, errNoStorage()
	}
	if d.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	node := r.NodeName
	id := pp.sid
	if pp.vmid != 0 {
		id = strconv.Itoa(pp.vmid) + "@" + pp.sid
	}
	worker := func(ctx context.Context, l *tasks.Log) error {
		logf := func(format string, a ...any) {
			if rest, ok := strings.CutPrefix(format, "WARN: "); ok {
				l.Warnf(rest, a...)
				return
			}
			l.Printf(format, a...)
		}
		_, err := d.prune(ctx, node, pp, false, logf)
		return err
	}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "prunebackups", ID: id, User: caller}, worker)
	if err != nil {
		return nil, err
	}
	return upid.String(), nil
}
