// Package nodes declares /nodes, /nodes/{node} and /nodes/{node}/status.
package nodes

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pvenode/pvenode/pkg/tasks"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/nodestatus"
)

// StatusSource gives the figures of this node (a *nodestatus.Collector).
type StatusSource interface {
	Status(ctx context.Context) (*nodestatus.Status, error)
	Summary(ctx context.Context, node string) (nodestatus.Summary, error)
}

// PrivChecker answers privilege questions (the api.Authenticator has it).
type PrivChecker interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
}

// Deps are the collaborators of the node methods. All are required.
type Deps struct {
	Status StatusSource
	Privs  PrivChecker
	// Fingerprint returns the SHA-256 fingerprint of the node certificate.
	Fingerprint func() string
	// NodeFingerprint returns another node's certificate fingerprint
	// (from its files in the config root); nil leaves it out.
	NodeFingerprint func(node string) string
	// View reads pvestatd's view of the cluster; nil: this node alone.
	View *clusterstate.Reader
	// Tasks runs and lists the node's worker tasks (pvedaemon); nil where
	// tasks are not answered (pveproxy forwards them).
	Tasks *tasks.Manager
	// Storage reads storage.cfg and operates its dir storages (pvedaemon);
	// nil where storage calls are not answered (pveproxy forwards them).
	Storage *StorageDeps
	// RRD answers the rrddata methods (the status history pvestatd
	// keeps); nil where they are not answered (501).
	RRD RRDSource
	// VNC signs and checks the node shell's VNC tickets (termproxy,
	// vncwebsocket); nil: they answer 501.
	VNC VNCTickets
	// Shell, when set, is the node shell's command for every user (tests
	// run /bin/sh); nil: PVE's ("login -f root" for root@pam, "login").
	Shell []string
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	node := func() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }
	return append([]api.Method{
		{
			Name: "index", Path: "/nodes", HTTP: "GET",
			Description: "Cluster node index.",
			Permissions: api.AllUsers,
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"node":            api.Str().Fmt("pve-node"),
				"status":          api.Str().Enums("unknown", "online", "offline"),
				"cpu":             api.Num().Opt().Rend("fraction_as_percentage"),
				"maxcpu":          api.Int().Opt(),
				"mem":             api.Int().Opt().Rend("bytes"),
				"maxmem":          api.Int().Opt().Rend("bytes"),
				"uptime":          api.Int().Opt().Rend("duration"),
				"level":           api.Str().Opt(),
				"ssl_fingerprint": api.Str().Opt(),
			})).WithLinks(api.Link{Href: "{node}", Rel: "child"}),
			Handle: d.list,
		},
		{
			Name: "index", Path: "/nodes/{node}", HTTP: "GET",
			Description: "Node index.",
			Permissions: api.AllUsers,
			Params:      map[string]*api.Schema{"node": node()},
			Returns:     api.Arr(api.Obj(map[string]*api.Schema{})).WithLinks(api.Link{Href: "{name}", Rel: "child"}),
			Handle:      nodeIndex,
		},
		{
			Name: "status", Path: "/nodes/{node}/status", HTTP: "GET",
			Description: "Read node status",
			ProxyTo:     "node",
			Permissions: api.Perm("/nodes/{node}", "Sys.Audit"),
			Params:      map[string]*api.Schema{"node": node()},
			Returns:     statusReturns(),
			Handle:      d.status,
		},
	}, append(append(append(append(append(d.taskMethods(), d.storageMethods()...), d.rrdMethods()...), d.termMethods()...), d.pruneMethods()...), d.replicaMethod(), d.replicaSumsMethod())...)
}

// minimalEntry is the GET /nodes element of a caller who may not audit the
// node: PVE then leaves the figures out.
type minimalEntry struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Node           string `json:"node"`
	Status         string `json:"status"`
	Level          string `json:"level"`
	SSLFingerprint string `json:"ssl_fingerprint,omitempty"`
}

