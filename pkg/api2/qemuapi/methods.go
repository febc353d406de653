// Package qemuapi declares and answers /nodes/{node}/qemu: the VM list,
// creation, the config (with PVE's digest and pending changes), deletion,
// and the power state (status/current, start, stop, shutdown, reboot,
// reset, suspend, resume), as qemu-server's PVE::API2::Qemu does. Long
// actions run as worker tasks (pkg/tasks) and QEMU processes are run by
// pkg/vmm.
package qemuapi

import (
	"maps"

	"github.com/pvenode/pvenode/pkg/api"
)

// vmIndexMethod declares a directory index below a VM (GET, any user).
func vmIndexMethod(name, path string, h api.HandlerFunc) api.Method {
	return api.Method{
		Name: name, Path: path, HTTP: "GET",
		Description: "Directory index",
		ProxyTo:     "node",
		Permissions: api.Permissions{User: "all"},
		Params:      map[string]*api.Schema{"node": nodeParam(), "vmid": vmidParam()},
		Returns: api.Arr(api.Obj(map[string]*api.Schema{
			"subdir": api.Str(),
		})).WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
		Handle: h,
	}
}

// powerMethod declares POST /nodes/{node}/qemu/{vmid}/status/<action>: a
// protected power action needing VM.PowerMgmt that answers a task's UPID,
// with its own parameters beside node and vmid.
func powerMethod(name, action, desc string, params map[string]*api.Schema, h api.HandlerFunc) api.Method {
	all := map[string]*api.Schema{"node": nodeParam(), "vmid": vmidParam()}
	maps.Copy(all, params)
	return api.Method{
		Name: name, Path: "/nodes/{node}/qemu/{vmid}/status/" + action, HTTP: "POST",
		Description: desc,
		Protected:   true,
		ProxyTo:     "node",
		Permissions: api.Perm("/vms/{vmid}", "VM.PowerMgmt"),
		Params:      all,
		Returns:     api.Str(),
		Handle:      h,
	}
}

