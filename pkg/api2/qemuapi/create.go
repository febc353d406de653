package qemuapi

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// schemaProps is configProps built once; it is never modified.
var schemaProps = sync.OnceValue(configProps)

// vmidAllocationLock serialises the check that a VMID is free with the
// creation of its config (pmxcfs's exclusive create).
const vmidAllocationLock = "nodes/.vmid-allocation"

// configParams returns the config keys among the parameters, sorted, with
// cdrom renamed to ide2 as PVE does.
func configParams(r *api.Request) (map[string]string, error) {
	out := map[string]string{}
	for k := range r.Params {
		if propSchema(schemaProps(), k) == nil {
			continue
		}
		v, _ := r.Params.String(k)
		if k == "cdrom" {
			if _, dup := r.Params.String("ide2"); dup {
				return nil, api.ParamError(map[string]string{"cdrom": "conflicts with ide2"})
			}
			k, v = "ide2", cdromValue(v)
		}
		out[k] = v
	}
	return out, nil
}

// cdromValue turns the cdrom parameter into an ide2 value.
func cdromValue(v string) string {
	if v == "none" || v == "cdrom" || !strings.Contains(v, "media=") {
		return v + ",media=cdrom"
	}
	return v
}

// prepared is a set of config changes after checking: the plain values,
// and the drives to allocate.
type prepared struct {
	values map[string]string
	drives []*driveSpec // in key order
}

// prepareConfig checks config values before anything is written:
// permissions per key, drives, nets (a MAC is generated when missing),
// the boot order and vmgenid.
func (d *Deps) prepareConfig(authid string, vmid int, pool string, in map[string]string, defStorage string) (*prepared, error) {
	keys := slices.Sorted(maps.Keys(in))
	if err := d.checkConfigPerms(authid, vmid, pool, keys); err != nil {
		return nil, err
	}
	if err := checkValueKeys(authid, keys); err != nil {
		return nil, err
	}
	p := &prepared{values: map[string]string{}}
	for _, k := range keys {
		v := in[k]
		switch {
		case isDriveKey(k):
			if err := d.checkDrivePerm(authid, vmid, pool, k, v); err != nil {
				return nil, err
			}
			spec, err := d.prepareDrive(authid, vmid, k, v, defStorage)
			if err != nil {
				return nil, err
			}
			if spec.isNew() {
				p.drives = append(p.drives, spec)
				continue
			}
		case isUnusedKey(k):
			return nil, api.ParamError(map[string]string{k: "unused volumes cannot be set, only deleted"})
		case netKeyRe.MatchString(k):
			nv, err := d.prepareNet(k, v)
			if err != nil {
				return nil, err
			}
			v = nv
		case k == "vmgenid" && v == "1":
			u, err := uuid.NewRandom()
			if err != nil {
				return nil, err
			}
			v = u.String()
		case k == "boot":
			if _, err := (qemu.Props{"boot": v}).BootOrder(); err != nil {
				return nil, api.ParamError(map[string]string{k: err.Error()})
			}
		}
		p.values[k] = v
	}
	return p, nil
}

// createVM is POST /nodes/{node}/qemu without archive: the VMID is
// reserved at once by a config holding only "lock: create" (after every
// check, so a refused call writes nothing), and a qmcreate task allocates
// the disks and writes the config.
func (d *Deps) createVM(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	vmid := vmidOf(r)
	authid := r.Identity.AuthID
	if _, ok := r.Params.String("archive"); ok {
		return d.restoreVM(ctx, r)
	}
	pool, _ := r.Params.String("pool")
	if pool != "" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: adding a new VM to a pool (pool)")
	}
	if err := d.checkVMPerm(authid, vmid, pool, false, "VM.Allocate"); err != nil {
		return nil, err
	}
	in, err := configParams(r)
	if err != nil {
		return nil, err
	}
	defStorage, _ := r.Params.String("storage")
	p, err := d.prepareConfig(authid, vmid, pool, in, defStorage)
	if err != nil {
		return nil, err
	}
	if err := d.reserveVMID(ctx, r.NodeName, vmid); err != nil {
		return nil, err
	}
	node := r.NodeName
	start := r.Params.Bool("start", false)
	worker := func(ctx context.Context, l *tasks.Log) error {
		var created []string
		err := d.buildNewConfig(ctx, l, node, vmid, p, &created)
		if err != nil {
			for _, volid := range created {
				if ferr := d.Storage.Free(ctx, volid); ferr != nil {
					l.Warnf("could not remove disk '%s', check manually: %v", volid, ferr)
				}
			}
			if rerr := d.Config.Remove(configName(node, vmid)); rerr != nil {
				l.Warnf("could not remove config of VM %d: %v", vmid, rerr)
			}
			return fmt.Errorf("unable to create VM %d - %w", vmid, err)
		}
		if start {
			l.Printf("Starting VM %d", vmid)
			return d.startLocked(ctx, l, node, vmid, false, 0)
		}
		return nil
	}
	return d.startTask(ctx, r, "qmcreate", vmid, worker)
}

