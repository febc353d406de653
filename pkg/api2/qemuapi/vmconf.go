package qemuapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// PrivChecker answers privilege questions (the api.Authenticator has it).
type PrivChecker interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
}

// Deps are the collaborators of the VM methods. Config and Privs are
// required everywhere; Tasks, VMs and Storage only where the protected
// methods run (pvedaemon): pveproxy forwards those.
type Deps struct {
	Config *pvefs.Root
	Privs  PrivChecker
	Tasks  *tasks.Manager
	VMs    *vmm.Manager
	// Storage resolves, allocates and frees guest volumes.
	Storage *storage.Host
	// QEMUVersion returns the version of the QEMU binary VMs are started
	// with ("7.2.0"), for the meta key of new configs; nil leaves it out.
	QEMUVersion func() string
	// HostCPUs is the number of host CPUs (vmstatus caps a VM's cpus at it).
	HostCPUs int
	// MACPrefix is the prefix of generated MAC addresses (PVE's datacenter
	// mac_prefix, default BC:24:11).
	MACPrefix string
	// Log receives events such as a QEMU process that died on its own.
	Log *slog.Logger
	// Now is the clock (ctime of new configs); default time.Now.
	Now func() time.Time
	// SpiceSecret returns the secret SPICE proxy tickets are signed with
	// (the CSRF secret of pve-www.key); nil derives it from pve-www.key in
	// Config on each call.
	SpiceSecret func() (string, error)
	// SerialTerminal shows serial, a VM's serial port, as a VNC terminal
	// on client, with password and the desktop name (pkg/vncterm's Serve;
	// the console of a VM with vga: serialN). pvedaemon sets it; it is a
	// field rather than an import so that the daemons that only declare
	// the API do not link the terminal emulator, whose character-width
	// tables cost about 27 ms at every start. nil answers 501.
	SerialTerminal func(ctx context.Context, client net.Conn, serial io.ReadWriteCloser, password, name string) error
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// configName is the config root path of a VM's config on node.
func configName(node string, vmid int) string {
	return "nodes/" + node + "/qemu-server/" + strconv.Itoa(vmid) + ".conf"
}

// errNoConfig is PVE's load_config error for a missing file.
func errNoConfig(node string, vmid int) error {
	return fmt.Errorf("Configuration file '%s' does not exist", configName(node, vmid))
}

// loadConfig reads and parses a VM config of this node; it also returns
// the file's digest.
func (d *Deps) loadConfig(node string, vmid int) (*qemu.Config, string, error) {
	raw, err := d.Config.ReadFile(configName(node, vmid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNoConfig(node, vmid)
	}
	if err != nil {
		return nil, "", err
	}
	cfg, err := qemu.Parse(vmid, raw)
	if err != nil {
		return nil, "", err
	}
	return cfg, qemu.Digest(raw), nil
}

// updateConfig runs fn on the VM's config under the config file's lock and
// writes the result atomically; nothing is written if fn fails. A missing
// config is PVE's "does not exist" error.
func (d *Deps) updateConfig(ctx context.Context, node string, vmid int, fn func(cfg *qemu.Config, digest string) error) error {
	return d.Config.Update(ctx, configName(node, vmid), 0o640, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errNoConfig(node, vmid)
		}
		cfg, err := qemu.Parse(vmid, old)
		if err != nil {
			return nil, err
		}
		if err := fn(cfg, qemu.Digest(old)); err != nil {
			return nil, err
		}
		return cfg.Marshal(), nil
	})
}

// checkLock is PVE's check_lock: a config with a lock refuses changes and
// power actions unless skiplock (root only) is given.
func checkLock(cfg *qemu.Config, skiplock bool) error {
	if l := cfg.Props["lock"]; l != "" && !skiplock {
		return fmt.Errorf("VM is locked (%s)", l)
	}
	return nil
}

// skiplock reads the skiplock parameter, which only root@pam may use.
func skiplock(r *api.Request) (bool, error) {
	if !r.Params.Bool("skiplock", false) {
		return false, nil
	}
	if r.Identity.AuthID != api.RootUser {
		return false, api.Errorf(http.StatusForbidden, "Only root may use this option.")
	}
	return true, nil
}

// vmidOf returns the validated vmid path parameter.
func vmidOf(r *api.Request) int {
	return int(r.Params.Int("vmid", 0))
}

// typedValue converts a config value to the JSON type its schema gives.
func typedValue(props map[string]*api.Schema, key, value string) any {
	return api.TypedValue(propSchema(props, key), value, false)
}

// needTasks answers methods that start tasks where there is no task manager.
func (d *Deps) needWorkers() error {
	if d.Tasks == nil || d.VMs == nil || d.Storage == nil {
		return api.Errorf(http.StatusNotImplemented, "not implemented: VM operations in this daemon")
	}
	return nil
}

// startTask starts a worker task of type typ for vmid.
func (d *Deps) startTask(ctx context.Context, r *api.Request, typ string, vmid int, fn tasks.Func) (any, error) {
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: typ, ID: strconv.Itoa(vmid), User: r.Identity.AuthID}, fn)
	if err != nil {
		return nil, err
	}
	return upid.String(), nil
}
