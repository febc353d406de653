package nodes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// StorageDeps are the collaborators of /nodes/{node}/storage (PVE's
// API2/Storage/Status.pm and Content.pm). Only storages of type "dir" are
// operated; other types are listed inactive and refused with 501.
type StorageDeps struct {
	// Config is the cluster config root holding storage.cfg.
	Config *pvefs.Root
	// Dir are the host options of every dir storage (qemu-img, lock dir).
	Dir storage.DirOptions
	// LocalPath replaces the path PVE forces on the "local" storage
	// (/var/lib/vz) when set: the embedded installation under a prefix
	// keeps its images there instead of on the host.
	LocalPath string
	// MaxUpload bounds an uploaded file (bytes) below the target's free
	// space, which always bounds it; 0 for no other bound.
	MaxUpload int64
}

func (d Deps) storageMethods() []api.Method {
	node := func() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }
	sid := func() *api.Schema { return api.Str().Fmt("pve-storage-id").TT("<storage ID>") }
	vmid := func() *api.Schema {
		return api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)")
	}
	auditOrSpace := api.Permissions{Check: []any{"perm", "/storage/{storage}", []any{"Datastore.Audit", "Datastore.AllocateSpace"}, "any", 1}}
	statusProps := func() map[string]*api.Schema {
		return map[string]*api.Schema{
			"active":  api.Bool().Opt(),
			"avail":   api.Int().Opt(),
			"content": api.Str().Fmt("pve-storage-content-list"),
			"enabled": api.Bool().Opt(),
			"shared":  api.Bool().Opt(),
			"total":   api.Int().Opt(),
			"type":    api.Str(),
			"used":    api.Int().Opt(),
		}
	}
	indexProps := statusProps()
	indexProps["storage"] = api.Str().Fmt("pve-storage-id")
	indexProps["used_fraction"] = api.Num().Opt()
	indexProps["select_existing"] = api.Bool().Opt()
	indexProps["formats"] = api.Obj(map[string]*api.Schema{
		"default":   api.Str().Enums("qcow2", "raw", "subvol", "vmdk"),
		"supported": api.Arr(api.Str().Enums("qcow2", "raw", "subvol", "vmdk")),
	}).Opt()
	return []api.Method{
		{
			Name: "index", Path: "/nodes/{node}/storage", HTTP: "GET",
			Description: "Get status for all datastores.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"content": api.Str().Fmt("pve-storage-content-list").Opt().TT("<string>"),
				"enabled": api.Bool().Def(0).Opt().TT("<boolean>"),
				"format":  api.Bool().Def(0).Opt().TT("<boolean>"),
				"node":    node(),
				"storage": sid().Opt(),
				"target":  node().Opt(),
			},
			Returns: api.Arr(api.Obj(indexProps)).WithLinks(api.Link{Href: "{storage}", Rel: "child"}),
			Handle:  d.storageIndex,
		},
		{
			Name: "diridx", Path: "/nodes/{node}/storage/{storage}", HTTP: "GET",
			Description: "",
			Permissions: auditOrSpace,
			Params:      map[string]*api.Schema{"node": node(), "storage": sid()},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"subdir": api.Str(),
			})).WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
			// The children this build implements (PVE lists eleven).
			Handle: api.DirIndex("subdir", "content", "prunebackups", "rrddata", "status", "upload"),
		},
		{
			Name: "read_status", Path: "/nodes/{node}/storage/{storage}/status", HTTP: "GET",
			Description: "Read storage status.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: auditOrSpace,
			Params:      map[string]*api.Schema{"node": node(), "storage": sid()},
			Returns:     api.Obj(statusProps()),
			Handle:      d.storageReadStatus,
		},
		{
			Name: "index", Path: "/nodes/{node}/storage/{storage}/content", HTTP: "GET",
			Description: "List storage content.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: auditOrSpace,
			Params: map[string]*api.Schema{
				"content": api.Str().Fmt("pve-storage-content").Opt().TT("<string>"),
				"node":    node(),
				"storage": sid(),
				"vmid":    vmid().Opt(),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"ctime":     api.Int().Min(0).Opt(),
				"encrypted": api.Str().Opt(),
				"format":    api.Str(),
				"notes":     api.Str().Opt(),
				"parent":    api.Str().Opt(),
				"protected": api.Bool().Opt(),
				"size":      api.Int(),
				"used":      api.Int().Opt(),
				"verification": api.Obj(map[string]*api.Schema{
					"state": api.Str(),
					"upid":  api.Str(),
				}).Opt(),
				"vmid":  api.Int().Opt(),
				"volid": api.Str(),
			})).WithLinks(api.Link{Href: "{volid}", Rel: "child"}),
			Handle: d.contentIndex,
		},
		{
			Name: "create", Path: "/nodes/{node}/storage/{storage}/content", HTTP: "POST",
			Description: "Allocate disk images.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Check: []any{"perm", "/storage/{storage}", []any{"Datastore.AllocateSpace"}}},
			Params: map[string]*api.Schema{
				"filename": api.Str().TT("<string>"),
				"format":   api.Str().Enums("raw", "qcow2", "subvol", "vmdk").Opt().Req("size"),
				"node":     node(),
				"size":     api.Str().Pat(`\d+[MG]?`),
				"storage":  sid(),
				"vmid":     vmid(),
			},
			Returns: api.Str(),
			Handle:  d.contentCreate,
		},
		{
			Name: "delete", Path: "/nodes/{node}/storage/{storage}/content/{volume}", HTTP: "DELETE",
			TailParam:   true, // volume IDs carry a "/" (PVE's fragmentDelimiter)
			Description: "Delete volume",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"delay":   api.Int().Range(1, 30).Opt().TT("<integer> (1 - 30)"),
				"node":    node(),
				"storage": sid().Opt(),
				"volume":  api.Str().TT("<string>"),
			},
			Returns: api.Str().Opt(),
			Handle:  d.contentDelete,
		},
		{
			Name: "info", Path: "/nodes/{node}/storage/{storage}/content/{volume}", HTTP: "GET",
			TailParam:   true, // volume IDs carry a "/" (PVE's fragmentDelimiter)
			Description: "Get volume attributes",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"node":    node(),
				"storage": sid().Opt(),
				"volume":  api.Str().TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"format":    api.Str(),
				"notes":     api.Str().Opt(),
				"path":      api.Str(),
				"protected": api.Bool().Opt(),
				"size":      api.Int(),
				"used":      api.Int(),
			}),
			Handle: d.contentInfo,
		},
		d.uploadMethod(),
	}
}

