package vzdump

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// Output receives the lines of a backup job: the worker task's log
// (a *tasks.Log). Warnf counts a warning of the task.
type Output interface {
	Printf(format string, a ...any)
	Warnf(format string, a ...any)
}

// Options are the settings of one backup job (PVE's vzdump options).
type Options struct {
	// Mode is snapshot (default), suspend or stop.
	Mode string
	// Compress is "0"/"" (none), "gzip" or "zstd"; "1"/"lzo" are not
	// implemented.
	Compress string
	// Zstd is the number of zstd threads (0: half of the CPUs).
	Zstd int
	// Storage is the target storage (a dir storage with content backup);
	// used when DumpDir is empty, default "local".
	Storage string
	// DumpDir, if set, is the target directory instead of a storage.
	DumpDir string
	// NotesTemplate is written, expanded, to <archive>.notes (storage
	// targets only).
	NotesTemplate string
	// Protected marks the new archive protected (storage targets only).
	Protected bool
	// Remove prunes older backups after a successful backup.
	Remove bool
	// PruneBackups overrides the storage's prune-backups setting.
	PruneBackups string
	// BwLimit limits the backup's data rate in KiB/s (0: none).
	BwLimit int64
	// StopWait is how long stop mode waits for a guest to shut down
	// before it is stopped hard; 0 stops at once.
	StopWait time.Duration
	// LockWait is how long the job waits for another backup job of this
	// node to end (PVE's global vzdump lock).
	LockWait time.Duration
	// CmdLine is shown in the "starting new backup job" line.
	CmdLine string
	// Notes are logged (as INFO) right after that line: skipped guests,
	// options that are not implemented.
	Notes []string
}

// Engine backs up VMs of this node. One Engine serves the whole daemon:
// jobs run one at a time, as with PVE's global vzdump lock.
type Engine struct {
	// Config is the config root (VM configs, firewall files).
	Config *pvefs.Root
	// VMs runs the QEMU processes; its per-VM lock is taken around
	// stopping and starting guests.
	VMs *vmm.Manager
	// Storage resolves volumes and storages.
	Storage *storage.Host
	// Node is this node's name.
	Node string
	// QemuImg runs qemu-img (image sizes, conversion of qcow2 disks).
	QemuImg storage.QemuImg
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Location is the time zone of archive names; default time.Local.
	Location *time.Location
	// ClusterName is {{cluster}} of notes templates; nil or "" gives the
	// node name (a node without cluster, as PVE).
	ClusterName func() string

	jobLock sync.Once
	jobSem  chan struct{}
	// snapshotRuns holds, per VM id, a semaphore (chan struct{}, cap 1)
	// that lets one SnapshotDisks of the VM run at a time.
	snapshotRuns sync.Map
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) loc() *time.Location {
	if e.Location != nil {
		return e.Location
	}
	return time.Local
}

func (e *Engine) sem() chan struct{} {
	e.jobLock.Do(func() { e.jobSem = make(chan struct{}, 1) })
	return e.jobSem
}

// Result describes a finished backup of one guest.
type Result struct {
	VMID    int
	Archive string // path of the archive
	Size    int64
}

// configName is the config root path of vmid's config.
func (e *Engine) configName(vmid int) string {
	return "nodes/" + e.Node + "/qemu-server/" + strconv.Itoa(vmid) + ".conf"
}

// Run runs a backup job: the guests one after another, each logged as in
// PVE. It fails (with "job errors") if any guest failed; the results of
// the guests that succeeded are returned in any case.
func (e *Engine) Run(ctx context.Context, vmids []int, opts Options, out Output) ([]Result, error) {
	info := func(format string, a ...any) { out.Printf("INFO: "+format, a...) }
	cmd := opts.CmdLine
	if cmd == "" {
		cmd = "vzdump " + joinInts(vmids, " ")
	}
	info("starting new backup job: %s", cmd)
	for _, n := range opts.Notes {
		info("%s", n)
	}
	if err := e.lockJob(ctx, opts.LockWait); err != nil {
		return nil, err
	}
	defer func() { <-e.sem() }()
	dumpdir, dir, err := e.target(ctx, opts)
	if err != nil {
		return nil, err
	}
	var results []Result
	failed := 0
	for _, vmid := range vmids {
		if ctx.Err() != nil {
			failed++
			out.Printf("ERROR: Backup of VM %d failed - %v", vmid, context.Cause(ctx))
			continue
		}
		r, err := e.backupGuest(ctx, vmid, opts, dumpdir, dir, out)
		if err != nil {
			failed++
			continue
		}
		results = append(results, r)
	}
	if failed > 0 {
		info("Backup job finished with errors")
		return results, errors.New("job errors")
	}
	info("Backup job finished successfully")
	return results, nil
}

