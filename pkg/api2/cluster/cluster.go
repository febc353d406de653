// Package cluster declares /cluster and /cluster/status. Until the cluster
// layer exists (issue 5) the node is standalone, and the status answers as
// PVE answers on a node that is not part of a cluster.
package cluster

import (
	"context"

	"github.com/pvenode/pvenode/pkg/api"
)

// Deps are the collaborators of the cluster methods. All are required.
type Deps struct {
	// NodeIP returns the address of this node as the cluster would
	// advertise it (the address its name resolves to).
	NodeIP func() string
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/cluster", HTTP: "GET",
			Description: "Cluster index.",
			Permissions: api.AllUsers,
			Returns:     api.Arr(api.Obj(map[string]*api.Schema{})).WithLinks(api.Link{Href: "{name}", Rel: "child"}),
			Handle:      api.DirIndex("name", "status"),
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

// status answers as PVE does for a standalone node: one node entry, no
// cluster entry.
func (d Deps) status(ctx context.Context, r *api.Request) (any, error) {
	return []nodeEntry{{
		Type: "node", ID: "node/" + r.NodeName, Name: r.NodeName, IP: d.NodeIP(),
		Local: 1, NodeID: 0, Online: 1, Level: "",
	}}, nil
}