// errNoStorage answers a method called where d.Storage is not wired.
func errNoStorage() error {
	return api.Errorf(http.StatusNotImplemented, "not implemented: storage in this daemon")
}

// can reports whether authid holds privs (any of them with anyOf) on path;
// root@pam holds everything.
func (d Deps) can(authid, path string, anyOf bool, privs ...string) bool {
	return authid == api.RootUser || d.Privs.CheckPrivs(authid, path, privs, anyOf)
}

// check is PVE's $rpcenv->check (anyOf false) / check_any: a 403 naming the
// path and privileges when they are missing.
func (d Deps) check(authid, path string, anyOf bool, privs ...string) error {
	if d.can(authid, path, anyOf, privs...) {
		return nil
	}
	return api.PermissionDenied(path, privs...)
}

// storageConfig reads and parses storage.cfg. Like PVE, problems in the file
// drop what they concern and the rest is used.
func (d Deps) storageConfig() (*storage.Config, error) {
	if d.Storage == nil || d.Storage.Config == nil {
		return nil, errNoStorage()
	}
	h := storage.Host{Root: d.Storage.Config, Dir: d.Storage.Dir, LocalPath: d.Storage.LocalPath}
	return h.Config()
}

// section is PVE's storage_config: the section or "does not exist" (500).
func section(cfg *storage.Config, id string) (*storage.Section, error) {
	s, err := cfg.Lookup(id)
	if err != nil {
		return nil, fmt.Errorf("storage '%s' does not exist", id)
	}
	return s, nil
}

