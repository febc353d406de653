package qemuapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vma"
	"github.com/pvenode/pvenode/pkg/vmlist"
	"github.com/pvenode/pvenode/pkg/vzdump"
)

// restoreVM is POST /nodes/{node}/qemu with archive: PVE's restore of a
// VMA backup. The VMID is reserved (or, with force, the existing VM
// locked) before the qmrestore task reads the archive, allocates the
// disks, writes their data and the rewritten config.
func (d *Deps) restoreVM(ctx context.Context, r *api.Request) (any, error) {
	vmid := vmidOf(r)
	authid := r.Identity.AuthID
	node := r.NodeName
	archive := r.Params.Get("archive")
	if archive == "-" {
		return nil, api.ParamError(map[string]string{"archive": "pipe requires cli environment"})
	}
	for _, k := range []string{"pool", "ha-managed"} {
		if r.Params.Has(k) && (k != "ha-managed" || r.Params.Bool(k, false)) {
			return nil, api.Errorf(http.StatusNotImplemented, "not implemented: %s with restore", k)
		}
	}
	if r.Params.Bool("live-restore", false) {
		return nil, api.ParamError(map[string]string{"live-restore": "live-restore is only compatible with backup images from a Proxmox Backup Server"})
	}
	for k := range r.Params {
		if isDriveKey(k) || k == "cdrom" {
			return nil, api.ParamError(map[string]string{k: "option conflicts with option 'archive'"})
		}
	}
	targetStorage, _ := r.Params.String("storage")
	if targetStorage != "" && authid != api.RootUser && !d.Privs.CheckPrivs(authid, "/storage/"+targetStorage, []string{"Datastore.AllocateSpace"}, false) {
		return nil, api.PermissionDenied("/storage/"+targetStorage, "Datastore.AllocateSpace")
	}
	force := r.Params.Bool("force", false)
	_, cfgErr := d.Config.Stat(configName(node, vmid))
	exists := cfgErr == nil
	if err := d.checkVMPerm(authid, vmid, "", false, "VM.Allocate"); err != nil {
		if !(force && exists && d.checkVMPerm(authid, vmid, "", false, "VM.Backup") == nil) {
			return nil, err
		}
	}
	bv, err := vzdump.ResolveBackupVolume(d.Storage, archive)
	if err != nil {
		return nil, api.ParamError(map[string]string{"archive": err.Error()})
	}
	if bv.Storage == "" {
		if authid != api.RootUser {
			return nil, api.Errorf(http.StatusForbidden, "Only root can pass arbitrary filesystem paths.")
		}
	} else if authid != api.RootUser {
		if !d.Privs.CheckPrivs(authid, "/storage/"+bv.Storage, []string{"Datastore.AllocateSpace"}, false) {
			return nil, api.PermissionDenied("/storage/"+bv.Storage, "Datastore.AllocateSpace")
		}
		if bv.OwnerVMID != vmid && d.checkVMPerm(authid, bv.OwnerVMID, "", false, "VM.Backup") != nil {
			return nil, api.PermissionDenied("/vms/"+strconv.Itoa(bv.OwnerVMID), "VM.Backup")
		}
	}
	if _, err := os.Stat(bv.Path); err != nil {
		return nil, api.ParamError(map[string]string{"archive": fmt.Sprintf("unable to access archive '%s': %v", archive, err)})
	}
	// Plain config keys given beside the archive override the restored
	// ones (PVE's override_conf).
	in, err := configParams(r)
	if err != nil {
		return nil, err
	}
	override, err := d.prepareConfig(authid, vmid, "", in, "")
	if err != nil {
		return nil, err
	}
	old, err := d.lockForRestore(ctx, node, vmid, force)
	if err != nil {
		return nil, err
	}
	rs := &restoreRun{d: d, node: node, vmid: vmid, archive: bv.Path, storage: targetStorage,
		unique: r.Params.Bool("unique", false), bwlimit: r.Params.Int("bwlimit", 0), authid: authid, old: old, override: override.values}
	start := r.Params.Bool("start", false)
	worker := func(ctx context.Context, l *tasks.Log) error {
		rs.log = l
		if err := rs.run(ctx); err != nil {
			rs.undo()
			return fmt.Errorf("unable to restore VM %d - %w", vmid, err)
		}
		if start {
			l.Printf("Execute autostart")
			if err := d.startLocked(ctx, l, node, vmid, false, 0); err != nil {
				l.Warnf("%v", err)
			}
		}
		return nil
	}
	upid, err := d.startTask(ctx, r, "qmrestore", vmid, worker)
	if err != nil {
		rs.undo()
		return nil, err
	}
	return upid, nil
}

