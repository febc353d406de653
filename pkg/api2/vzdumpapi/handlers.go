package vzdumpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmlist"
	"github.com/pvenode/pvenode/pkg/vzdump"
)

// DefaultDefaultsFile is PVE's node-local vzdump defaults file.
const DefaultDefaultsFile = "/etc/vzdump.conf"

// PrivChecker answers privilege questions (the api.Authenticator has it).
type PrivChecker interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
}

// Deps are the collaborators of the backup methods. Config, Privs and
// Storage are needed everywhere; Engine and Tasks only where the protected
// methods run (pvedaemon).
type Deps struct {
	Config  *pvefs.Root
	Privs   PrivChecker
	Storage *storage.Host
	Engine  *vzdump.Engine
	Tasks   *tasks.Manager
	// DefaultsFile is vzdump.conf (default DefaultDefaultsFile).
	DefaultsFile string
}

func (d *Deps) can(authid, path string, anyOf bool, privs ...string) bool {
	if authid == api.RootUser {
		return true
	}
	return d.Privs != nil && d.Privs.CheckPrivs(authid, path, privs, anyOf)
}

func (d *Deps) check(authid, path string, anyOf bool, privs ...string) error {
	if d.can(authid, path, anyOf, privs...) {
		return nil
	}
	return api.Errorf(http.StatusForbidden, "Permission check failed (%s, %s)", path, strings.Join(privs, "|"))
}

// readDefaults reads vzdump.conf ("key: value" lines, # comments): the
// known job options only. A missing file gives none.
func (d *Deps) readDefaults() (map[string]string, error) {
	name := d.DefaultsFile
	if name == "" {
		name = DefaultDefaultsFile
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := jobProps(false)
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 10000; n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, ok := known[k]; ok {
			out[k] = v
		}
	}
	return out, sc.Err()
}

// typed converts a string value to the JSON type of its option.
func typed(key, v string) any {
	s := jobProps(false)[key]
	if s == nil {
		return v
	}
	switch s.Type {
	case "integer":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case "boolean":
		switch api.NormBool(v) {
		case "1":
			return 1
		case "0":
			return 0
		}
	}
	return v
}