// opt returns a section option; for a type this build does not implement it
// is read from the verbatim body lines.
func opt(s *storage.Section, key string) string {
	if v, ok := s.Options[key]; ok {
		return v
	}
	for _, l := range s.Raw {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		if k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func listOpt(s *storage.Section, key string) []string {
	return storage.SplitOptList(opt(s, key))
}

func boolOpt(s *storage.Section, key string) bool { return opt(s, key) == "1" }

// onNode is PVE's storage_check_node.
func onNode(s *storage.Section, node string) bool {
	nodes := listOpt(s, "nodes")
	return len(nodes) == 0 || slices.Contains(nodes, node)
}

// checkEnabled is PVE's storage_check_enabled.
func checkEnabled(s *storage.Section, node string) error {
	if boolOpt(s, "disable") {
		return fmt.Errorf("storage '%s' is disabled", s.ID)
	}
	if !onNode(s, node) {
		return fmt.Errorf("storage '%s' is not available on node '%s'", s.ID, node)
	}
	return nil
}

// dirOf returns the dir plugin of s; other types are not implemented.
func (d Deps) dirOf(s *storage.Section) (*storage.Dir, error) {
	if s.Type != "dir" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: storage type '%s'", s.Type)
	}
	return storage.NewDir(s, d.Storage.Dir)
}

// storageFormats is the "formats" entry of format=1 (PVE's get_formats).
type storageFormats struct {
	Supported []string `json:"supported"`
	Default   string   `json:"default"`
}

// storageStatus is one entry of PVE's storage_info. Booleans are 0/1 as
// PVE's JSON has them.
type storageStatus struct {
	Storage      string          `json:"storage,omitempty"`
	Type         string          `json:"type"`
	Content      string          `json:"content"`
	Shared       int             `json:"shared"`
	Enabled      int             `json:"enabled"`
	Active       int             `json:"active"`
	Total        uint64          `json:"total"`
	Used         uint64          `json:"used"`
	Avail        uint64          `json:"avail"`
	UsedFraction *float64        `json:"used_fraction,omitempty"`
	Formats      *storageFormats `json:"formats,omitempty"`
	// Format is PVE's deprecated [{fmt: 1...}, default] pair.
	Format []any `json:"format,omitempty"`
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// storageInfo is PVE's storage_info for this node: every storage (with
// content set, only enabled ones allowing one of its types), activated and
// sized when enabled and of an implemented type.
func (d Deps) storageInfo(ctx context.Context, cfg *storage.Config, node string, content *string, withFormats bool) map[string]*storageStatus {
	var want []string
	if content != nil {
		want = listOpt(&storage.Section{Options: map[string]string{"c": *content}}, "c")
	}
	info := map[string]*storageStatus{}
	for _, s := range cfg.Sections {
		enabled := checkEnabled(s, node) == nil
		cts := listOpt(s, "content")
		if content != nil {
			if !enabled || !slices.ContainsFunc(want, func(c string) bool { return slices.Contains(cts, c) }) {
				continue
			}
		}
		slices.Sort(cts)
		st := &storageStatus{
			Type: s.Type, Content: strings.Join(cts, ","),
			Shared:  b2i(boolOpt(s, "shared") || storage.AlwaysShared(s.Type)),
			Enabled: b2i(enabled),
		}
		info[s.ID] = st
		if !enabled || s.Type != "dir" {
			continue
		}
		dir, err := d.dirOf(s)
		if err != nil {
			continue
		}
		if withFormats {
			def := dir.DefaultFormat()
			st.Formats = &storageFormats{Supported: []string{"qcow2", "raw", "subvol", "vmdk"}, Default: def}
			st.Format = []any{map[string]int{"qcow2": 1, "raw": 1, "subvol": 1, "vmdk": 1}, def}
		}
		if dir.Activate(ctx) != nil {
			continue // PVE warns and leaves it inactive
		}
		ds, err := dir.Status(ctx)
		if err != nil || !ds.Active {
			continue
		}
		st.Active, st.Total, st.Used, st.Avail = 1, ds.Total, ds.Used, ds.Avail
	}
	return info
}

// storageIndex is GET /nodes/{node}/storage: the storages the caller may
// audit or allocate space on, with their status.
func (d Deps) storageIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	p := r.Params
	var content *string
	if c, ok := p.String("content"); ok {
		content = &c
	}
	info := d.storageInfo(ctx, cfg, r.NodeName, content, p.Bool("format", false))
	want := p.Get("storage")
	if want != "" && info[want] == nil {
		return nil, api.ParamError(map[string]string{"storage": "No such storage."})
	}
	target := p.Get("target")
	if target == r.NodeName || target == "localhost" {
		target = ""
	}
	res := []*storageStatus{}
	for _, s := range cfg.Sections {
		st := info[s.ID]
		if st == nil || !d.can(r.Identity.AuthID, "/storage/"+s.ID, true, "Datastore.Audit", "Datastore.AllocateSpace") {
			continue
		}
		if want != "" && want != s.ID {
			continue
		}
		if p.Bool("enabled", false) && boolOpt(s, "disable") {
			continue
		}
		if target != "" && (st.Shared == 0 || !onNode(s, r.NodeName) || !onNode(s, target)) {
			continue
		}
		if st.Total > 0 {
			f := float64(st.Used) / float64(st.Total)
			st.UsedFraction = &f
		}
		st.Storage = s.ID
		res = append(res, st)
	}
	slices.SortFunc(res, func(a, b *storageStatus) int { return strings.Compare(a.Storage, b.Storage) })
	return res, nil
}

// storageReadStatus is GET /nodes/{node}/storage/{storage}/status.
func (d Deps) storageReadStatus(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	st := d.storageInfo(ctx, cfg, r.NodeName, nil, false)[r.Params.Get("storage")]
	if st == nil {
		return nil, api.ParamError(map[string]string{"storage": "No such storage."})
	}
	return st, nil
}

// checkVolumeAccess is PVE's check_volume_access for a volume of storage sid
// (vmid 0: the caller is no guest owner).
func (d Deps) checkVolumeAccess(authid, sid string, v *storage.Volume, volid string) error {
	path := "/storage/" + sid
	if d.can(authid, path, false, "Datastore.Allocate") {
		return nil
	}
	switch {
	case v.VType == storage.VTypeISO || v.VType == storage.VTypeVZTmpl || v.VType == storage.VTypeImport:
		return d.check(authid, path, true, "Datastore.AllocateSpace", "Datastore.Audit")
	case v.VType == storage.VTypeBackup && v.VMID != 0:
		if err := d.check(authid, path, false, "Datastore.AllocateSpace"); err != nil {
			return err
		}
		return d.check(authid, "/vms/"+strconv.Itoa(v.VMID), false, "VM.Backup")
	case (v.VType == storage.VTypeImages || v.VType == storage.VTypeRootdir) && v.VMID != 0:
		if err := d.check(authid, path, false, "Datastore.Audit"); err != nil {
			return err
		}
		return d.check(authid, "/vms/"+strconv.Itoa(v.VMID), false, "VM.Config.Disk")
	}
	return fmt.Errorf("missing privileges to access %s", volid)
}

// contentIndex is GET .../content: the volumes the caller may access.
func (d Deps) contentIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	sid := r.Params.Get("storage")
	s, err := section(cfg, sid)
	if err != nil {
		return nil, err
	}
	dir, err := d.dirOf(s)
	if err != nil {
		return nil, err
	}
	if err := checkEnabled(s, r.NodeName); err != nil {
		return nil, err
	}
	if err := dir.Activate(ctx); err != nil {
		return nil, err
	}
	o := storage.ListOptions{VMID: int(r.Params.Int("vmid", 0))}
	if c := r.Params.Get("content"); c != "" {
		o.Content = []string{c}
	}
	list, err := dir.List(ctx, o)
	if err != nil {
		return nil, err
	}
	res := []storage.VolumeInfo{}
	for _, it := range list {
		_, volname, err := storage.ParseVolumeID(it.VolID)
		if err != nil {
			continue
		}
		v, err := storage.ParseVolname(volname)
		if err != nil || d.checkVolumeAccess(r.Identity.AuthID, sid, v, it.VolID) != nil {
			continue
		}
		res = append(res, it)
	}
	return res, nil
}

