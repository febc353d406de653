package vmm

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// Scoper moves a VM's QEMU process out of the daemon's own cgroup, so that
// stopping or restarting the daemon's service does not kill the guests.
type Scoper interface {
	// Prepare removes what a previous QEMU of vmid left behind; it runs
	// before the process is started.
	Prepare(ctx context.Context, vmid int) error
	// Enter moves the started QEMU process pid into the VM's own unit.
	Enter(ctx context.Context, cfg *qemu.Config, pid int) error
}

// SystemdScope puts each QEMU into a transient systemd scope VMID.scope in
// qemu.slice over D-Bus, with the properties PVE gives it
// (PVE::QemuServer's vm_start with PVE::Systemd::enter_systemd_scope):
// systemd then leaves the process alone when pvedaemon.service stops or
// restarts, accounts its CPU and memory in the scope, and applies cpuunits
// and cpulimit.
type SystemdScope struct {
	// CgroupV2 selects CPUWeight (cgroup v2) over CPUShares (v1).
	CgroupV2 bool
}

// NewSystemdScope returns the systemd scoper for this host, or nil when
// systemd is not the init system (then QEMU stays in the daemon's cgroup).
func NewSystemdScope() *SystemdScope {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return nil
	}
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return &SystemdScope{CgroupV2: err == nil}
}

// scopeName is the unit of vmid.
func scopeName(vmid int) string { return strconv.Itoa(vmid) + ".scope" }

// Prepare is PVE's reset-failed and stop of a leftover VMID.scope.
func (s *SystemdScope) Prepare(ctx context.Context, vmid int) error {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	unit := scopeName(vmid)
	_ = conn.ResetFailedUnitContext(ctx, unit) // usually not loaded: not an error
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		return nil // no such unit, or nothing to stop; PVE ignores this too
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop leftover %s: %w", unit, ctx.Err())
	}
	return nil
}

// Enter starts the transient scope holding pid and waits for systemd's job.
func (s *SystemdScope) Enter(ctx context.Context, cfg *qemu.Config, pid int) error {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	unit := scopeName(cfg.VMID)
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", scopeProperties(cfg, pid, s.CgroupV2), done); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("start %s: systemd job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("start %s: %w", unit, ctx.Err())
	}
}

// scopeProperties are the properties of a VM's scope, as PVE sets them.
func scopeProperties(cfg *qemu.Config, pid int, cgroupV2 bool) []sddbus.Property {
	props := []sddbus.Property{
		sddbus.PropPids(uint32(pid)),
		sddbus.PropDescription("Proxmox VE VM " + strconv.Itoa(cfg.VMID)),
		sddbus.PropSlice("qemu.slice"),
		{Name: "KillMode", Value: dbus.MakeVariant("process")},
		{Name: "SendSIGKILL", Value: dbus.MakeVariant(false)},
		{Name: "TimeoutStopUSec", Value: dbus.MakeVariant(uint64(math.MaxUint64))},
		sddbus.PropAfter("dbus.service"),
		sddbus.PropBefore("pve-ha-lrm.service", "pve-guests.service"),
	}
	units := cpuUnits(cfg.Props["cpuunits"], cgroupV2)
	if cgroupV2 {
		props = append(props, sddbus.Property{Name: "CPUWeight", Value: dbus.MakeVariant(units)})
	} else {
		props = append(props, sddbus.Property{Name: "CPUShares", Value: dbus.MakeVariant(units)})
	}
	if limit, err := strconv.ParseFloat(cfg.Props["cpulimit"], 64); err == nil && limit > 0 {
		// PVE: CPUQuota = int(cpulimit * 100) percent, sent as
		// CPUQuotaPerSecUSec = percent * 10000.
		props = append(props, sddbus.Property{Name: "CPUQuotaPerSecUSec", Value: dbus.MakeVariant(uint64(int(limit*100)) * 10000)})
	}
	return props
}

// cpuUnits is PVE's clamp_cpu_shares: the cpuunits setting clamped to the
// cgroup's range (v2: 1-10000, default 100; v1: 2-262144, default 1024).
func cpuUnits(v string, cgroupV2 bool) uint64 {
	lo, hi, def := uint64(2), uint64(262144), uint64(1024)
	if cgroupV2 {
		lo, hi, def = 1, 10000, 100
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return def
	}
	return min(max(n, lo), hi)
}