// Methods returns the declarations of this package.
func Methods(d *Deps) []api.Method {
	node := func() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }
	vmid := func() *api.Schema {
		return api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)")
	}
	configPerms := api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"}, "any", 1}}
	return []api.Method{
		{
			Name: "destroy_vm", Path: "/nodes/{node}/qemu/{vmid}", HTTP: "DELETE",
			Description: "Destroy the VM and  all used/owned volumes. Removes any VM specific permissions and firewall rules",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Allocate"}}},
			Params: map[string]*api.Schema{
				"destroy-unreferenced-disks": api.Bool().Def(0).Opt().TT("<boolean>"),
				"node":                       api.Str().Fmt("pve-node").TT("<string>"),
				"purge":                      api.Bool().Opt().TT("<boolean>"),
				"skiplock":                   api.Bool().Opt().TT("<boolean>"),
				"vmid":                       api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
			},
			Returns: api.Str(),
			Handle:  d.destroyVM,
		},
		vmIndexMethod("vmdiridx", "/nodes/{node}/qemu/{vmid}", d.vmdiridx),
		{
			Name: "vm_pending", Path: "/nodes/{node}/qemu/{vmid}/pending", HTTP: "GET",
			Description: "Get the virtual machine configuration with both current and pending values.",
			ProxyTo:     "node",
			Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Audit"}}},
			Params: map[string]*api.Schema{
				"node": node(),
				"vmid": vmid(),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"delete":  api.Int().Range(0, 2).Opt(),
				"key":     api.Str(),
				"pending": api.Str().Opt(),
				"value":   api.Str().Opt(),
			})),
			Handle: d.vmPending,
		},
		vmIndexMethod("vmcmdidx", "/nodes/{node}/qemu/{vmid}/status", d.vmcmdidx),
		{
			Name: "vm_status", Path: "/nodes/{node}/qemu/{vmid}/status/current", HTTP: "GET",
			Description: "Get virtual machine status.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Audit"}}},
			Params: map[string]*api.Schema{
				"node": node(),
				"vmid": vmid(),
			},
			Returns: api.Obj(withKeys(vmStatusProps(), map[string]*api.Schema{
				"agent":     api.Bool().Opt(),
				"clipboard": api.Str().Enums("vnc").Opt(),
				"ha":        &api.Schema{Type: "object"},
				"spice":     api.Bool().Opt(),
			})),
			Handle: d.vmStatus,
		},
		powerMethod("vm_start", "start", "Start virtual machine.", map[string]*api.Schema{
			"force-cpu":            api.Str().Opt().TT("<string>"),
			"machine":              api.Str().Fmt(fmtMachine()).Opt().TT("[[type=]<machine type>] [,aw-bits=<number>] [,enable-s3=<1|0>] [,enable-s4=<1|0>] [,viommu=<intel|virtio>]"),
			"migratedfrom":         api.Str().Fmt("pve-node").Opt().TT("<string>"),
			"migration_network":    api.Str().Fmt("CIDR").Opt().TT("<string>"),
			"migration_type":       api.Str().Enums("secure", "insecure").Opt(),
			"nets-host-mtu":        api.Str().Pat("net\\d+=\\d+(,net\\d+=\\d+)*").Opt(),
			"skiplock":             api.Bool().Opt().TT("<boolean>"),
			"stateuri":             api.Str().MaxLen(128).Opt().TT("<string>"),
			"targetstorage":        api.Str().Fmt("storage-pair-list").Opt().TT("<string>"),
			"timeout":              api.Int().Min(0).Def("max(30, vm memory in GiB)").Opt().TT("<integer> (0 - N)"),
			"with-conntrack-state": api.Bool().Def(0).Opt().TT("<boolean>"),
		}, d.vmStart),
		powerMethod("vm_stop", "stop", "Stop virtual machine. The qemu process will exit immediately. This is akin to pulling the power plug of a running computer and may damage the VM data.", map[string]*api.Schema{
			"keepActive":        api.Bool().Def(0).Opt().TT("<boolean>"),
			"migratedfrom":      api.Str().Fmt("pve-node").Opt().TT("<string>"),
			"overrule-shutdown": api.Bool().Def(0).Opt().TT("<boolean>"),
			"skiplock":          api.Bool().Opt().TT("<boolean>"),
			"timeout":           api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
		}, d.vmStop),
		powerMethod("vm_reset", "reset", "Reset virtual machine.", map[string]*api.Schema{
			"skiplock": api.Bool().Opt().TT("<boolean>"),
		}, d.vmReset),
		powerMethod("vm_shutdown", "shutdown", "Shutdown virtual machine. This is similar to pressing the power button on a physical machine. This will send an ACPI event for the guest OS, which should then proceed to a clean shutdown.", map[string]*api.Schema{
			"forceStop":  api.Bool().Def(0).Opt().TT("<boolean>"),
			"keepActive": api.Bool().Def(0).Opt().TT("<boolean>"),
			"skiplock":   api.Bool().Opt().TT("<boolean>"),
			"timeout":    api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
		}, d.vmShutdown),
		powerMethod("vm_reboot", "reboot", "Reboot the VM by shutting it down, and starting it again. Applies pending changes.", map[string]*api.Schema{
			"timeout": api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
		}, d.vmReboot),
		powerMethod("vm_suspend", "suspend", "Suspend virtual machine.", map[string]*api.Schema{
			"skiplock":     api.Bool().Opt().TT("<boolean>"),
			"statestorage": api.Str().Fmt("pve-storage-id").Opt().Req("todisk").TT("<storage ID>"),
			"todisk":       api.Bool().Def(0).Opt().TT("<boolean>"),
		}, d.vmSuspend),
		powerMethod("vm_resume", "resume", "Resume virtual machine.", map[string]*api.Schema{
			"nocheck":  api.Bool().Opt().TT("<boolean>"),
			"skiplock": api.Bool().Opt().TT("<boolean>"),
		}, d.vmResume),
		{
			Name: "vmlist", Path: "/nodes/{node}/qemu", HTTP: "GET",
			Description: "Virtual machine index (per node).",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"full": api.Bool().Opt().TT("<boolean>"),
				"node": node(),
			},
			Returns: api.Arr(api.Obj(vmStatusProps())).WithLinks(api.Link{Href: "{vmid}", Rel: "child"}),
			Handle:  d.vmlist,
		}, {
			Name: "create_vm", Path: "/nodes/{node}/qemu", HTTP: "POST",
			Description: "Create or restore a virtual machine.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: api.Permissions{User: "all"},
			Params:      createParams(),
			Returns:     api.Str(),
			Handle:      d.createVM,
		},
		{
			Name: "vm_config", Path: "/nodes/{node}/qemu/{vmid}/config", HTTP: "GET",
			Description: "Get the virtual machine configuration with pending configuration changes applied. Set the 'current' parameter to get the current configuration instead.",
			ProxyTo:     "node",
			Permissions: api.Perm("/vms/{vmid}", "VM.Audit"),
			Params: map[string]*api.Schema{
				"current":  api.Bool().Def(0).Opt().TT("<boolean>"),
				"node":     node(),
				"snapshot": api.Str().Fmt("pve-configid").MaxLen(40).Opt().TT("<string>"),
				"vmid":     vmid(),
			},
			Returns: api.Obj(configReturnProps()),
			Handle:  d.vmConfig,
		},
		{
			Name: "update_vm_async", Path: "/nodes/{node}/qemu/{vmid}/config", HTTP: "POST",
			Description: "Set virtual machine options (asynchronous API).",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: configPerms,
			Params:      updateParams(true),
			Returns:     api.Str().Opt(),
			Handle:      d.updateVMAsync,
		},
		{
			Name: "update_vm", Path: "/nodes/{node}/qemu/{vmid}/config", HTTP: "PUT",
			Description: "Set virtual machine options (synchronous API) - You should consider using the POST method instead for any actions involving hotplug or storage allocation.",
			Protected:   true,
			ProxyTo:     "node",
			Permissions: configPerms,
			Params:      updateParams(false),
			Returns:     api.Null(),
			Handle:      d.updateVM,
		},
		vncproxyMethod(d),
		vncwebsocketMethod(d),
		termproxyMethod(d),
		spiceproxyMethod(d),
	}
}