// lockForRestore reserves vmid with a "lock: create" config. An existing
// VM of this node is only replaced with force, if it is neither running,
// protected nor locked; its config is returned.
func (d *Deps) lockForRestore(ctx context.Context, node string, vmid int, force bool) (*qemu.Config, error) {
	unlock, err := d.Config.Lock(ctx, vmidAllocationLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	list, err := vmlist.Read(d.Config)
	if err != nil {
		return nil, err
	}
	g, ok := list[vmid]
	if !ok {
		dir := "nodes/" + node + "/qemu-server"
		if err := d.Config.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return nil, d.Config.WriteFile(configName(node, vmid), (&qemu.Config{VMID: vmid, Props: qemu.Props{"lock": "create"}}).Marshal(), 0o640)
	}
	if g.Node != node || g.Type != "qemu" {
		return nil, api.ParamError(map[string]string{"vmid": fmt.Sprintf("unable to restore VM %d: guest exists on node '%s'", vmid, g.Node)})
	}
	if !force {
		return nil, fmt.Errorf("unable to restore VM %d - config file already exists", vmid)
	}
	var old *qemu.Config
	err = d.updateConfig(ctx, node, vmid, func(cfg *qemu.Config, _ string) error {
		if cfg.Props["protection"] == "1" {
			return fmt.Errorf("unable to restore VM %d - protection mode enabled", vmid)
		}
		if err := checkLock(cfg, false); err != nil {
			return fmt.Errorf("unable to restore VM %d - %w", vmid, err)
		}
		if _, running := d.VMs.Running(vmid); running {
			return fmt.Errorf("unable to restore VM %d - vm is running", vmid)
		}
		c := *cfg
		c.Props = maps.Clone(cfg.Props)
		old = &c
		cfg.Props["lock"] = "create"
		return nil
	})
	return old, err
}

// restoreRun is one restore task.
type restoreRun struct {
	d        *Deps
	log      restoreLog
	node     string
	vmid     int
	archive  string
	storage  string // target storage; "" keeps each disk's
	unique   bool
	bwlimit  int64 // KiB/s reading the archive; 0: none
	authid   string
	old      *qemu.Config
	override map[string]string

	created []string // volids allocated so far
	temps   []string // temporary files
	freed   []string // keys of old disks already freed
}

// restoreDisk is one archive device and where it goes.
type restoreDisk struct {
	dev     vma.Device
	virtdev string // drive key
	storage string
	format  string
	volid   string
	path    string // allocated image
	raw     string // file the data is extracted into (path for raw)
	file    *os.File
}

func (rs *restoreRun) run(ctx context.Context) error {
	l := rs.log
	l.Printf("restore vma archive: %s", rs.archive)
	if rs.bwlimit > 0 {
		l.Printf("applying read rate limit: %d", rs.bwlimit)
	}
	a, err := vzdump.OpenArchiveContext(ctx, rs.archive, rs.bwlimit*1024)
	if err != nil {
		return err
	}
	defer a.Close()
	var disks []*restoreDisk
	defer func() {
		for _, dk := range disks {
			if dk.file != nil {
				dk.file.Close()
			}
		}
	}()
	for _, dev := range a.Devices() {
		l.Printf("DEV: dev_id=%d size: %d devname: %s", dev.ID, dev.Size, dev.Name)
	}
	confData, ok := a.Config(vzdump.ConfigName)
	if !ok {
		return fmt.Errorf("archive has no %s", vzdump.ConfigName)
	}
	conf := string(confData)
	disks, err = rs.planDisks(a.Devices(), conf)
	if err != nil {
		return err
	}
	if rs.old != nil {
		rs.freeOldDisks(ctx, disks)
	}
	if err := rs.allocate(ctx, disks); err != nil {
		return err
	}
	byName := map[string]*restoreDisk{}
	for _, dk := range disks {
		byName[dk.dev.Name] = dk
	}
	err = a.Extract(func(dev vma.Device) (io.WriterAt, error) {
		dk := byName[dev.Name]
		if dk == nil {
			return nil, fmt.Errorf("found no device mapping information for device '%s'", dev.Name)
		}
		return dk.file, nil
	})
	for _, dk := range disks {
		if dk.file == nil {
			continue
		}
		if cerr := dk.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
		dk.file = nil
	}
	if err != nil {
		return err
	}
	for _, dk := range disks {
		if dk.raw != dk.path {
			if err := rs.convertInto(ctx, dk); err != nil {
				return err
			}
			_ = os.Remove(dk.raw)
		}
	}
	if fw, ok := a.Config(vzdump.FirewallName); ok {
		if err := rs.d.Config.MkdirAll("firewall", 0o755); err == nil {
			if err := rs.d.Config.WriteFile("firewall/"+strconv.Itoa(rs.vmid)+".fw", fw, 0o640); err != nil {
				l.Warnf("unable to restore firewall config: %v", err)
			}
		}
	}
	return rs.writeConfig(ctx, conf, disks)
}

// planDisks maps the archive's devices to drives, target storages and
// formats (PVE's parse_backup_hints).
func (rs *restoreRun) planDisks(devs []vma.Device, conf string) ([]*restoreDisk, error) {
	maps, err := vzdump.ParseDiskMaps(conf)
	if err != nil {
		return nil, err
	}
	byName := map[string]vma.Device{}
	for _, dev := range devs {
		byName[dev.Name] = dev
	}
	var out []*restoreDisk
	seen := map[string]bool{}
	for _, m := range maps {
		dev, ok := byName[m.DevName]
		if !ok {
			return nil, fmt.Errorf("archive does not contain data for drive '%s'", m.VirtDev)
		}
		if !isDriveKey(m.VirtDev) {
			return nil, fmt.Errorf("bad drive '%s' in archive", m.VirtDev)
		}
		sid := m.Storage
		if rs.storage != "" {
			sid = rs.storage
		} else if sid == "" {
			sid = "local"
		}
		format := m.Format
		if format == "" {
			format = "raw"
		}
		dir, err := rs.d.Storage.Storage(sid)
		if err != nil {
			return nil, err
		}
		if !dir.Section.HasContent(storage.VTypeImages) {
			return nil, fmt.Errorf("Content type 'images' is not available on storage '%s'", sid)
		}
		if rs.authid != api.RootUser && !rs.d.Privs.CheckPrivs(rs.authid, "/storage/"+sid, []string{"Datastore.AllocateSpace"}, false) {
			return nil, api.PermissionDenied("/storage/"+sid, "Datastore.AllocateSpace")
		}
		if !slices.Contains([]string{"raw", "qcow2", "vmdk"}, format) {
			format = dir.DefaultFormat()
		}
		seen[m.DevName] = true
		out = append(out, &restoreDisk{dev: dev, virtdev: m.VirtDev, storage: sid, format: format})
	}
	for _, dev := range devs {
		if !seen[dev.Name] {
			return nil, fmt.Errorf("found no device mapping information for device '%s'", dev.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].virtdev < out[j].virtdev })
	return out, nil
}

// ownedVolume reports whether volid is a volume of vmid on a storage.
func (rs *restoreRun) ownedVolume(volid string) bool {
	if strings.HasPrefix(volid, "/") {
		return false
	}
	_, volname, err := storage.ParseVolumeID(volid)
	if err != nil {
		return false
	}
	v, err := storage.ParseVolname(volname)
	return err == nil && v.VMID == rs.vmid && v.VType == storage.VTypeImages
}

// freeOldDisks frees the disks of the replaced VM that the archive
// restores (PVE's restore_cleanup_oldconf); its other disks stay.
func (rs *restoreRun) freeOldDisks(ctx context.Context, disks []*restoreDisk) {
	restored := map[string]bool{}
	for _, dk := range disks {
		restored[dk.virtdev] = true
	}
	drives, _ := rs.old.Props.Drives()
	for _, dr := range drives {
		if dr.IsCDROM() || !restored[dr.Key] || !rs.ownedVolume(dr.Volume) {
			continue
		}
		if err := rs.d.Storage.Free(ctx, dr.Volume); err != nil {
			rs.log.Warnf("%v", err)
			continue
		}
		rs.freed = append(rs.freed, dr.Key)
	}
}

// allocate creates the target volumes and opens the files the data is
// extracted into: the image itself for raw, else a sparse raw temporary
// file beside it that is converted afterwards.
func (rs *restoreRun) allocate(ctx context.Context, disks []*restoreDisk) error {
	for _, dk := range disks {
		sizeKiB := uint64((dk.dev.Size + 1023) / 1024)
		volid, err := rs.d.Storage.Alloc(ctx, dk.storage, rs.vmid, dk.format, sizeKiB)
		if err != nil {
			return fmt.Errorf("%s: %w", dk.virtdev, err)
		}
		rs.created = append(rs.created, volid)
		dk.volid = volid
		rs.log.Printf("new volume ID is '%s'", volid)
		path, _, err := rs.d.Storage.Resolve(volid)
		if err != nil {
			return err
		}
		dk.path, dk.raw = path, path
		if dk.format != "raw" {
			dk.raw = path + ".restore.tmp"
			rs.temps = append(rs.temps, dk.raw)
			f, err := os.OpenFile(dk.raw, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", dk.virtdev, err)
			}
			dk.file = f
			if err := f.Truncate(dk.dev.Size); err != nil {
				return fmt.Errorf("%s: %w", dk.virtdev, err)
			}
		} else {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", dk.virtdev, err)
			}
			dk.file = f
		}
		rs.log.Printf("map '%s' to '%s' (write zeros = 0)", dk.dev.Name, path)
	}
	return nil
}