var (
	sizeKRe = regexp.MustCompile(`^(\d+)([MG]?)$`)
	nameFmt = regexp.MustCompile(`\.(raw|qcow2|vmdk)$`)
)

// contentCreate is POST .../content: allocate a disk image (PVE's
// vdisk_alloc); size is in KiB with optional M and G suffixes.
func (d Deps) contentCreate(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	m := sizeKRe.FindStringSubmatch(p.Get("size"))
	var size uint64
	if m != nil {
		n, err := strconv.ParseUint(m[1], 10, 64)
		mult := map[string]uint64{"": 1, "M": 1024, "G": 1024 * 1024}[m[2]]
		if err != nil || n > (1<<63)/mult {
			m = nil
		} else {
			size = n * mult
		}
	}
	if m == nil {
		return nil, api.ParamError(map[string]string{"size": fmt.Sprintf("unable to parse size '%s'", p.Get("size"))})
	}
	name := p.Get("filename")
	format := p.Get("format")
	if fm := nameFmt.FindStringSubmatch(name); fm != nil {
		if format != "" && format != fm[1] {
			return nil, api.ParamError(map[string]string{"format": fmt.Sprintf("different storage formats (%s != %s)", format, fm[1])})
		}
		format = fm[1]
	}
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, err
	}
	s, err := section(cfg, p.Get("storage"))
	if err != nil {
		return nil, err
	}
	dir, err := d.dirOf(s)
	if err != nil {
		return nil, err
	}
	if err := checkEnabled(s, r.NodeName); err != nil {
		return nil, err
	}
	return dir.Alloc(ctx, int(p.Int("vmid", 0)), format, name, size)
}