// defaults is GET /nodes/{node}/vzdump/defaults.
func (d *Deps) defaults(_ context.Context, r *api.Request) (any, error) {
	authid := r.Identity.AuthID
	conf, err := d.readDefaults()
	if err != nil {
		return nil, err
	}
	if s, ok := r.Params.String("storage"); ok {
		conf["storage"] = s
	}
	if conf["dumpdir"] == "" && conf["storage"] == "" {
		conf["storage"] = "local"
	}
	if sid := conf["storage"]; sid != "" {
		if err := d.check(authid, "/storage/"+sid, true, "Datastore.Audit", "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
		if d.Storage != nil {
			dir, err := d.Storage.Storage(sid)
			if err != nil {
				return nil, err
			}
			if p, err := dir.SubDir(storage.VTypeBackup); err == nil {
				conf["dumpdir"] = p
			}
			if pb := dir.Section.Options["prune-backups"]; pb != "" {
				conf["prune-backups"] = pb
			}
		}
	}
	if pb, ok := conf["prune-backups"]; ok {
		o, err := storage.ParsePruneOptions(pb)
		if err != nil {
			return nil, fmt.Errorf("prune-backups: %w", err)
		}
		conf["prune-backups"] = o.String()
	}
	if !d.can(authid, "/nodes/"+r.NodeName, false, "Sys.Audit") {
		for _, k := range []string{"mailto", "tmpdir", "dumpdir", "script", "ionice"} {
			delete(conf, k)
		}
	}
	if pool, ok := conf["pool"]; ok && !d.can(authid, "/pool/"+pool, false, "Pool.Audit") {
		delete(conf, "pool")
	}
	out := map[string]any{}
	for k, v := range conf {
		out[k] = typed(k, v)
	}
	return out, nil
}

// extractConfig is GET /nodes/{node}/vzdump/extractconfig.
func (d *Deps) extractConfig(_ context.Context, r *api.Request) (any, error) {
	if d.Storage == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: backup archives in this daemon")
	}
	authid := r.Identity.AuthID
	volume := r.Params.Get("volume")
	bv, err := vzdump.ResolveBackupVolume(d.Storage, volume)
	if err != nil {
		return nil, api.ParamError(map[string]string{"volume": err.Error()})
	}
	if bv.Storage == "" {
		if authid != api.RootUser {
			return nil, api.Errorf(http.StatusForbidden, "Only root can pass arbitrary filesystem paths.")
		}
	} else {
		if err := d.check(authid, "/storage/"+bv.Storage, false, "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
		if err := d.check(authid, "/vms/"+strconv.Itoa(bv.OwnerVMID), false, "VM.Backup"); err != nil {
			return nil, err
		}
	}
	conf, err := vzdump.ExtractConfig(bv.Path)
	if err != nil {
		return nil, err
	}
	return conf, nil
}

// notImplementedParams are accepted options this build does not act on;
// the job logs them.
var notImplementedParams = []string{"mailto", "mailnotification", "notification-mode", "script", "pigz", "performance", "fleecing", "exclude-path", "stdexcludes", "pbs-change-detection-mode", "tmpdir", "ionice", "quiet", "job-id"}

// vzdump is POST /nodes/{node}/vzdump: checks, then a "vzdump" task
// backing up the selected local guests one after another.
func (d *Deps) vzdump(ctx context.Context, r *api.Request) (any, error) {
	if d.Engine == nil || d.Tasks == nil || d.Config == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: backups in this daemon")
	}
	authid := r.Identity.AuthID
	if n, ok := r.Params.String("node"); ok && n != r.NodeName {
		return nil, api.ParamError(map[string]string{"node": "option is only allowed on the command line interface."})
	}
	if r.Params.Bool("stdout", false) {
		return nil, api.ParamError(map[string]string{"stdout": "option is only allowed on the command line interface."})
	}
	// Options: the request over vzdump.conf.
	opt, err := d.readDefaults()
	if err != nil {
		return nil, err
	}
	for k := range r.Params {
		if k == "node" {
			continue
		}
		opt[k] = r.Params.Get(k)
	}
	if authid != api.RootUser {
		for _, k := range []string{"tmpdir", "dumpdir", "script", "job-id"} {
			if _, ok := r.Params.String(k); ok {
				return nil, api.ParamError(map[string]string{k: "Only root may set this option."})
			}
		}
		for _, k := range []string{"bwlimit", "performance", "ionice"} {
			if _, ok := r.Params.String(k); ok {
				if err := d.check(authid, "/", false, "Sys.Modify"); err != nil {
					return nil, err
				}
			}
		}
	}
	if opt["stop"] == "1" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: stopping running backup jobs (stop)")
	}
	if opt["pool"] != "" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: backing up the guests of a pool (pool)")
	}
	// PVE's verify_vzdump_parameters on the request.
	hasVMID := r.Params.Get("vmid") != ""
	switch {
	case r.Params.Bool("all", false) && hasVMID:
		return nil, api.ParamError(map[string]string{"all": "option conflicts with option 'vmid'"})
	case r.Params.Has("exclude") && hasVMID:
		return nil, api.ParamError(map[string]string{"exclude": "option conflicts with option 'vmid'"})
	case r.Params.Has("pool") && hasVMID:
		return nil, api.ParamError(map[string]string{"pool": "option conflicts with option 'vmid'"})
	}
	if r.Params.Has("exclude") {
		opt["all"] = "1"
	}
	if !hasVMID && opt["all"] != "1" && !r.Params.Bool("stop", false) && opt["pool"] == "" {
		return nil, api.ParamError(map[string]string{"vmid": "property is missing"})
	}
	if strings.ContainsAny(opt["notes-template"], "\n\r") {
		return nil, api.ParamError(map[string]string{"notes-template": "notes-template must be a single line"})
	}
	if _, err := vzdump.CompressionSuffix(opt["compress"]); err != nil {
		if opt["compress"] == "1" || opt["compress"] == "lzo" {
			return nil, api.Errorf(http.StatusNotImplemented, "%v", err)
		}
		return nil, api.ParamError(map[string]string{"compress": err.Error()})
	}
	if opt["dumpdir"] == "" && opt["storage"] == "" {
		opt["storage"] = "local"
	}
	if opt["dumpdir"] != "" && r.Params.Has("storage") {
		return nil, api.ParamError(map[string]string{"storage": "option conflicts with option 'dumpdir'"})
	}
	if opt["dumpdir"] != "" {
		delete(opt, "storage")
	}
	if sid := opt["storage"]; sid != "" {
		if err := d.check(authid, "/storage/"+sid, false, "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
		if r.Params.Has("prune-backups") {
			if err := d.check(authid, "/storage/"+sid, false, "Datastore.Allocate"); err != nil {
				return nil, err
			}
		}
	}
	vmids, skipped, err := d.selectGuests(r.NodeName, opt)
	if err != nil {
		return nil, err
	}
	for _, vmid := range vmids {
		if err := d.check(authid, "/vms/"+strconv.Itoa(vmid), false, "VM.Backup"); err != nil {
			return nil, err
		}
	}
	if len(vmids) == 0 && opt["all"] != "1" {
		return "OK", nil
	}
	jo, err := jobOptions(opt)
	if err != nil {
		return nil, err
	}
	jo.CmdLine = commandLine(r.Params)
	id := ""
	if len(vmids) == 1 {
		id = strconv.Itoa(vmids[0])
	}
	jo.Notes = skipped
	for _, k := range notImplementedParams {
		if _, ok := r.Params.String(k); ok {
			jo.Notes = append(jo.Notes, fmt.Sprintf("option '%s' is not implemented in this build and is ignored", k))
		}
	}
	worker := func(ctx context.Context, l *tasks.Log) error {
		_, err := d.Engine.Run(ctx, vmids, jo, l)
		return err
	}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "vzdump", ID: id, User: authid}, worker)
	if err != nil {
		return nil, err
	}
	return upid.String(), nil
}

