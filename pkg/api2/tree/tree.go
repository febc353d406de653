// Package tree assembles every API method declaration of this build into one
// registry, mounted by both pveproxy and pvedaemon, and used (with zero
// dependencies) for the schema dump and the conformance test.
package tree

import (
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/access"
	"github.com/pvenode/pvenode/pkg/api2/cluster"
	"github.com/pvenode/pvenode/pkg/api2/jobsapi"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/api2/pools"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/api2/root"
	"github.com/pvenode/pvenode/pkg/api2/vzdumpapi"
)

// Deps are the collaborators of all method groups.
type Deps struct {
	Nodes   nodes.Deps
	Access  access.Deps
	Cluster cluster.Deps
	Pools   pools.Deps
	// Qemu may be nil (schema dump, conformance).
	Qemu *qemuapi.Deps
	// Jobs may be nil (schema dump, conformance).
	Jobs *jobsapi.Deps
	// VZDump may be nil (schema dump, conformance).
	VZDump *vzdumpapi.Deps
}

// Registry returns the registry of every declared method.
func Registry(d Deps) *api.Registry {
	if d.Qemu == nil {
		d.Qemu = &qemuapi.Deps{}
	}
	if d.VZDump == nil {
		d.VZDump = &vzdumpapi.Deps{}
	}
	if d.Jobs == nil {
		d.Jobs = &jobsapi.Deps{}
	}
	return api.NewRegistry(
		root.Methods(),
		nodes.Methods(d.Nodes),
		access.Methods(d.Access),
		cluster.Methods(d.Cluster),
		pools.Methods(d.Pools),
		qemuapi.Methods(d.Qemu),
		vzdumpapi.Methods(d.VZDump),
		jobsapi.Methods(d.Jobs),
	)
}