// lockJob waits up to wait for running jobs of this Engine to end.
func (e *Engine) lockJob(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case e.sem() <- struct{}{}:
		return nil
	default:
	}
	select {
	case e.sem() <- struct{}{}:
		return nil
	case <-t.C:
		return errors.New("can't acquire lock '/var/run/vzdump.lock' (wait = " + strconv.Itoa(int(wait.Minutes())) + " minutes)")
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// target returns the dump directory of opts, and the storage when the
// target is one.
func (e *Engine) target(ctx context.Context, opts Options) (string, *storage.Dir, error) {
	if opts.DumpDir != "" {
		if err := os.MkdirAll(opts.DumpDir, 0o755); err != nil {
			return "", nil, fmt.Errorf("create dump directory: %w", err)
		}
		return opts.DumpDir, nil, nil
	}
	sid := opts.Storage
	if sid == "" {
		sid = "local"
	}
	dir, err := e.Storage.Storage(sid)
	if err != nil {
		return "", nil, err
	}
	if !dir.Section.HasContent(storage.VTypeBackup) {
		return "", nil, fmt.Errorf("can't use storage '%s' for backups - wrong content type", sid)
	}
	if err := dir.Activate(ctx); err != nil {
		return "", nil, err
	}
	dumpdir, err := dir.SubDir(storage.VTypeBackup)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dumpdir, 0o755); err != nil {
		return "", nil, fmt.Errorf("create dump directory: %w", err)
	}
	return dumpdir, dir, nil
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// guestLog writes the lines of one guest's backup to the job's output
// and keeps them, time-stamped, for the archive's .log file.
type guestLog struct {
	out   Output
	now   func() time.Time
	mu    sync.Mutex
	lines []string
}

// maxGuestLogLines bounds the kept lines of the .log file.
const maxGuestLogLines = 100000

func (g *guestLog) keep(level, msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.lines) < maxGuestLogLines {
		g.lines = append(g.lines, g.now().Format("2006-01-02 15:04:05")+" "+level+" "+msg)
	}
}

func (g *guestLog) info(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	g.out.Printf("INFO: %s", msg)
	g.keep("INFO:", msg)
}

// infoTask logs to the task only (PVE's lines without log file).
func (g *guestLog) infoTask(format string, a ...any) { g.out.Printf("INFO: "+format, a...) }

func (g *guestLog) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	g.out.Warnf("%s", msg)
	g.keep("WARN:", msg)
}

func (g *guestLog) errorf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	g.out.Printf("ERROR: %s", msg)
	g.keep("ERROR:", msg)
}

func (g *guestLog) text() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return []byte(strings.Join(g.lines, "\n") + "\n")
}

// guestRun is the state of one guest's backup.
type guestRun struct {
	e         *Engine
	vmid      int
	opts      Options
	log       *guestLog
	cfg       *qemu.Config
	raw       []byte
	disks     []disk
	running   bool
	paused    bool
	mode      string
	tmpDir    string
	stopped   bool // we stopped the VM (stop mode): start it again
	resume    bool // we paused the VM (suspend mode): resume it
	stopTime  time.Time
	archiveID uuid.UUID // of the archive
}

