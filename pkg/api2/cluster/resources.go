package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strconv"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// Access answers privilege questions and gives the parsed user.cfg (pools)
// (the api.Authenticator has both).
type Access interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
	UserCfg() *access.UserCfg
}

// resource is one prepared entry of /cluster/resources: its JSON and what
// decides whether a caller sees it.
type resource struct {
	kind string // pool, qemu, lxc, node, storage
	// path and privs are the ACL check for the entry (PVE's, with the
	// "any" flag); privs is one of the shared slices below.
	path  string
	privs []string
	body  []byte // the entry as JSON
	// pool: a guest's pool, removed (body without it) for callers without
	// Pool.Audit on it.
	pool       string
	bodyNoPool []byte
	// node entries for callers without Sys.Audit on the node (no figures).
	bodyMinimal []byte
}

// The privileges the entries are checked for, shared and never modified.
var (
	vmAudit        = []string{"VM.Audit"}
	poolAudit      = []string{"Pool.Audit"}
	sysAudit       = []string{"Sys.Audit"}
	datastoreAudit = []string{"Datastore.Audit"}
)

// resourceSet is every entry, built once per input (view, guest list,
// user.cfg, storage.cfg) and shared by all calls.
type resourceSet struct {
	key     resourceKey
	entries []resource
}

type resourceKey struct {
	view    *clusterstate.View
	guests  uint64
	users   *access.UserCfg
	storage string
}

// resources is GET /cluster/resources, built from pvestatd's view of the
// cluster (PVE: pmxcfs's status records), the guest configs and
// storage.cfg. Entries are prepared as JSON once per change of those
// inputs; a call only filters them by type and permission.
func (d Deps) resources(ctx context.Context, r *api.Request) (any, error) {
	if d.Root == nil || d.Access == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: resources in this daemon")
	}
	set, err := d.resourceSet(r.NodeName)
	if err != nil {
		return nil, err
	}
	typ, _ := r.Params.String("type")
	authid := r.Identity.AuthID
	root := authid == api.RootUser
	can := func(path string, privs []string) bool {
		return root || d.Access.CheckPrivs(authid, path, privs, true)
	}
	var buf bytes.Buffer
	buf.Grow(len(set.entries) * 256)
	buf.WriteByte('[')
	first := true
	for i := range set.entries {
		e := &set.entries[i]
		if typ != "" && typ != typeFilter(e.kind) {
			continue
		}
		body := e.body
		switch e.kind {
		case "node":
			if !can(e.path, e.privs) {
				body = e.bodyMinimal
			}
		default:
			if !can(e.path, e.privs) {
				continue
			}
			if e.pool != "" && !can("/pool/"+e.pool, poolAudit) {
				body = e.bodyNoPool
			}
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(body)
	}
	buf.WriteByte(']')
	return json.RawMessage(buf.Bytes()), nil
}

// typeFilter maps an entry kind to the value of the type parameter that
// selects it.
func typeFilter(kind string) string {
	switch kind {
	case "qemu", "lxc", "openvz":
		return "vm"
	}
	return kind
}