// reserveVMID writes the "lock: create" config of a new VM, unless the VMID
// is in use anywhere in the cluster (then a 400 naming vmid).
func (d *Deps) reserveVMID(ctx context.Context, node string, vmid int) error {
	unlock, err := d.Config.Lock(ctx, vmidAllocationLock)
	if err != nil {
		return err
	}
	defer unlock()
	list, err := vmlist.Read(d.Config)
	if err != nil {
		return err
	}
	if g, ok := list[vmid]; ok {
		kind := "VM"
		if g.Type == "lxc" {
			kind = "CT"
		}
		return api.ParamError(map[string]string{"vmid": fmt.Sprintf("%s %d already exists on node '%s'", kind, vmid, g.Node)})
	}
	dir := "nodes/" + node + "/qemu-server"
	if err := d.Config.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return d.Config.WriteFile(configName(node, vmid), (&qemu.Config{VMID: vmid, Props: qemu.Props{"lock": "create"}}).Marshal(), 0o640)
}

// buildNewConfig allocates the new disks of p (appending their volume IDs
// to created as it goes) and writes the VM's config with PVE's defaults for
// new VMs: smbios1 and vmgenid UUIDs, meta, and a boot order.
func (d *Deps) buildNewConfig(ctx context.Context, l *tasks.Log, node string, vmid int, p *prepared, created *[]string) error {
	values := p.values
	for _, spec := range p.drives {
		v, volid, err := d.allocate(ctx, vmid, spec)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.key, err)
		}
		*created = append(*created, volid)
		values[spec.key] = v
		l.Printf("%s: successfully created disk '%s'", spec.key, v)
	}
	if _, ok := values["smbios1"]; !ok {
		u, err := uuid.NewRandom()
		if err != nil {
			return err
		}
		values["smbios1"] = "uuid=" + u.String()
	}
	if _, ok := values["vmgenid"]; !ok {
		u, err := uuid.NewRandom()
		if err != nil {
			return err
		}
		values["vmgenid"] = u.String()
	}
	if d.QEMUVersion != nil {
		if v := d.QEMUVersion(); v != "" {
			values["meta"] = "creation-qemu=" + v + ",ctime=" + strconv.FormatInt(d.now().Unix(), 10)
		}
	}
	if _, ok := values["boot"]; !ok {
		if order := defaultBootOrder(values); order != "" {
			values["boot"] = "order=" + order
		}
	}
	return d.updateConfig(ctx, node, vmid, func(cfg *qemu.Config, _ string) error {
		if cfg.Props["lock"] != "create" {
			return fmt.Errorf("config of VM %d changed while it was created", vmid)
		}
		cfg.Props = qemu.Props(values)
		return nil
	})
}

// defaultBootOrder is PVE's get_default_bootdevices: the first disk, the
// first CD-ROM and the first NIC, joined with ';'.
func defaultBootOrder(values map[string]string) string {
	var devs []string
	for _, cdrom := range []bool{false, true} {
		for _, k := range qemu.DriveKeys() {
			if k == "efidisk0" || k == "tpmstate0" {
				continue
			}
			if v, ok := values[k]; ok && isCDROMValue(k, v) == cdrom {
				devs = append(devs, k)
				break
			}
		}
	}
	nets := []int{}
	for k := range values {
		if n, ok := strings.CutPrefix(k, "net"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				nets = append(nets, i)
			}
		}
	}
	if len(nets) > 0 {
		sort.Ints(nets)
		devs = append(devs, "net"+strconv.Itoa(nets[0]))
	}
	return strings.Join(devs, ";")
}
