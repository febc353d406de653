// Package cluster declares /cluster, /cluster/status, /cluster/resources and
// /cluster/nextid. The status and resources come from pvestatd's view of the
// cluster (pkg/clusterstate); a standalone node answers as PVE answers on a
// node that is not part of a cluster.
package cluster

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/vmlist"

	"github.com/pvenode/pvenode/pkg/api"
)

// Deps are the collaborators of the cluster methods.
type Deps struct {
	// NodeIP returns the address of this node as the cluster would
	// advertise it (the address its name resolves to).
	NodeIP func() string
	// Root is the config root (the guest list and datacenter.cfg for
	// nextid, storage.cfg); nil answers nextid and resources with 501.
	Root *pvefs.Root
	// Access checks privileges and gives user.cfg (pools).
	Access Access
	// View reads pvestatd's view of the cluster; nil or a missing file
	// gives a view of this node alone, without figures.
	View *clusterstate.Reader
	// Guests is the cached guest list of the config root.
	Guests *vmlist.Cache

	cache *resourceCache
}

// resourceCache holds the prepared /cluster/resources entries.
type resourceCache struct {
	mu  sync.Mutex
	set *resourceSet
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	d.cache = &resourceCache{}
	if d.Guests == nil && d.Root != nil {
		d.Guests = vmlist.NewCache(d.Root)
	}
	return []api.Method{
		{
			Name: "index", Path: "/cluster", HTTP: "GET",
			Description: "Cluster index.",
			Permissions: api.AllUsers,
			Returns:     api.Arr(api.Obj(map[string]*api.Schema{})).WithLinks(api.Link{Href: "{name}", Rel: "child"}),
			Handle:      api.DirIndex("name", "nextid", "resources", "status"),
		},
		{
			Name: "nextid", Path: "/cluster/nextid", HTTP: "GET",
			Description: "Get next free VMID. Pass a VMID to assert that its free (at time of check).",
			Permissions: api.AllUsers,
			Params: map[string]*api.Schema{
				"vmid": api.Int().Fmt("pve-vmid").Range(100, 999999999).Opt().TT("<integer> (100 - 999999999)"),
			},
			Returns: api.Int(),
			Handle:  d.nextID,
		},
		{
			Name: "get_status", Path: "/cluster/status", HTTP: "GET",
			Description: "Get cluster status information.",
			Protected:   true,
			Permissions: api.Perm("/", "Sys.Audit"),
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"type":    api.Str().Enums("cluster", "node"),
				"id":      api.Str(),
				"name":    api.Str(),
				"nodes":   api.Int().Opt(),
				"version": api.Int().Opt(),
				"quorate": api.Bool().Opt(),
				"nodeid":  api.Int().Opt(),
				"ip":      api.Str().Opt(),
				"local":   api.Bool().Opt(),
				"online":  api.Bool().Opt(),
				"level":   api.Str().Opt(),
			})),
			Handle: d.status,
		},
		{
			Name: "resources", Path: "/cluster/resources", HTTP: "GET",
			Description: "Resources index (cluster wide).",
			Permissions: api.AllUsers,
			Params: map[string]*api.Schema{
				"type": api.Str().Enums("vm", "storage", "node", "sdn").Opt(),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"cgroup-mode":  api.Int().Opt(),
				"content":      api.Str().Fmt("pve-storage-content-list").Opt(),
				"cpu":          api.Num().Min(0).Opt(),
				"disk":         api.Int().Min(0).Opt(),
				"diskread":     api.Int().Opt(),
				"diskwrite":    api.Int().Opt(),
				"hastate":      api.Str().Opt(),
				"id":           api.Str(),
				"level":        api.Str().Opt(),
				"lock":         api.Str().Opt(),
				"maxcpu":       api.Num().Min(0).Opt(),
				"maxdisk":      api.Int().Min(0).Opt(),
				"maxmem":       api.Int().Opt(),
				"mem":          api.Int().Min(0).Opt(),
				"memhost":      api.Int().Min(0).Opt(),
				"name":         api.Str().Opt(),
				"netin":        api.Int().Opt(),
				"netout":       api.Int().Opt(),
				"network":      api.Str().Opt(),
				"network-type": api.Str().Enums("fabric", "zone").Opt(),
				"node":         api.Str().Fmt("pve-node").Opt(),
				"plugintype":   api.Str().Opt(),
				"pool":         api.Str().Opt(),
				"protocol":     api.Str().Opt(),
				"sdn":          api.Str().Opt(),
				"shared":       api.Bool().Opt(),
				"status":       api.Str().Opt(),
				"storage":      api.Str().Fmt("pve-storage-id").Opt(),
				"tags":         api.Str().Opt(),
				"template":     api.Bool().Def(0).Opt(),
				"type":         api.Str().Enums("node", "storage", "pool", "qemu", "lxc", "openvz", "sdn", "network"),
				"uptime":       api.Int().Opt(),
				"vmid":         api.Int().Fmt("pve-vmid").Range(100, 999999999).Opt(),
				"zone-type":    api.Str().Opt(),
			})),
			Handle: d.resources,
		},
	}
}

