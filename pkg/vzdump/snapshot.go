package vzdump

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// SnapshotDisk is a point-in-time raw image of one of a VM's disks.
type SnapshotDisk struct {
	Key    string // drive key, e.g. "scsi0"
	VolID  string // the volume, e.g. "local:100/vm-100-disk-0.qcow2"
	Format string // the volume's format: raw, qcow2, vmdk
	Size   int64  // guest-visible size in bytes
	Path   string // a raw image of the disk to read: a temporary copy, or the volume file itself for a raw disk of a stopped VM
}

// SnapshotDisks takes a consistent point-in-time raw copy of the disks of
// VM vmid that include accepts (called with the drive key and the parsed
// drive property string, the volume under "file"; nil: the disks a backup
// would take). CD-ROMs and drives without volume are never included.
//
// For a running VM the copies are made by QEMU drive-backup block jobs
// (sync=full) started in one QMP transaction, so that all disks are of the
// same instant, while the VM keeps running. For a stopped VM raw disks are
// read in place and the others converted to raw temporary files. The
// temporary files are made in a new directory under tmpdir.
//
// The VM's lock (vmm.Manager.Lock) is held while the VM is found running
// or stopped and the copies are started (for a stopped VM: while non-raw
// disks are converted), so that no power action interleaves. The config is
// not marked (no "lock:"). One SnapshotDisks of a VM runs at a time; a
// concurrent backup of the VM uses other block job ids.
//
// done removes the temporary files; the caller calls it once it has read
// the images. On error nothing is left: block jobs are cancelled and
// dismissed and temporary files removed. out receives the log lines.
func (e *Engine) SnapshotDisks(ctx context.Context, vmid int, tmpdir string, include func(key string, drive map[string]string) bool, out Output) (disks []SnapshotDisk, done func(), err error) {
	if out == nil {
		out = discardOutput{}
	}
	release, err := e.lockSnapshot(ctx, vmid)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	unlock := e.VMs.Lock(vmid)
	defer unlock()

	cfg, err := e.readVMConfig(vmid)
	if err != nil {
		return nil, nil, err
	}
	pid, running := e.VMs.Running(vmid)
	sel, err := e.snapshotSelection(ctx, cfg, running, include)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(tmpdir, "replicate-"+strconv.Itoa(vmid)+"-")
	if err != nil {
		return nil, nil, fmt.Errorf("create temporary directory: %w", err)
	}
	removeTemps := func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			out.Warnf("unable to remove temporary directory '%s': %v", dir, rerr)
		}
	}
	defer func() {
		if err != nil {
			removeTemps()
		}
	}()

	var paths []string
	begin := time.Now()
	if running {
		paths = make([]string, len(sel))
		for i, d := range sel {
			paths[i] = filepath.Join(dir, d.Key+".raw")
		}
		if err := e.copyRunning(ctx, vmid, pid, sel, paths, unlock, out); err != nil {
			return nil, nil, err
		}
	} else {
		paths, err = e.rawImages(ctx, sel, dir, func(d disk, inPlace bool) {
			if inPlace {
				out.Printf("VM %d is stopped: reading '%s' (%s) in place", vmid, d.Volid, d.Key)
			} else {
				out.Printf("VM %d is stopped: converting '%s' (%s, %s) to a raw image", vmid, d.Volid, d.Key, d.Format)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		unlock()
	}
	if len(sel) > 0 {
		out.Printf("point-in-time copy of %d disk(s) ready in %s", len(sel), formatDuration(time.Since(begin)))
	}
	disks = make([]SnapshotDisk, len(sel))
	for i, d := range sel {
		disks[i] = SnapshotDisk{Key: d.Key, VolID: d.Volid, Format: d.Format, Size: d.Size, Path: paths[i]}
	}
	var once sync.Once
	return disks, func() { once.Do(removeTemps) }, nil
}

// lockSnapshot waits (up to ctx) until no other SnapshotDisks of vmid runs
// and returns the release.
func (e *Engine) lockSnapshot(ctx context.Context, vmid int) (release func(), err error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	v, _ := e.snapshotRuns.LoadOrStore(vmid, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return func() { <-sem }, nil
}

// readVMConfig reads and parses VM vmid's config.
func (e *Engine) readVMConfig(vmid int) (*qemu.Config, error) {
	raw, err := e.Config.ReadFile(e.configName(vmid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("unable to find configuration file for VM %d on node '%s'", vmid, e.Node)
	}
	if err != nil {
		return nil, err
	}
	return qemu.Parse(vmid, raw)
}

// snapshotSelection returns the disks of cfg to copy: those include
// accepts (nil: backupIncludes), never CD-ROMs or drives without volume.
func (e *Engine) snapshotSelection(ctx context.Context, cfg *qemu.Config, running bool, include func(string, map[string]string) bool) ([]disk, error) {
	drives, err := cfg.Props.Drives()
	if err != nil {
		return nil, err
	}
	var sel []disk
	for _, d := range drives {
		if d.IsCDROM() || d.Volume == "none" {
			continue
		}
		if include != nil {
			if !include(d.Key, maps.Clone(d.Opts.Values)) {
				continue
			}
		} else if ok, _ := backupIncludes(cfg.Props, d); !ok {
			continue
		}
		if running && (d.Interface == "efidisk" || d.Interface == "tpmstate") {
			// Not attached to our QEMU, so there is no block device to
			// copy from.
			return nil, fmt.Errorf("%s: not implemented: point-in-time copy of %s of a running VM", d.Key, d.Interface)
		}
		dk, err := e.diskOf(ctx, d)
		if err != nil {
			return nil, err
		}
		sel = append(sel, dk)
	}
	return sel, nil
}

// copyRunning copies disks of the running VM vmid (QEMU pid) into the raw
// files targets with block jobs started in one transaction; unlock (the
// VM's lock) is called once the jobs started (the caller calls it again
// on failure), and the copies are awaited. The jobs are cleaned up in any
// case.
func (e *Engine) copyRunning(ctx context.Context, vmid, pid int, disks []disk, targets []string, unlock func(), out Output) error {
	if len(disks) == 0 {
		unlock()
		return nil
	}
	vols := make([]string, len(disks))
	for i, d := range disks {
		vols[i] = d.Volid
	}
	return e.copyWithJobs(ctx, vmid, snapshotJobPrefix, disks, targets, 0, jobHooks{
		leftover: func(ids []string) {
			out.Warnf("left-over replication block job still running inside QEMU - canceled (%s)", strings.Join(ids, ", "))
		},
		starting: func() {
			out.Printf("VM %d is running (pid %d): point-in-time copy of %s with QEMU block jobs", vmid, pid, strings.Join(vols, ","))
		},
		started: func(ids []string) {
			unlock()
			out.Printf("started block jobs %s", strings.Join(ids, ", "))
		},
		warn: func(err error) { out.Warnf("%v", err) },
	})
}

// discardOutput drops the log lines.
type discardOutput struct{}

func (discardOutput) Printf(string, ...any) {}
func (discardOutput) Warnf(string, ...any)  {}
