package qemuapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// Bounds of the power actions (PVE's defaults where it has them).
const (
	// defaultShutdownTimeout is how long a shutdown waits for the guest.
	defaultShutdownTimeout = 180 * time.Second
	// defaultStopTimeout is how long stop waits after QMP quit and SIGTERM
	// before SIGKILL.
	defaultStopTimeout = 10 * time.Second
	// qmpTimeout bounds one QMP command of a power action.
	qmpTimeout = 10 * time.Second
)

// startTimeout is PVE's start timeout: max(30 s, one second per GiB of
// memory), or the timeout parameter.
func startTimeout(cfg *qemu.Config, param int64) time.Duration {
	if param > 0 {
		return time.Duration(param) * time.Second
	}
	mem, err := cfg.Props.Memory()
	if err != nil {
		mem = 512
	}
	return max(30*time.Second, time.Duration(mem/1024)*time.Second)
}

// startLocked starts a VM under its lock: the config is read, pending
// changes are applied (and written) first, as PVE's vm_start does.
func (d *Deps) startLocked(ctx context.Context, l *tasks.Log, node string, vmid int, skip bool, timeout int64) error {
	unlock := d.VMs.Lock(vmid)
	defer unlock()
	if _, running := d.VMs.Running(vmid); running {
		return fmt.Errorf("VM %d already running", vmid)
	}
	var cfg *qemu.Config
	err := d.updateConfig(ctx, node, vmid, func(c *qemu.Config, _ string) error {
		if err := checkLock(c, skip); err != nil {
			return err
		}
		if len(c.Pending) > 0 {
			if err := d.applyPending(ctx, l, c); err != nil {
				return err
			}
		}
		cfg = c
		return nil
	})
	if err != nil {
		return err
	}
	if cfg.Props["template"] == "1" {
		return errors.New("you can't start a vm if it's a template")
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout(cfg, timeout))
	defer cancel()
	if err := d.VMs.Start(sctx, cfg); err != nil {
		if errors.Is(err, vmm.ErrRunning) {
			return fmt.Errorf("VM %d already running", vmid)
		}
		return fmt.Errorf("start failed: %w", err)
	}
	return nil
}

// powerPrecheck loads the config and checks the lock for a power action.
func (d *Deps) powerPrecheck(r *api.Request) (int, bool, error) {
	if err := d.needWorkers(); err != nil {
		return 0, false, err
	}
	vmid := vmidOf(r)
	skip, err := skiplock(r)
	if err != nil {
		return 0, false, err
	}
	cfg, _, err := d.loadConfig(r.NodeName, vmid)
	if err != nil {
		return 0, false, err
	}
	if err := checkLock(cfg, skip); err != nil {
		return 0, false, err
	}
	return vmid, skip, nil
}

// notImplementedParams refuses parameters of migration and live state that
// this build does not implement, rather than ignoring them.
func notImplementedParams(r *api.Request, names ...string) error {
	for _, n := range names {
		if r.Params.Has(n) {
			return api.Errorf(http.StatusNotImplemented, "not implemented: parameter '%s'", n)
		}
	}
	return nil
}

// vmStart is POST .../status/start: a qmstart task.
func (d *Deps) vmStart(ctx context.Context, r *api.Request) (any, error) {
	if err := notImplementedParams(r, "migratedfrom", "migration_network", "migration_type", "stateuri", "targetstorage", "force-cpu", "machine", "nets-host-mtu", "with-conntrack-state"); err != nil {
		return nil, err
	}
	vmid, skip, err := d.powerPrecheck(r)
	if err != nil {
		return nil, err
	}
	node, timeout := r.NodeName, r.Params.Int("timeout", 0)
	return d.startTask(ctx, r, "qmstart", vmid, func(ctx context.Context, l *tasks.Log) error {
		return d.startLocked(ctx, l, node, vmid, skip, timeout)
	})
}

// vmStop is POST .../status/stop: a qmstop task (QMP quit, SIGTERM, then
// SIGKILL after timeout). Stopping a stopped VM succeeds, as in PVE.
func (d *Deps) vmStop(ctx context.Context, r *api.Request) (any, error) {
	if err := notImplementedParams(r, "migratedfrom"); err != nil {
		return nil, err
	}
	vmid, _, err := d.powerPrecheck(r)
	if err != nil {
		return nil, err
	}
	timeout := defaultStopTimeout
	if t := r.Params.Int("timeout", 0); t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	return d.startTask(ctx, r, "qmstop", vmid, func(ctx context.Context, l *tasks.Log) error {
		unlock := d.VMs.Lock(vmid)
		defer unlock()
		return d.VMs.Stop(ctx, vmid, timeout)
	})
}

