package qemuapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// fastPlug are the keys PVE changes at once even on a running VM.
var fastPlug = set("lock", "name", "onboot", "hotplug", "shares", "startup", "description", "protection", "vm-state-storage", "vmstatestorage", "tags")

// errModified is PVE's assert_if_modified error.
var errModified = errors.New("detected modified configuration - file changed by other user? Try again.")

// configChange is an update call after its checks.
type configChange struct {
	set      *prepared
	del      []string
	revert   []string
	force    bool
	digest   string
	skiplock bool
}

// parseUpdate checks an update call before anything is written.
func (d *Deps) parseUpdate(r *api.Request, vmid int) (*configChange, error) {
	in, err := configParams(r)
	if err != nil {
		return nil, err
	}
	c := &configChange{force: r.Params.Bool("force", false)}
	c.digest, _ = r.Params.String("digest")
	if c.skiplock, err = skiplock(r); err != nil {
		return nil, err
	}
	list := func(name string) []string {
		v, _ := r.Params.String(name)
		return access.SplitList(v)
	}
	for _, k := range list("delete") {
		if k == "cdrom" {
			k = "ide2"
		}
		if _, ok := in[k]; ok {
			return nil, api.ParamError(map[string]string{"delete": fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", k, k)})
		}
		if propSchema(schemaProps(), k) == nil {
			return nil, api.ParamError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", k)})
		}
		c.del = append(c.del, k)
	}
	for _, k := range list("revert") {
		if _, ok := in[k]; ok {
			return nil, api.ParamError(map[string]string{"revert": fmt.Sprintf("you can't use '-%s' and '-revert %s' at the same time", k, k)})
		}
		c.revert = append(c.revert, k)
	}
	if len(in) == 0 && len(c.del) == 0 && len(c.revert) == 0 {
		return nil, api.ParamError(map[string]string{"_root": "no options specified"})
	}
	authid := r.Identity.AuthID
	if err := d.checkConfigPerms(authid, vmid, "", append(append([]string{}, c.del...), c.revert...)); err != nil {
		return nil, err
	}
	if c.set, err = d.prepareConfig(authid, vmid, "", in, ""); err != nil {
		return nil, err
	}
	return c, nil
}

// updateVM is PUT .../config: the change is made in the call.
func (d *Deps) updateVM(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	vmid := vmidOf(r)
	c, err := d.parseUpdate(r, vmid)
	if err != nil {
		return nil, err
	}
	return nil, d.applyChange(ctx, nil, r.NodeName, vmid, c)
}

// updateVMAsync is POST .../config: a qmconfig task makes the change;
// with background_delay the call waits that long for it.
func (d *Deps) updateVMAsync(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	vmid := vmidOf(r)
	c, err := d.parseUpdate(r, vmid)
	if err != nil {
		return nil, err
	}
	if _, _, err := d.loadConfig(r.NodeName, vmid); err != nil {
		return nil, err
	}
	node := r.NodeName
	return d.startTask(ctx, r, "qmconfig", vmid, func(ctx context.Context, l *tasks.Log) error {
		return d.applyChange(ctx, l, node, vmid, c)
	})
}

// applyChange makes a checked change under the VM's lock: new disks are
// allocated first (and freed again if the config cannot be written), then
// the config is rewritten in one atomic update. A stopped VM gets the
// change at once; a running one only for PVE's fast-plug keys, the rest
// stays pending until the next start (hotplug is not implemented).
func (d *Deps) applyChange(ctx context.Context, l *tasks.Log, node string, vmid int, c *configChange) error {
	unlock := d.VMs.Lock(vmid)
	defer unlock()
	if cfg, digest, err := d.loadConfig(node, vmid); err != nil {
		return err
	} else if c.digest != "" && c.digest != digest {
		return errModified
	} else if err := checkLock(cfg, c.skiplock); err != nil {
		return err
	}
	values := make(map[string]string, len(c.set.values)+len(c.set.drives))
	for k, v := range c.set.values {
		values[k] = v
	}
	var created []string
	for _, spec := range c.set.drives {
		v, volid, err := d.allocate(ctx, vmid, spec)
		if err != nil {
			d.freeAll(ctx, l, created)
			return fmt.Errorf("%s: %w", spec.key, err)
		}
		created = append(created, volid)
		values[spec.key] = v
		if l != nil {
			l.Printf("%s: successfully created disk '%s'", spec.key, v)
		}
	}
	_, running := d.VMs.Running(vmid)
	var toFree []string
	err := d.updateConfig(ctx, node, vmid, func(cfg *qemu.Config, digest string) error {
		if c.digest != "" && c.digest != digest {
			return errModified
		}
		if err := checkLock(cfg, c.skiplock); err != nil {
			return err
		}
		if cfg.Pending == nil {
			cfg.Pending = qemu.Props{}
		}
		del := pendingDelete(cfg.Pending["delete"])
		for _, k := range c.revert {
			delete(cfg.Pending, k)
			delete(del, k)
		}
		for _, k := range c.del {
			if cfg.Props["protection"] == "1" && (isDriveKey(k) || isUnusedKey(k)) && k != "protection" {
				return fmt.Errorf("can't remove drive '%s' - protection mode enabled", k)
			}
			delete(cfg.Pending, k)
			if running && !fastPlug[k] {
				if _, ok := cfg.Props[k]; ok {
					del[k] = c.force
				}
				continue
			}
			toFree = append(toFree, removeKey(cfg, k, c.force)...)
		}
		for _, k := range slices.Sorted(maps.Keys(values)) {
			delete(del, k)
			if running && !fastPlug[k] {
				cfg.Pending[k] = values[k]
				continue
			}
			if old, ok := cfg.Props[k]; ok && isDriveKey(k) && !isCDROMValue(k, old) {
				if vol := driveVolume(k, old); vol != "" && vol != driveVolume(k, values[k]) {
					addUnused(cfg, vol)
				}
			}
			cfg.Props[k] = values[k]
			delete(cfg.Pending, k)
		}
		if len(del) > 0 {
			cfg.Pending["delete"] = printPendingDelete(del)
		} else {
			delete(cfg.Pending, "delete")
		}
		return nil
	})
	if err != nil {
		d.freeAll(ctx, l, created)
		return err
	}
	for _, volid := range toFree {
		if err := d.Storage.Free(ctx, volid); err != nil {
			warn(l, "could not remove volume '%s': %v", volid, err)
		}
	}
	return nil
}

// removeKey deletes a key from a stopped VM's config as PVE's
// vmconfig_delete_or_detach_drive does: a disk becomes unusedN (or, with
// force, is returned for freeing); an unusedN volume is returned for
// freeing.
func removeKey(cfg *qemu.Config, k string, force bool) (free []string) {
	v, ok := cfg.Props[k]
	if !ok {
		return nil
	}
	delete(cfg.Props, k)
	switch {
	case isUnusedKey(k):
		vol, _, _ := strings.Cut(strings.TrimPrefix(v, "file="), ",")
		if vol != "" && !volumeUsed(cfg, vol) {
			free = append(free, vol)
		}
	case isDriveKey(k) && !isCDROMValue(k, v):
		if vol := driveVolume(k, v); vol != "" {
			if force {
				if !volumeUsed(cfg, vol) {
					free = append(free, vol)
				}
			} else {
				addUnused(cfg, vol)
			}
		}
	}
	return free
}

// volumeUsed reports whether vol is still referenced by the config (its
// current keys, pending changes or snapshots).
func volumeUsed(cfg *qemu.Config, vol string) bool {
	for _, v := range volumesOf(cfg) {
		if v == vol {
			return true
		}
	}
	return false
}

// addUnused records vol as the first free unusedN, unless it is already
// listed (PVE's add_unused_volume).
func addUnused(cfg *qemu.Config, vol string) {
	if strings.HasPrefix(vol, "/") {
		return
	}
	free := -1
	for i := 0; i < 256; i++ {
		v, ok := cfg.Props["unused"+strconv.Itoa(i)]
		if !ok {
			if free < 0 {
				free = i
			}
			continue
		}
		if cur, _, _ := strings.Cut(strings.TrimPrefix(v, "file="), ","); cur == vol {
			return
		}
	}
	if free >= 0 {
		cfg.Props["unused"+strconv.Itoa(free)] = vol
	}
}

// applyPending applies a config's pending changes (at start): values move
// to the current config, deletions are made and replaced disks become
// unusedN. Volumes of forced deletions are freed.
func (d *Deps) applyPending(ctx context.Context, l *tasks.Log, cfg *qemu.Config) error {
	var toFree []string
	for k, force := range pendingDelete(cfg.Pending["delete"]) {
		toFree = append(toFree, removeKey(cfg, k, force)...)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Pending)) {
		if k == "delete" {
			continue
		}
		v := cfg.Pending[k]
		if old, ok := cfg.Props[k]; ok && isDriveKey(k) && !isCDROMValue(k, old) {
			if vol := driveVolume(k, old); vol != "" && vol != driveVolume(k, v) {
				addUnused(cfg, vol)
			}
		}
		cfg.Props[k] = v
	}
	cfg.Pending = nil
	for _, volid := range toFree {
		if err := d.Storage.Free(ctx, volid); err != nil {
			warn(l, "could not remove volume '%s': %v", volid, err)
		}
	}
	return nil
}

// freeAll frees volumes allocated by a change that failed.
func (d *Deps) freeAll(ctx context.Context, l *tasks.Log, vols []string) {
	for _, volid := range vols {
		if err := d.Storage.Free(ctx, volid); err != nil {
			warn(l, "could not remove disk '%s', check manually: %v", volid, err)
		}
	}
}

// warn writes a warning to the task log, or the daemon log outside tasks.
func warn(l *tasks.Log, format string, args ...any) {
	if l != nil {
		l.Warnf(format, args...)
	}
}

// destroyLocked removes a stopped VM: its own volumes (in the config, and
// with unreferenced also vm-VMID-* images on every storage), its config, and
// with purge its ACL entries and pool membership.
func (d *Deps) destroyLocked(ctx context.Context, l *tasks.Log, node string, vmid int, skip, purge, unreferenced bool) error {
	unlock := d.VMs.Lock(vmid)
	defer unlock()
	if _, running := d.VMs.Running(vmid); running {
		return fmt.Errorf("VM %d is running - destroy failed", vmid)
	}
	cfg, _, err := d.loadConfig(node, vmid)
	if err != nil {
		return err
	}
	if err := checkLock(cfg, skip); err != nil {
		return err
	}
	vols := volumesOf(cfg)
	if unreferenced {
		vols = append(vols, d.unreferencedVolumes(ctx, vmid, vols)...)
	}
	for _, volid := range vols {
		_, volname, err := storage.ParseVolumeID(volid)
		if err != nil {
			continue // an absolute path: not ours to delete
		}
		if v, err := storage.ParseVolname(volname); err != nil || v.VMID != vmid {
			continue // PVE frees only volumes the VM owns
		}
		if err := d.Storage.Free(ctx, volid); err != nil {
			l.Warnf("could not remove disk '%s', check manually: %v", volid, err)
			continue
		}
		l.Printf("Removed volume '%s'", volid)
	}
	if err := d.Config.Remove(configName(node, vmid)); err != nil {
		return err
	}
	if purge {
		err := access.UpdateUserCfg(ctx, d.Config, func(u *access.UserCfg) error {
			for _, p := range u.Pools {
				delete(p.VMs, vmid)
			}
			if vms := u.ACL.Children["vms"]; vms != nil {
				delete(vms.Children, strconv.Itoa(vmid))
			}
			return nil
		})
		if err != nil {
			l.Warnf("could not purge VM %d from ACLs and pools: %v", vmid, err)
		} else {
			l.Printf("purging VM %d from related configurations..", vmid)
		}
	}
	return nil
}

// unreferencedVolumes lists the images of vmid on every enabled dir storage
// of this node that known does not contain.
func (d *Deps) unreferencedVolumes(ctx context.Context, vmid int, known []string) []string {
	cfg, err := d.Storage.Config()
	if err != nil {
		return nil
	}
	seen := set(known...)
	var out []string
	for _, s := range cfg.Sections {
		dir, err := d.Storage.Storage(s.ID)
		if err != nil {
			continue
		}
		list, err := dir.List(ctx, storage.ListOptions{Content: []string{storage.VTypeImages}, VMID: vmid})
		if err != nil {
			continue
		}
		for _, v := range list {
			if !seen[v.VolID] {
				seen[v.VolID] = true
				out = append(out, v.VolID)
			}
		}
	}
	return out
}