// convertInto writes the extracted raw data into a non-raw image that
// was just created (and reads as zeros).
func (rs *restoreRun) convertInto(ctx context.Context, dk *restoreDisk) error {
	if err := rs.d.Storage.Dir.QemuImg.Convert(ctx, "raw", dk.format, dk.raw, dk.path, true); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s: %w", dk.virtdev, err)
	}
	return nil
}

var (
	restoreDriveRe = regexp.MustCompile(`^((?:ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$`)
	restoreNetRe   = regexp.MustCompile(`^(net\d+):\s*(\S+)\s*$`)
)

// restoreConfigLine is PVE's restore_update_config_line: map lines,
// lock, unused and parent are dropped; restored drives point to their new
// volumes (without format); backup=0 drives are commented out; vmgenid is
// renewed; with unique also the MACs and the SMBIOS UUID.
func (rs *restoreRun) restoreConfigLine(line string, volids map[string]string) (string, error) {
	for _, p := range []string{"#qmdump#", "#vzdump#", "lock:", "parent:"} {
		if strings.HasPrefix(line, p) {
			return "", nil
		}
	}
	if strings.HasPrefix(line, "unused") && isUnusedKey(strings.SplitN(line, ":", 2)[0]) {
		return "", nil
	}
	if m := restoreNetRe.FindStringSubmatch(line); m != nil && rs.unique {
		f := driveOrPropFormat(m[1])
		opts, err := api.ParsePropertyString(f, m[2], m[1])
		if err != nil {
			return "", fmt.Errorf("%s: %w", m[1], err)
		}
		if opts["macaddr"] != "" {
			mac, err := randomMAC(rs.d.MACPrefix)
			if err != nil {
				return "", err
			}
			opts["macaddr"] = mac
		}
		v, err := api.PrintPropertyString(f, opts)
		return m[1] + ": " + v + "\n", err
	}
	if m := restoreDriveRe.FindStringSubmatch(line); m != nil {
		f := driveFormat(m[1])
		opts, err := api.ParsePropertyString(f, m[2], m[1])
		if err != nil {
			return "", fmt.Errorf("%s: %w", m[1], err)
		}
		if b, ok := opts["backup"]; ok && api.NormBool(b) == "0" {
			return "#" + line, nil
		}
		if volid, ok := volids[m[1]]; ok {
			delete(opts, "format")
			opts["file"] = volid
			v, err := api.PrintPropertyString(f, opts)
			return m[1] + ": " + v + "\n", err
		}
		return line, nil
	}
	if v, ok := strings.CutPrefix(line, "vmgenid: "); ok {
		if strings.TrimSpace(v) != "0" {
			u, err := uuid.NewRandom()
			if err != nil {
				return "", err
			}
			v = u.String()
		}
		return "vmgenid: " + strings.TrimSpace(v) + "\n", nil
	}
	if v, ok := strings.CutPrefix(line, "smbios1: "); ok && rs.unique {
		u, err := uuid.NewRandom()
		if err != nil {
			return "", err
		}
		parts := []string{}
		for _, p := range strings.Split(strings.TrimSpace(v), ",") {
			if p != "" && !strings.HasPrefix(p, "uuid=") {
				parts = append(parts, p)
			}
		}
		parts = append(parts, "uuid="+u.String())
		sort.Strings(parts)
		return "smbios1: " + strings.Join(parts, ",") + "\n", nil
	}
	return line, nil
}