// realVolumeID is Content.pm's real_volume_id: volume is a full volume ID
// (matching storage when given) or a volume name of storage.
func realVolumeID(sid, volume string) (volid, storeid string, err error) {
	if strings.Contains(volume, ":") {
		s, _, perr := storage.ParseVolumeID(volume)
		if perr != nil {
			return "", "", api.ParamError(map[string]string{"volume": perr.Error()})
		}
		if sid != "" && s != sid {
			return "", "", api.ParamError(map[string]string{"volume": fmt.Sprintf("storage ID mismatch (%s != %s)", s, sid)})
		}
		return volume, s, nil
	}
	if sid == "" {
		return "", "", api.ParamError(map[string]string{"volume": "no storage specified - incomplete volume ID"})
	}
	return sid + ":" + volume, sid, nil
}

// volume resolves the volume of a .../content/{volume} call on a dir
// storage: its section, plugin, parsed name and path.
func (d Deps) volume(r *api.Request) (volid string, s *storage.Section, dir *storage.Dir, v *storage.Volume, path string, err error) {
	volid, sid, err := realVolumeID(r.Params.Get("storage"), r.Params.Get("volume"))
	if err != nil {
		return
	}
	cfg, err := d.storageConfig()
	if err != nil {
		return
	}
	if s, err = section(cfg, sid); err != nil {
		return
	}
	if dir, err = d.dirOf(s); err != nil {
		return
	}
	path, v, err = dir.VolumePath(volid)
	return
}

// volumeInfo is the answer of GET .../content/{volume}.
type volumeInfo struct {
	Path      string  `json:"path"`
	Size      int64   `json:"size"`
	Used      int64   `json:"used"`
	Format    string  `json:"format"`
	Notes     *string `json:"notes,omitempty"`
	Protected *int    `json:"protected,omitempty"`
}

// contentInfo is GET .../content/{volume}: path, sizes and format (PVE's
// volume_size_info), and for backups notes and protection.
func (d Deps) contentInfo(ctx context.Context, r *api.Request) (any, error) {
	volid, s, _, v, path, err := d.volume(r)
	if err != nil {
		return nil, err
	}
	if err := d.checkVolumeAccess(r.Identity.AuthID, s.ID, v, volid); err != nil {
		return nil, err
	}
	res := volumeInfo{Path: path}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("volume_size_info on '%s' failed - no format", volid)
	case st.IsDir():
		if v.Format != "subvol" {
			return nil, fmt.Errorf("volume_size_info on '%s' failed - no format", volid)
		}
		res.Format = "subvol"
	default:
		format := v.Format
		if !slices.Contains([]string{"raw", "qcow2", "vmdk"}, format) {
			format = "raw" // PVE: fallback for formats qemu-img is not asked about
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := d.Storage.Dir.QemuImg.Info(qctx, path, format)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("volume_size_info on '%s' failed - no format", volid)
		}
		res.Format, res.Size, res.Used = info.Format, info.VirtualSize, info.ActualSize
		if res.Size == 0 {
			return nil, fmt.Errorf("volume '%s' has size zero", volid)
		}
	}
	if v.VType == storage.VTypeBackup {
		notes := ""
		if b, err := os.ReadFile(path + ".notes"); err == nil {
			notes = string(b)
		}
		_, perr := os.Lstat(path + ".protected")
		prot := b2i(perr == nil)
		res.Notes, res.Protected = &notes, &prot
	}
	return res, nil
}