// nodeEntry is a node of /cluster/status; booleans are 0/1 as PVE sends them.
type nodeEntry struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	IP     string `json:"ip,omitempty"`
	Local  int    `json:"local"`
	NodeID int    `json:"nodeid"`
	Online int    `json:"online"`
	Level  string `json:"level"`
}

// clusterEntry is the cluster line of /cluster/status.
type clusterEntry struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Nodes   int    `json:"nodes"`
	Version int    `json:"version"`
	Quorate int    `json:"quorate"`
}

// status is GET /cluster/status: for a standalone node one node entry and
// no cluster entry, as PVE; in a cluster the cluster entry and one entry
// per member with its gossiped online state.
func (d Deps) status(ctx context.Context, r *api.Request) (any, error) {
	v, err := d.view(r.NodeName)
	if err != nil {
		return nil, err
	}
	if v.Cluster == "" {
		return []nodeEntry{{
			Type: "node", ID: "node/" + r.NodeName, Name: r.NodeName, IP: d.NodeIP(),
			Local: 1, NodeID: 0, Online: 1, Level: "",
		}}, nil
	}
	out := []any{clusterEntry{Type: "cluster", ID: "cluster", Name: v.Cluster, Nodes: len(v.Members),
		Version: v.ConfigVersion, Quorate: b2i(v.Quorate)}}
	for _, m := range v.Members {
		e := nodeEntry{Type: "node", ID: "node/" + m.Name, Name: m.Name, IP: m.IP, NodeID: m.NodeID,
			Local: b2i(m.Name == r.NodeName), Online: b2i(m.Online)}
		if m.State != nil {
			e.Level = m.State.Node.Level
		}
		out = append(out, e)
	}
	return out, nil
}

// nextID is GET /cluster/nextid: the first VMID from datacenter.cfg's
// next-id range (default 100 to 1,000,000) that no guest config uses, or
// the given vmid if it is free. As PVE, the answer is the number as a JSON
// string (clients such as proxmox-api-go parse it so).
func (d Deps) nextID(ctx context.Context, r *api.Request) (any, error) {
	if d.Root == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: nextid in this daemon")
	}
	ids, err := vmlist.Read(d.Root)
	if err != nil {
		return nil, err
	}
	if r.Params.Has("vmid") {
		vmid := int(r.Params.Int("vmid", 0))
		if _, used := ids[vmid]; used {
			return nil, api.ParamError(map[string]string{"vmid": "VM " + strconv.Itoa(vmid) + " already exists"})
		}
		return strconv.Itoa(vmid), nil
	}
	lower, upper := 100, 1000*1000
	if data, err := d.Root.ReadFileOrEmpty("datacenter.cfg"); err == nil {
		lower, upper = nextIDRange(string(data), lower, upper)
	}
	for i := lower; i < upper; i++ {
		if _, used := ids[i]; !used {
			return strconv.Itoa(i), nil
		}
	}
	return nil, api.Errorf(http.StatusInternalServerError, "unable to get any free VMID in range [%d, %d]", lower, upper)
}

// nextIDRange reads datacenter.cfg's "next-id: lower=N,upper=M".
func nextIDRange(dc string, lower, upper int) (int, int) {
	for _, line := range strings.Split(dc, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.TrimSpace(k) != "next-id" {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSpace(v), ",") {
			name, val, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil {
				continue
			}
			switch strings.TrimSpace(name) {
			case "lower":
				lower = n
			case "upper":
				upper = n
			}
		}
	}
	return lower, upper
}