// list is GET /nodes: this node from its own figures and, in a cluster,
// every other member from pvestatd's view (online state and the figures
// it published); callers without Sys.Audit on a node see it without
// figures.
func (d Deps) list(ctx context.Context, r *api.Request) (any, error) {
	audit := func(node string) bool {
		return r.Identity.AuthID == api.RootUser || d.Privs.CheckPrivs(r.Identity.AuthID, "/nodes/"+node, []string{"Sys.Audit"}, false)
	}
	var out []any
	local := func() error {
		fp := d.Fingerprint()
		if !audit(r.NodeName) {
			out = append(out, minimalEntry{ID: "node/" + r.NodeName, Type: "node", Node: r.NodeName, Status: "online", SSLFingerprint: fp})
			return nil
		}
		s, err := d.Status.Summary(ctx, r.NodeName)
		if err != nil {
			return fmt.Errorf("read node status: %w", err)
		}
		s.SSLFingerprint = fp
		out = append(out, s)
		return nil
	}
	var v *clusterstate.View
	if d.View != nil {
		v, _ = d.View.View() // no view yet: this node alone
	}
	if v == nil || v.Cluster == "" {
		if err := local(); err != nil {
			return nil, err
		}
		return out, nil
	}
	for _, m := range v.Members {
		if m.Name == r.NodeName {
			if err := local(); err != nil {
				return nil, err
			}
			continue
		}
		status := "offline"
		if m.Online {
			status = "online"
		}
		fp := ""
		if d.NodeFingerprint != nil {
			fp = d.NodeFingerprint(m.Name)
		}
		if !audit(m.Name) || m.State == nil || !m.Online {
			e := minimalEntry{ID: "node/" + m.Name, Type: "node", Node: m.Name, Status: status, SSLFingerprint: fp}
			if m.State != nil {
				e.Level = m.State.Node.Level
			}
			out = append(out, e)
			continue
		}
		n := m.State.Node
		out = append(out, nodestatus.Summary{ID: "node/" + m.Name, Type: "node", Node: m.Name, Status: status,
			Level: n.Level, Uptime: n.Uptime, CPU: n.CPU, MaxCPU: n.MaxCPU, Mem: int64(n.MemUsed), MaxMem: int64(n.MemTotal),
			Disk: int64(n.RootUsed), MaxDisk: int64(n.RootTotal), SSLFingerprint: fp})
	}
	return out, nil
}

// nodeChildren lists the children of /nodes/{node} this build implements.
var nodeChildren = api.DirIndex("name", "qemu", "rrddata", "status", "storage", "tasks", "termproxy")

func nodeIndex(ctx context.Context, r *api.Request) (any, error) {
	if n := r.Params.Get("node"); n != r.NodeName && n != "localhost" {
		return nil, api.Errorf(http.StatusInternalServerError, "no such node '%s'", n)
	}
	return nodeChildren(ctx, r)
}

func (d Deps) status(ctx context.Context, r *api.Request) (any, error) {
	st, err := d.Status.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read node status: %w", err)
	}
	return st, nil
}

func statusReturns() *api.Schema {
	obj := api.Obj
	return obj(map[string]*api.Schema{
		"boot-info": obj(map[string]*api.Schema{
			"mode":       api.Str().Enums("efi", "legacy-bios"),
			"secureboot": api.Bool().Opt(),
		}),
		"cpu": api.Num(),
		"cpuinfo": obj(map[string]*api.Schema{
			"cores": api.Int(), "cpus": api.Int(), "model": api.Str(), "sockets": api.Int(),
		}),
		"current-kernel": obj(map[string]*api.Schema{
			"machine": api.Str(), "release": api.Str(), "sysname": api.Str(), "version": api.Str(),
		}),
		"loadavg": api.Arr(api.Str()),
		"memory": obj(map[string]*api.Schema{
			"available": api.Int(), "free": api.Int(), "total": api.Int(), "used": api.Int(),
		}),
		"pveversion": api.Str(),
		"rootfs": obj(map[string]*api.Schema{
			"avail": api.Int(), "free": api.Int(), "total": api.Int(), "used": api.Int(),
		}),
	}).Additional(true)
}
