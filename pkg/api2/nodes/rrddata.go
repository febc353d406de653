package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/rrd"
)

// RRDSource answers history queries as PVE's rrdcached files do: an
// *rrd.Store, or a client of the one pvestatd keeps. Query returns an
// *rrd.NotFoundError for a series it does not have.
type RRDSource interface {
	Query(key string, tf rrd.Timeframe, cf rrd.CF) (*rrd.Result, error)
}

var _ RRDSource = (*rrd.Store)(nil)

// rrdMethods are the rrddata methods of nodes (PVE's API2/Nodes.pm), guests
// (qemu-server's API2/Qemu.pm) and storages (pve-storage's
// API2/Storage/Status.pm), answered from d.RRD; without it they are
// declared only and answer 501. Every node holds every series, so only
// the storage one names a node to run on (proxyto), as in PVE.
func (d Deps) rrdMethods() []api.Method {
	node := func() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }
	cf := func() *api.Schema { return api.Str().Enums("AVERAGE", "MAX").Opt() }
	returns := func() *api.Schema { return api.Arr(api.Obj(map[string]*api.Schema{})) }
	return []api.Method{
		{
			Name: "rrddata", Path: "/nodes/{node}/rrddata", HTTP: "GET",
			Description: "Read node RRD statistics",
			Protected:   true,
			Permissions: api.Perm("/nodes/{node}", "Sys.Audit"),
			Params: map[string]*api.Schema{
				"cf":        cf(),
				"node":      node(),
				"timeframe": api.Str().Enums("hour", "day", "week", "month", "year", "decade"),
			},
			Returns: returns(),
			Handle:  d.rrddata(func(p api.Params) string { return rrd.NodeSchema.Name() + "/" + p.Get("node") }),
		},
		{
			Name: "rrddata", Path: "/nodes/{node}/qemu/{vmid}/rrddata", HTTP: "GET",
			Description: "Read VM RRD statistics",
			Protected:   true,
			Permissions: api.Perm("/vms/{vmid}", "VM.Audit"),
			Params: map[string]*api.Schema{
				"cf":        cf(),
				"node":      node(),
				"timeframe": api.Str().Enums("hour", "day", "week", "month", "year"),
				"vmid":      api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
			},
			Returns: returns(),
			Handle:  d.rrddata(func(p api.Params) string { return rrd.VMSchema.Name() + "/" + p.Get("vmid") }),
		},
		{
			Name: "rrddata", Path: "/nodes/{node}/storage/{storage}/rrddata", HTTP: "GET",
			Description: "Read storage RRD statistics.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.PermAny("/storage/{storage}", "Datastore.Audit", "Datastore.AllocateSpace"),
			Params: map[string]*api.Schema{
				"cf":        cf(),
				"node":      node(),
				"storage":   api.Str().Fmt("pve-storage-id").TT("<storage ID>"),
				"timeframe": api.Str().Enums("hour", "day", "week", "month", "year"),
			},
			Returns: returns(),
			Handle: d.rrddata(func(p api.Params) string {
				return rrd.StorageSchema.Name() + "/" + p.Get("node") + "/" + p.Get("storage")
			}),
		},
	}
}

// rrddata answers PVE::RRD::create_rrd_data for the series key names: an
// array of points {time, <field>: value...}, unknown values left out. A
// series that does not exist is PVE's "RRD error: opening '<file>': No
// such file or directory" (500).
func (d Deps) rrddata(key func(api.Params) string) api.HandlerFunc {
	return func(ctx context.Context, r *api.Request) (any, error) {
		if d.RRD == nil {
			return nil, api.Errorf(http.StatusNotImplemented, "not implemented: RRD statistics in this daemon")
		}
		cf, err := rrd.ParseCF(r.Params.Get("cf"))
		if err != nil {
			return nil, api.ParamError(map[string]string{"cf": err.Error()})
		}
		res, err := d.RRD.Query(key(r.Params), rrd.Timeframe(r.Params.Get("timeframe")), cf)
		if errors.Is(err, rrd.ErrBadKey) {
			// a node name or storage ID the schema formats allow but a
			// file name cannot hold: no such series
			return nil, api.Errorf(http.StatusInternalServerError, "RRD error: opening '%s': No such file or directory", key(r.Params))
		}
		if err != nil {
			return nil, fmt.Errorf("RRD error: %w", err)
		}
		b, err := res.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return json.RawMessage(b), nil
	}
}