// vzdumpStdRe matches a standard vzdump archive name; group 1 is the part
// its .log file is named after (PVE's archive_info).
var vzdumpStdRe = regexp.MustCompile(`^(vzdump-(?:lxc|openvz|qemu)-[1-9][0-9]{2,8}-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.`)

// contentDelete is DELETE .../content/{volume}: a worker task "imgdel"
// frees the volume; with delay the call waits up to that many seconds and
// answers null on success.
func (d Deps) contentDelete(ctx context.Context, r *api.Request) (any, error) {
	volid, s, dir, v, path, err := d.volume(r)
	if err != nil {
		return nil, err
	}
	caller := r.Identity.AuthID
	if v.VType == storage.VTypeBackup && v.VMID != 0 {
		if err := d.check(caller, "/storage/"+s.ID, false, "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
		if err := d.check(caller, "/vms/"+strconv.Itoa(v.VMID), false, "VM.Backup"); err != nil {
			return nil, err
		}
	} else if err := d.check(caller, "/storage/"+s.ID, false, "Datastore.Allocate"); err != nil {
		return nil, err
	}
	if d.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	_, volname, _ := storage.ParseVolumeID(volid)
	node := r.NodeName
	worker := func(ctx context.Context, l *tasks.Log) error {
		if err := checkEnabled(s, node); err != nil {
			return err
		}
		if err := baseInUse(ctx, dir, v, volname); err != nil {
			return err
		}
		if err := dir.Free(ctx, volname); err != nil {
			return err
		}
		l.Printf("Removed volume '%s'", volid)
		if v.VType == storage.VTypeBackup {
			if m := vzdumpStdRe.FindStringSubmatch(filepath.Base(path)); m != nil {
				for _, aux := range []string{filepath.Dir(path) + "/" + m[1] + ".log", path + ".notes"} {
					if err := os.Remove(aux); err != nil && !errors.Is(err, fs.ErrNotExist) {
						l.Warnf("Removing %s file failed: %v", strings.TrimPrefix(filepath.Ext(aux), "."), err)
					}
				}
			}
		}
		return nil
	}
	id := s.ID
	if v.VMID != 0 {
		id = strconv.Itoa(v.VMID) + "@" + s.ID
	}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "imgdel", ID: id, User: caller}, worker)
	if err != nil {
		return nil, err
	}
	if delay := r.Params.Int("delay", 0); delay > 0 {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(delay)*time.Second)
		werr := d.Tasks.Wait(wctx, upid.String())
		cancel()
		if werr == nil {
			status, err := d.Tasks.ExitStatus(upid.String())
			if err != nil {
				return nil, err
			}
			if !tasks.IsErrorStatus(status) {
				return nil, nil
			}
			return nil, errors.New(status)
		}
	}
	return upid.String(), nil
}

// baseInUse is the check of PVE's vdisk_free that a base image has no
// linked clone on the storage.
func baseInUse(ctx context.Context, dir *storage.Dir, v *storage.Volume, volname string) error {
	if !v.IsBase {
		return nil
	}
	list, err := dir.List(ctx, storage.ListOptions{Content: []string{storage.VTypeImages, storage.VTypeRootdir}})
	if err != nil {
		return err
	}
	for _, it := range list {
		_, name, err := storage.ParseVolumeID(it.VolID)
		if err != nil {
			continue
		}
		if c, err := storage.ParseVolname(name); err == nil && c.BaseName == v.Name && c.BaseVMID == v.VMID {
			return fmt.Errorf("base volume '%s' is still in use by linked clones", volname)
		}
	}
	return nil
}