// checkRunning fails with PVE's "not running" error.
func (d *Deps) checkRunning(vmid int) error {
	if _, ok := d.VMs.Running(vmid); !ok {
		return fmt.Errorf("VM %d not running", vmid)
	}
	return nil
}

// checkNotPaused refuses to shut down a paused guest, as PVE does.
func (d *Deps) checkNotPaused(ctx context.Context, vmid int) error {
	qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	st, err := d.VMs.Status(qctx, vmid)
	if err == nil && st.QMPStatus == "paused" {
		return errors.New("VM is paused - cannot shutdown")
	}
	return nil
}

// vmShutdown is POST .../status/shutdown: a qmshutdown task (ACPI power
// button, wait, and with forceStop a stop after the timeout).
func (d *Deps) vmShutdown(ctx context.Context, r *api.Request) (any, error) {
	vmid, _, err := d.powerPrecheck(r)
	if err != nil {
		return nil, err
	}
	force := r.Params.Bool("forceStop", false)
	if !force {
		if err := d.checkNotPaused(ctx, vmid); err != nil {
			return nil, err
		}
	}
	timeout := defaultShutdownTimeout
	if t := r.Params.Int("timeout", 0); t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	return d.startTask(ctx, r, "qmshutdown", vmid, func(ctx context.Context, l *tasks.Log) error {
		unlock := d.VMs.Lock(vmid)
		defer unlock()
		if _, ok := d.VMs.Running(vmid); !ok {
			return nil
		}
		return d.VMs.Shutdown(ctx, vmid, timeout, force)
	})
}

// vmReboot is POST .../status/reboot: shut down, then start again with the
// pending changes applied (PVE's qmreboot).
func (d *Deps) vmReboot(ctx context.Context, r *api.Request) (any, error) {
	vmid, _, err := d.powerPrecheck(r)
	if err != nil {
		return nil, err
	}
	if err := d.checkRunning(vmid); err != nil {
		return nil, err
	}
	if err := d.checkNotPaused(ctx, vmid); err != nil {
		return nil, err
	}
	timeout := defaultShutdownTimeout
	if t := r.Params.Int("timeout", 0); t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	node := r.NodeName
	return d.startTask(ctx, r, "qmreboot", vmid, func(ctx context.Context, l *tasks.Log) error {
		unlock := d.VMs.Lock(vmid)
		err := d.VMs.Shutdown(ctx, vmid, timeout, false)
		unlock()
		if err != nil {
			return err
		}
		return d.startLocked(ctx, l, node, vmid, false, 0)
	})
}

// simpleQMPAction runs one QMP-backed action of a running VM as a task.
func (d *Deps) simpleQMPAction(ctx context.Context, r *api.Request, typ string, fn func(ctx context.Context, vmid int) error) (any, error) {
	vmid, _, err := d.powerPrecheck(r)
	if err != nil {
		return nil, err
	}
	if err := d.checkRunning(vmid); err != nil {
		return nil, err
	}
	return d.startTask(ctx, r, typ, vmid, func(ctx context.Context, l *tasks.Log) error {
		unlock := d.VMs.Lock(vmid)
		defer unlock()
		qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
		defer cancel()
		return fn(qctx, vmid)
	})
}

// vmReset is POST .../status/reset (QMP system_reset).
func (d *Deps) vmReset(ctx context.Context, r *api.Request) (any, error) {
	return d.simpleQMPAction(ctx, r, "qmreset", d.VMs.Reset)
}

// vmSuspend is POST .../status/suspend (QMP stop); suspend to disk is not
// implemented.
func (d *Deps) vmSuspend(ctx context.Context, r *api.Request) (any, error) {
	if r.Params.Bool("todisk", false) {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: suspend to disk (todisk)")
	}
	return d.simpleQMPAction(ctx, r, "qmsuspend", d.VMs.Suspend)
}

// vmResume is POST .../status/resume (QMP cont).
func (d *Deps) vmResume(ctx context.Context, r *api.Request) (any, error) {
	if r.Params.Bool("nocheck", false) {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: parameter 'nocheck'")
	}
	return d.simpleQMPAction(ctx, r, "qmresume", d.VMs.Resume)
}