// view returns pvestatd's view, or a view of this node alone when pvestatd
// has not written one (not running, or just started).
func (d Deps) view(node string) (*clusterstate.View, error) {
	if d.View != nil {
		v, err := d.View.View()
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return &clusterstate.View{LocalNode: node, Members: []clusterstate.Member{{Name: node, Online: true}}}, nil
}

// resourceSet returns the prepared entries, building them when an input
// changed.
func (d Deps) resourceSet(node string) (*resourceSet, error) {
	v, err := d.view(node)
	if err != nil {
		return nil, err
	}
	guests, gver, err := d.Guests.Read()
	if err != nil {
		return nil, err
	}
	users := d.Access.UserCfg()
	store, err := (&storage.Host{Root: d.Root, Node: node}).Config()
	if err != nil {
		return nil, err
	}
	key := resourceKey{view: v, guests: gver, users: users, storage: store.Digest}
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	if d.cache.set != nil && d.cache.set.key == key {
		return d.cache.set, nil
	}
	set := &resourceSet{key: key, entries: buildResources(v, guests, users, store)}
	d.cache.set = set
	return set, nil
}

// Entry shapes; numbers are JSON numbers, booleans 0/1, as PVE sends them.
type (
	poolEntry struct {
		ID     string  `json:"id"`
		Type   string  `json:"type"`
		Pool   string  `json:"pool"`
		Uptime int64   `json:"uptime,omitempty"`
		Mem    uint64  `json:"mem,omitempty"`
		MaxMem uint64  `json:"maxmem,omitempty"`
		CPU    float64 `json:"cpu,omitempty"`
		MaxCPU float64 `json:"maxcpu,omitempty"`
	}
	guestEntry struct {
		ID        string   `json:"id"`
		Type      string   `json:"type"`
		VMID      int      `json:"vmid"`
		Node      string   `json:"node"`
		Status    string   `json:"status"`
		Name      string   `json:"name,omitempty"`
		Uptime    *int64   `json:"uptime,omitempty"`
		Template  *int     `json:"template,omitempty"`
		MaxCPU    *float64 `json:"maxcpu,omitempty"`
		CPU       *float64 `json:"cpu,omitempty"`
		MaxMem    *uint64  `json:"maxmem,omitempty"`
		Mem       *uint64  `json:"mem,omitempty"`
		MaxDisk   *uint64  `json:"maxdisk,omitempty"`
		Disk      *uint64  `json:"disk,omitempty"`
		NetIn     *uint64  `json:"netin,omitempty"`
		NetOut    *uint64  `json:"netout,omitempty"`
		DiskRead  *uint64  `json:"diskread,omitempty"`
		DiskWrite *uint64  `json:"diskwrite,omitempty"`
		MemHost   *uint64  `json:"memhost,omitempty"`
		Pool      string   `json:"pool,omitempty"`
		Lock      string   `json:"lock,omitempty"`
		Tags      string   `json:"tags,omitempty"`
	}
	nodeEntryRes struct {
		ID         string   `json:"id"`
		Type       string   `json:"type"`
		Node       string   `json:"node"`
		Status     string   `json:"status"`
		Level      *string  `json:"level,omitempty"`
		Uptime     *int64   `json:"uptime,omitempty"`
		CPU        *float64 `json:"cpu,omitempty"`
		Mem        *uint64  `json:"mem,omitempty"`
		Disk       *uint64  `json:"disk,omitempty"`
		MaxCPU     *int     `json:"maxcpu,omitempty"`
		MaxMem     *uint64  `json:"maxmem,omitempty"`
		MaxDisk    *uint64  `json:"maxdisk,omitempty"`
		CgroupMode int      `json:"cgroup-mode,omitempty"`
	}
	storageEntry struct {
		ID         string  `json:"id"`
		Type       string  `json:"type"`
		Storage    string  `json:"storage"`
		Node       string  `json:"node"`
		PluginType string  `json:"plugintype"`
		Status     string  `json:"status"`
		Shared     int     `json:"shared"`
		Content    string  `json:"content"`
		MaxDisk    *uint64 `json:"maxdisk,omitempty"`
		Disk       *uint64 `json:"disk,omitempty"`
	}
)

func ptr[T any](v T) *T { return &v }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// buildResources prepares every entry as PVE's resources method lists
// them: pools, guests, nodes, storages.
func buildResources(v *clusterstate.View, guests map[int]vmlist.Guest, users *access.UserCfg, store *storage.Config) []resource {
	var out []resource
	pools := map[string]*poolEntry{}
	var poolNames []string
	if users != nil {
		for name := range users.Pools {
			poolNames = append(poolNames, name)
		}
		sort.Strings(poolNames)
		for _, name := range poolNames {
			pools[name] = &poolEntry{ID: "/pool/" + name, Type: "pool", Pool: name}
		}
	}
	// The published records of each guest, and whether its node is online.
	type rec struct {
		g      *clusterstate.Guest
		online bool
	}
	records := map[int]rec{}
	for i := range v.Members {
		m := &v.Members[i]
		if m.State == nil {
			continue
		}
		for j := range m.State.Guests {
			g := &m.State.Guests[j]
			records[g.VMID] = rec{g, m.Online}
		}
	}
	ids := make([]int, 0, len(guests))
	for id := range guests {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, vmid := range ids {
		g := guests[vmid]
		e := guestEntry{ID: g.Type + "/" + strconv.Itoa(vmid), Type: g.Type, VMID: vmid, Node: g.Node, Status: "unknown"}
		if r, ok := records[vmid]; ok {
			s := r.g
			e.Name, e.Status = s.Name, s.Status
			if !r.online {
				e.Status = "unknown" // the node is offline: the figures are its last known
			}
			e.Uptime, e.Template = ptr(s.Uptime), ptr(b2i(s.Template))
			e.MaxCPU, e.CPU = ptr(s.MaxCPU), ptr(s.CPU)
			e.MaxMem, e.Mem, e.MaxDisk, e.Disk = ptr(s.MaxMem), ptr(s.Mem), ptr(s.MaxDisk), ptr(s.Disk)
			e.NetIn, e.NetOut, e.DiskRead, e.DiskWrite = ptr(s.NetIn), ptr(s.NetOut), ptr(s.DiskRead), ptr(s.DiskWrite)
			e.MemHost = ptr(s.MemHost)
			e.Lock, e.Tags = s.Lock, s.Tags
			if users != nil {
				if pool := users.PoolOfVM(vmid); pool != "" {
					e.Pool = pool
					if pe := pools[pool]; pe != nil && s.Uptime > 0 {
						pe.Uptime = max(pe.Uptime, s.Uptime)
						pe.Mem += s.Mem
						pe.MaxMem += s.MaxMem
						if pe.MaxCPU+s.MaxCPU > 0 {
							pe.CPU = (pe.CPU*pe.MaxCPU + s.CPU*s.MaxCPU) / (pe.MaxCPU + s.MaxCPU)
						}
						pe.MaxCPU += s.MaxCPU
					}
				}
			}
		} else if users != nil {
			e.Pool = users.PoolOfVM(vmid)
		}
		res := resource{kind: g.Type, path: "/vms/" + strconv.Itoa(vmid), privs: vmAudit, pool: e.Pool, body: mustJSON(e)}
		if e.Pool != "" {
			e.Pool = ""
			res.bodyNoPool = mustJSON(e)
		}
		out = append(out, res)
	}
	var poolRes []resource
	for _, name := range poolNames {
		poolRes = append(poolRes, resource{kind: "pool", path: "/pool/" + name, privs: poolAudit, body: mustJSON(pools[name])})
	}
	out = append(poolRes, out...)

	for i := range v.Members {
		m := &v.Members[i]
		e := nodeEntryRes{ID: "node/" + m.Name, Type: "node", Node: m.Name, Status: "unknown"}
		minimal := e
		if m.State != nil {
			n := &m.State.Node
			if m.Online {
				e.Status = "online"
				e.Uptime, e.CPU, e.Mem, e.Disk = ptr(n.Uptime), ptr(n.CPU), ptr(n.MemUsed), ptr(n.RootUsed)
			}
			e.Level = ptr(n.Level)
			e.MaxCPU, e.MaxMem, e.MaxDisk = ptr(n.MaxCPU), ptr(n.MemTotal), ptr(n.RootTotal)
			e.CgroupMode = n.CgroupMode
			minimal.Status, minimal.Level = e.Status, e.Level
		}
		if !m.Online && v.Cluster != "" {
			e.Status, minimal.Status = "offline", "offline"
		}
		out = append(out, resource{kind: "node", path: "/nodes/" + m.Name, privs: sysAudit, body: mustJSON(e), bodyMinimal: mustJSON(minimal)})
	}

	for _, s := range store.Sections {
		for i := range v.Members {
			m := &v.Members[i]
			if storage.CheckEnabled(s, m.Name) != nil {
				continue
			}
			e := storageEntry{ID: "storage/" + m.Name + "/" + s.ID, Type: "storage", Storage: s.ID, Node: m.Name,
				PluginType: s.Type, Status: "unknown", Shared: b2i(s.Options["shared"] == "1"), Content: s.Options["content"]}
			if m.State != nil && m.Online {
				for _, st := range m.State.Storages {
					if st.ID == s.ID && st.Active {
						e.Status, e.MaxDisk, e.Disk = "available", ptr(st.Total), ptr(st.Used)
					}
				}
			}
			out = append(out, resource{kind: "storage", path: "/storage/" + s.ID, privs: datastoreAudit, body: mustJSON(e)})
		}
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