// backupGuest backs up one VM and logs its progress; errors are logged
// and returned.
func (e *Engine) backupGuest(ctx context.Context, vmid int, opts Options, dumpdir string, dir *storage.Dir, out Output) (Result, error) {
	start := e.now()
	g := &guestRun{e: e, vmid: vmid, opts: opts, log: &guestLog{out: out, now: e.now}}
	base := ArchiveBase(vmid, start, e.loc())
	logFile := filepath.Join(dumpdir, base+".log")
	g.log.info("Starting Backup of VM %d (qemu)", vmid)
	g.log.infoTask("Backup started at %s", start.In(e.loc()).Format("2006-01-02 15:04:05"))
	res, err := g.run(ctx, dumpdir, base, dir)
	if err != nil {
		g.log.errorf("Backup of VM %d failed - %v", vmid, err)
		g.log.infoTask("Failed at %s", e.now().In(e.loc()).Format("2006-01-02 15:04:05"))
	} else {
		g.log.info("Finished Backup of VM %d (%s)", vmid, formatDuration(e.now().Sub(start)))
		g.log.infoTask("Backup finished at %s", e.now().In(e.loc()).Format("2006-01-02 15:04:05"))
	}
	if werr := os.WriteFile(logFile, g.log.text(), 0o644); werr != nil {
		out.Warnf("unable to write backup log '%s': %v", logFile, werr)
	}
	return res, err
}

// run is the body of backupGuest.
func (g *guestRun) run(ctx context.Context, dumpdir, base string, dir *storage.Dir) (res Result, err error) {
	e := g.e
	suffix, err := CompressionSuffix(g.opts.Compress)
	if err != nil {
		return res, err
	}
	_, g.running = e.VMs.Running(g.vmid)
	status := "stopped"
	if g.running {
		status = "running"
	}
	g.log.info("status = %s", status)
	if err := g.lockConfig(ctx); err != nil {
		return res, err
	}
	defer g.unlockConfig()
	if g.running {
		if st, serr := e.VMs.Status(ctx, g.vmid); serr == nil && st.QMPStatus == "paused" {
			g.paused = true
		}
	}
	if name := g.cfg.Props["name"]; name != "" {
		g.log.info("VM Name: %s", name)
	}
	if err := g.collectDisks(ctx); err != nil {
		return res, err
	}
	g.mode = g.opts.Mode
	if g.mode == "" {
		g.mode = "snapshot"
	}
	if !g.running {
		g.mode = "stop"
	}
	g.log.info("backup mode: %s", g.mode)
	if g.opts.BwLimit > 0 {
		g.log.info("bandwidth limit: %d KiB/s", g.opts.BwLimit)
	}
	g.log.info("ionice priority: 7")

	target := filepath.Join(dumpdir, base+".vma"+suffix)
	tmpArchive := filepath.Join(dumpdir, base+".dat")
	g.tmpDir = filepath.Join(dumpdir, base+".tmp")
	_ = os.Remove(tmpArchive)
	_ = os.RemoveAll(g.tmpDir)
	if err := os.Mkdir(g.tmpDir, 0o700); err != nil {
		return res, fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(g.tmpDir); rerr != nil {
			g.log.warn("unable to remove temporary directory '%s': %v", g.tmpDir, rerr)
		}
		if err != nil {
			_ = os.Remove(tmpArchive)
		}
	}()
	defer g.restorePowerState()

	if g.mode == "stop" && g.running {
		g.log.info("stopping virtual guest")
		g.stopTime = time.Now()
		unlock := e.VMs.Lock(g.vmid)
		serr := e.VMs.Shutdown(ctx, g.vmid, g.opts.StopWait, true)
		unlock()
		if serr != nil {
			return res, fmt.Errorf("stop VM %d: %w", g.vmid, serr)
		}
		g.stopped = true
	}
	g.log.info("creating vzdump archive '%s'", target)
	if err := g.writeArchive(ctx, tmpArchive); err != nil {
		return res, err
	}
	if err := os.Rename(tmpArchive, target); err != nil {
		return res, fmt.Errorf("unable to rename '%s' to '%s': %w", tmpArchive, target, err)
	}
	st, err := os.Stat(target)
	if err != nil {
		return res, err
	}
	res = Result{VMID: g.vmid, Archive: target, Size: st.Size()}
	g.log.info("archive file size: %s", formatSize(st.Size()))
	if dir != nil {
		if g.opts.NotesTemplate != "" {
			g.log.info("adding notes to backup")
			notes := e.expandNotes(g.opts.NotesTemplate, g.vmid, g.cfg.Props["name"])
			if werr := os.WriteFile(target+".notes", []byte(notes), 0o644); werr != nil {
				g.log.warn("unable to add notes - %v", werr)
			}
		}
		if g.opts.Protected {
			g.log.info("marking backup as protected")
			if werr := os.WriteFile(target+".protected", nil, 0o644); werr != nil {
				// The archive stays; it is simply not protected.
				return res, fmt.Errorf("unable to set protected flag - %w", werr)
			}
		}
	}
	if g.opts.Remove {
		if perr := g.prune(ctx, dumpdir, dir); perr != nil {
			return res, perr
		}
	}
	return res, nil
}