// selectGuests is PVE's get_included_guests for this node: the listed
// vmids (unknown ones included, to fail visibly) or all local guests but
// the excluded. Guests on other nodes are skipped; containers are not
// implemented (an error when listed, skipped with a note for all).
func (d *Deps) selectGuests(node string, opt map[string]string) (vmids []int, notes []string, err error) {
	list, err := vmlist.Read(d.Config)
	if err != nil {
		return nil, nil, err
	}
	var candidates []int
	switch {
	case opt["vmid"] != "":
		for _, s := range storage.SplitOptList(opt["vmid"]) {
			n, err := strconv.Atoi(s)
			if err != nil || n < 100 || n > 999999999 {
				return nil, nil, api.ParamError(map[string]string{"vmid": fmt.Sprintf("invalid VMID '%s'", s)})
			}
			if !slices.Contains(candidates, n) {
				candidates = append(candidates, n)
			}
		}
	case opt["all"] == "1":
		exclude := map[int]bool{}
		for _, s := range storage.SplitOptList(opt["exclude"]) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, nil, api.ParamError(map[string]string{"exclude": fmt.Sprintf("invalid VMID '%s'", s)})
			}
			exclude[n] = true
		}
		for id, g := range list {
			if !exclude[id] && g.Node == node {
				candidates = append(candidates, id)
			}
		}
		sort.Ints(candidates)
	default:
		return nil, nil, nil
	}
	var skip []string
	for _, id := range candidates {
		g, ok := list[id]
		switch {
		case ok && g.Node != node:
			skip = append(skip, strconv.Itoa(id))
		case ok && g.Type != "qemu":
			if opt["all"] != "1" {
				return nil, nil, api.Errorf(http.StatusNotImplemented, "not implemented: backup of containers (CT %d)", id)
			}
			notes = append(notes, fmt.Sprintf("skip CT %d: container backups are not implemented", id))
		default:
			vmids = append(vmids, id)
		}
	}
	if len(skip) > 0 {
		notes = append(notes, "skip external VMs: "+strings.Join(skip, ", "))
	}
	return vmids, notes, nil
}

// jobOptions converts the merged string options.
func jobOptions(opt map[string]string) (vzdump.Options, error) {
	intOpt := func(k string, def int64) (int64, error) {
		v, ok := opt[k]
		if !ok || v == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 && k != "zstd" {
			return 0, api.ParamError(map[string]string{k: fmt.Sprintf("invalid integer '%s'", v)})
		}
		return n, nil
	}
	o := vzdump.Options{
		Mode: opt["mode"], Compress: opt["compress"], Storage: opt["storage"], DumpDir: opt["dumpdir"],
		NotesTemplate: opt["notes-template"], Protected: api.NormBool(opt["protected"]) == "1",
		Remove: opt["remove"] == "" || api.NormBool(opt["remove"]) == "1", PruneBackups: opt["prune-backups"],
	}
	bw, err := intOpt("bwlimit", 0)
	if err != nil {
		return o, err
	}
	o.BwLimit = bw
	z, err := intOpt("zstd", 1)
	if err != nil {
		return o, err
	}
	o.Zstd = int(z)
	sw, err := intOpt("stopwait", 10)
	if err != nil {
		return o, err
	}
	o.StopWait = time.Duration(sw) * time.Minute
	lw, err := intOpt("lockwait", 180)
	if err != nil {
		return o, err
	}
	o.LockWait = time.Duration(lw) * time.Minute
	if o.PruneBackups == "" && opt["maxfiles"] != "" {
		// Deprecated maxfiles is keep-last, as PVE converts it.
		o.PruneBackups = "keep-last=" + opt["maxfiles"]
	}
	if o.PruneBackups != "" {
		if _, err := storage.ParsePruneOptions(o.PruneBackups); err != nil {
			return o, api.ParamError(map[string]string{"prune-backups": err.Error()})
		}
	}
	return o, nil
}

// commandLine is PVE's command_line: "vzdump <vmids> --key value ...".
func commandLine(p api.Params) string {
	var b strings.Builder
	b.WriteString("vzdump")
	if v, ok := p.String("vmid"); ok {
		b.WriteString(" " + strings.Join(storage.SplitOptList(v), " "))
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "vmid" && k != "stdout" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := p.Get(k)
		if s := jobProps(false)[k]; s != nil && s.Type == "boolean" {
			v = api.NormBool(v)
		}
		b.WriteString(" --" + k + " " + v)
	}
	return b.String()
}