// driveOrPropFormat is the property-string format of a config key.
func driveOrPropFormat(key string) api.PropertyFormat {
	if s := propSchema(schemaProps(), key); s != nil {
		if f, ok := s.Format.(api.PropertyFormat); ok {
			return f
		}
	}
	return api.PropertyFormat{}
}

// writeConfig rewrites the archived config for the new volumes, applies
// the override keys and replaces the "lock: create" config.
func (rs *restoreRun) writeConfig(ctx context.Context, conf string, disks []*restoreDisk) error {
	volids := map[string]string{}
	for _, dk := range disks {
		volids[dk.virtdev] = dk.volid
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(conf, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		out, err := rs.restoreConfigLine(line, volids)
		if err != nil {
			return err
		}
		b.WriteString(out)
	}
	cfg, err := qemu.Parse(rs.vmid, []byte(b.String()))
	if err != nil {
		return fmt.Errorf("restored config: %w", err)
	}
	maps.Copy(cfg.Props, rs.override)
	// Disks of a replaced VM that the archive did not restore stay as
	// unused volumes.
	if rs.old != nil {
		rs.keepOldDisks(cfg)
	}
	return rs.d.updateConfig(ctx, rs.node, rs.vmid, func(c *qemu.Config, _ string) error {
		if c.Props["lock"] != "create" {
			return fmt.Errorf("config of VM %d changed during the restore", rs.vmid)
		}
		*c = *cfg
		return nil
	})
}

// keepOldDisks adds the replaced VM's own disks that are not referenced
// by cfg as unusedN.
func (rs *restoreRun) keepOldDisks(cfg *qemu.Config) {
	used := map[string]bool{}
	for k, v := range cfg.Props {
		if isDriveKey(k) || isUnusedKey(k) {
			if dr, err := qemu.ParseDrive(k, v); err == nil {
				used[dr.Volume] = true
			}
		}
	}
	var keep []string
	for k, v := range rs.old.Props {
		if !(isDriveKey(k) || isUnusedKey(k)) || slices.Contains(rs.freed, k) {
			continue
		}
		dr, err := qemu.ParseDrive(k, v)
		if err != nil || dr.IsCDROM() || used[dr.Volume] || !rs.ownedVolume(dr.Volume) {
			continue
		}
		keep = append(keep, dr.Volume)
	}
	sort.Strings(keep)
	n := 0
	for _, volid := range keep {
		for cfg.Props["unused"+strconv.Itoa(n)] != "" {
			n++
		}
		cfg.Props["unused"+strconv.Itoa(n)] = volid
	}
}

// undo removes what a failed restore created: the new volumes and
// temporary files, and the reservation (a new VM's config) or the lock
// (a replaced VM, whose freed disks are dropped from its config).
func (rs *restoreRun) undo() {
	if rs.log == nil { // the task did not start
		rs.log = discardLog{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range rs.temps {
		_ = os.Remove(p)
	}
	for _, volid := range rs.created {
		if err := rs.d.Storage.Free(ctx, volid); err != nil {
			rs.log.Warnf("unable to cleanup '%s' - %v", volid, err)
		} else {
			rs.log.Printf("temporary volume '%s' successfully removed", volid)
		}
	}
	if rs.old == nil {
		if err := rs.d.Config.Remove(configName(rs.node, rs.vmid)); err != nil {
			rs.log.Warnf("could not remove config of VM %d: %v", rs.vmid, err)
		}
		return
	}
	err := rs.d.updateConfig(ctx, rs.node, rs.vmid, func(c *qemu.Config, _ string) error {
		if c.Props["lock"] != "create" {
			return errors.New("config changed meanwhile")
		}
		*c = *rs.old
		c.Props = maps.Clone(rs.old.Props)
		for _, k := range rs.freed {
			delete(c.Props, k)
		}
		return nil
	})
	if err != nil {
		rs.log.Warnf("could not unlock VM %d: %v", rs.vmid, err)
	}
}

// restoreLog is where a restore logs (the task's log).
type restoreLog interface {
	Printf(format string, a ...any)
	Warnf(format string, a ...any)
}

// discardLog drops the lines of a restore whose task never started.
type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Warnf(string, ...any)  {}