// lockConfig sets "lock: backup" in the VM's config (refused if the VM is
// locked) and keeps the config read.
func (g *guestRun) lockConfig(ctx context.Context) error {
	name := g.e.configName(g.vmid)
	err := g.e.Config.Update(ctx, name, 0o640, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("unable to find configuration file for VM %d on node '%s'", g.vmid, g.e.Node)
		}
		cfg, err := qemu.Parse(g.vmid, old)
		if err != nil {
			return nil, err
		}
		if l := cfg.Props["lock"]; l != "" {
			return nil, fmt.Errorf("VM is locked (%s)", l)
		}
		g.raw = slices.Clone(old)
		g.cfg = cfg
		cfg.Props["lock"] = "backup"
		return cfg.Marshal(), nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unable to find configuration file for VM %d on node '%s'", g.vmid, g.e.Node)
	}
	return err
}

// unlockConfig removes "lock: backup" again.
func (g *guestRun) unlockConfig() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := g.e.Config.Update(ctx, g.e.configName(g.vmid), 0o640, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errors.New("config vanished")
		}
		cfg, err := qemu.Parse(g.vmid, old)
		if err != nil {
			return nil, err
		}
		if cfg.Props["lock"] == "backup" {
			delete(cfg.Props, "lock")
		}
		return cfg.Marshal(), nil
	})
	if err != nil {
		g.log.warn("unable to unlock VM %d: %v", g.vmid, err)
	}
}

// collectDisks finds the disks to back up (PVE's get_backup_volumes and
// prepare): CD-ROMs are skipped, backup=0 disks and efidisks without OVMF
// excluded.
func (g *guestRun) collectDisks(ctx context.Context) error {
	drives, err := g.cfg.Props.Drives()
	if err != nil {
		return err
	}
	for _, d := range drives {
		if d.IsCDROM() {
			continue
		}
		included, reason := backupIncludes(g.cfg.Props, d)
		if !included {
			g.log.info("exclude disk '%s' '%s' (%s)", d.Key, d.Volume, reason)
			continue
		}
		if d.Interface == "tpmstate" {
			return fmt.Errorf("%s: not implemented: backup of TPM state", d.Key)
		}
		msg := fmt.Sprintf("include disk '%s' '%s'", d.Key, d.Volume)
		if s, ok := d.Opts.Get("size"); ok {
			msg += " " + s
		}
		g.log.info("%s", msg)
		if d.Volume == "none" {
			return fmt.Errorf("%s: no volume to back up", d.Key)
		}
		dk, err := g.e.diskOf(ctx, d)
		if err != nil {
			return err
		}
		g.disks = append(g.disks, dk)
	}
	return nil
}

// backupIncludes reports whether a backup takes the (non-CD-ROM) drive d
// of a VM with props, and why (PVE's get_backup_volumes): backup=0 disks
// are excluded, and efidisks without OVMF.
func backupIncludes(props qemu.Props, d qemu.Drive) (included bool, reason string) {
	included, reason = true, "backup=yes"
	if b, ok := d.Opts.Bool("backup"); ok {
		included, reason = b, "backup=no"
		if b {
			reason = "backup=yes"
		}
	}
	if d.Interface == "efidisk" && props["bios"] != "ovmf" {
		included, reason = false, "efidisk but no OVMF BIOS"
	}
	return included, reason
}

// diskOf resolves drive d to the disk to read: its file, its format (the
// drive's format= overrides the volume's) and its virtual size.
func (e *Engine) diskOf(ctx context.Context, d qemu.Drive) (disk, error) {
	path, format, err := e.Storage.Resolve(d.Volume)
	if err != nil {
		return disk{}, fmt.Errorf("%s: %w", d.Key, err)
	}
	if f, ok := d.Opts.Get("format"); ok {
		format = f
	}
	size, err := e.imageSize(ctx, path, format)
	if err != nil {
		return disk{}, fmt.Errorf("cannot determine size of volume '%s' - %w", d.Volume, err)
	}
	sid := ""
	if !filepath.IsAbs(d.Volume) {
		sid, _, _ = storage.ParseVolumeID(d.Volume)
	}
	return disk{Key: d.Key, Volid: d.Volume, Path: path, Format: format, Storage: sid, Size: size}, nil
}

// rawImages returns, per disk of a stopped VM, a raw image to read: a
// raw disk's file itself, else a raw conversion into dir/<key>.raw. each,
// if set, is called before each disk (inPlace: the file is read itself).
func (e *Engine) rawImages(ctx context.Context, disks []disk, dir string, each func(d disk, inPlace bool)) ([]string, error) {
	paths := make([]string, len(disks))
	for i, d := range disks {
		inPlace := d.Format == "raw"
		if each != nil {
			each(d, inPlace)
		}
		if inPlace {
			paths[i] = d.Path
			continue
		}
		paths[i] = filepath.Join(dir, d.Key+".raw")
		if err := e.convertRaw(ctx, d, paths[i]); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// restorePowerState resumes a VM we paused and starts one we stopped.
func (g *guestRun) restorePowerState() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if g.resume {
		g.resume = false
		g.log.info("resuming VM again")
		if err := g.e.VMs.Resume(ctx, g.vmid); err != nil {
			g.log.warn("unable to resume VM %d: %v", g.vmid, err)
		}
	}
	if g.stopped {
		g.stopped = false
		g.log.info("restarting vm")
		if err := g.startAgain(ctx); err != nil {
			g.log.warn("unable to start VM %d again: %v", g.vmid, err)
			return
		}
		g.log.info("guest is online again after %d seconds", int(time.Since(g.stopTime).Seconds()))
	}
}

// startAgain starts the VM with its current config (lock excepted).
func (g *guestRun) startAgain(ctx context.Context) error {
	unlock := g.e.VMs.Lock(g.vmid)
	defer unlock()
	raw, err := g.e.Config.ReadFile(g.e.configName(g.vmid))
	if err != nil {
		return err
	}
	cfg, err := qemu.Parse(g.vmid, raw)
	if err != nil {
		return err
	}
	delete(cfg.Props, "lock")
	return g.e.VMs.Start(ctx, cfg)
}

// expandNotes fills a notes template ({{cluster}}, {{guestname}},
// {{node}}, {{vmid}}); "\n" and "\\" escapes are unescaped.
func (e *Engine) expandNotes(tmpl string, vmid int, name string) string {
	cluster := ""
	if e.ClusterName != nil {
		cluster = e.ClusterName()
	}
	if cluster == "" {
		cluster = e.Node
	}
	if name == "" {
		name = "VM " + strconv.Itoa(vmid)
	}
	vars := map[string]string{"cluster": cluster, "guestname": name, "node": e.Node, "vmid": strconv.Itoa(vmid)}
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		switch {
		case strings.HasPrefix(tmpl[i:], `\n`):
			b.WriteByte('\n')
			i += 2
		case strings.HasPrefix(tmpl[i:], `\\`):
			b.WriteByte('\\')
			i += 2
		case strings.HasPrefix(tmpl[i:], "{{"):
			end := strings.Index(tmpl[i:], "}}")
			if end < 0 {
				b.WriteString(tmpl[i:])
				i = len(tmpl)
				continue
			}
			key := tmpl[i+2 : i+end]
			if v, ok := vars[key]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(tmpl[i : i+end+2])
			}
			i += end + 2
		default:
			b.WriteByte(tmpl[i])
			i++
		}
	}
	return b.String()
}
