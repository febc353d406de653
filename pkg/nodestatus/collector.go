package nodestatus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/buildinfo"
)

// Roots are the places a Collector reads from. Empty fields take the host's
// locations, so the zero Roots reads the live system.
type Roots struct {
	Proc   string // procfs mount point, default /proc
	Sys    string // sysfs mount point, default /sys
	RootFS string // a path on the filesystem reported as rootfs, default /
}

// withDefaults returns r with empty fields set to the host's locations.
func (r Roots) withDefaults() Roots {
	if r.Proc == "" {
		r.Proc = "/proc"
	}
	if r.Sys == "" {
		r.Sys = "/sys"
	}
	if r.RootFS == "" {
		r.RootFS = "/"
	}
	return r
}

// Version is what the node reports as "pveversion":
// "pve-manager/<Version>/<RepoID>".
type Version struct {
	Version string // PVE release whose API is served, default buildinfo.PVEVersion
	RepoID  string // build identifier, default buildinfo.Commit
}

// String returns the "pveversion" string.
func (v Version) String() string {
	return "pve-manager/" + v.Version + "/" + v.RepoID
}

// firstSampleGap is the wait between the two /proc/stat samples of the first
// Status call.
const firstSampleGap = 100 * time.Millisecond

// minSampleGap is the shortest interval over which CPU usage is recomputed;
// a call sooner than that after the last sample repeats the last figures.
const minSampleGap = time.Second

// efiSecureBootVar is the efivarfs name of the SecureBoot variable.
const efiSecureBootVar = "firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Collector reads the node status. It is safe for concurrent use.
type Collector struct {
	root     Roots
	ver      Version
	pageSize int64

	// Hooks for the syscalls and the clock, replaced in tests.
	statfs func(path string, st *unix.Statfs_t) error
	uname  func(u *unix.Utsname) error
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex // guards the fields below; held while sampling /proc/stat
	cpu     cpuTracker
	cpuinfo *CPUInfo  // cached after the first read, as PVE does
	boot    *BootInfo // cached after the first read, as PVE does
}

// New returns a Collector reading below root and reporting ver. Empty fields
// of ver take this build's values from package buildinfo.
func New(root Roots, ver Version) *Collector {
	if ver.Version == "" {
		ver.Version = buildinfo.PVEVersion
	}
	if ver.RepoID == "" {
		ver.RepoID = buildinfo.Commit
	}
	return &Collector{
		root:     root.withDefaults(),
		ver:      ver,
		pageSize: int64(unix.Getpagesize()),
		statfs:   unix.Statfs,
		uname:    unix.Uname,
		now:      time.Now,
		sleep:    sleepCtx,
	}
}

// Status reads the current node status. The first call takes about 100 ms
// (two CPU samples); later calls only read files.
func (c *Collector) Status(ctx context.Context) (*Status, error) {
	st := &Status{PVEVersion: c.ver.String()}
	var errs []error

	cpu, wait, err := c.cpuUsage(ctx)
	if err != nil {
		return nil, err
	}
	st.CPU, st.Wait = cpu, wait

	if data, err := c.readProc("uptime"); err != nil {
		errs = append(errs, err)
	} else if st.Uptime, st.Idle, err = ParseUptime(data); err != nil {
		errs = append(errs, c.parseErr("uptime", err))
	}

	if data, err := c.readProc("loadavg"); err != nil {
		errs = append(errs, err)
	} else if st.LoadAvg, err = ParseLoadavg(data); err != nil {
		errs = append(errs, c.parseErr("loadavg", err))
	}

	if data, err := c.readProc("meminfo"); err != nil {
		errs = append(errs, err)
	} else if mi, err := ParseMeminfo(data); err != nil {
		errs = append(errs, c.parseErr("meminfo", err))
	} else {
		st.Memory = Memory{Total: mi.MemTotal, Used: mi.MemUsed(), Free: mi.MemFree, Available: mi.MemAvailable}
		st.Swap = Swap{Total: mi.SwapTotal, Used: mi.SwapUsed(), Free: mi.SwapFree}
	}

	st.KSM.Shared = c.ksmShared()

	var sfs unix.Statfs_t
	if err := c.statfs(c.root.RootFS, &sfs); err != nil {
		errs = append(errs, fmt.Errorf("statfs %s: %w", c.root.RootFS, err))
	} else {
		st.RootFS = RootFSFromStatfs(&sfs)
	}

	var uts unix.Utsname
	if err := c.uname(&uts); err != nil {
		errs = append(errs, fmt.Errorf("uname: %w", err))
	} else {
		st.CurrentKernel = KernelFromUtsname(&uts)
		st.KVersion = st.CurrentKernel.KVersion()
	}

	ci, boot := c.static()
	st.CPUInfo, st.BootInfo = ci, boot

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node status: %w", err)
	}
	return st, nil
}

// Summary reads the status and condenses it into the GET /nodes entry of
// the node named node.
func (c *Collector) Summary(ctx context.Context, node string) (Summary, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return Summary{}, err
	}
	return st.Summary(node), nil
}

// cpuUsage samples /proc/stat and returns the busy and iowait fractions
// since the previous sample; the first call samples twice.
func (c *Collector) cpuUsage(ctx context.Context) (cpu, wait float64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.readStat()
	if err != nil {
		return 0, 0, err
	}
	if !c.cpu.started() {
		c.cpu.observe(cur, c.now(), 0)
		if err := c.sleep(ctx, firstSampleGap); err != nil {
			return 0, 0, fmt.Errorf("sample cpu usage: %w", err)
		}
		if cur, err = c.readStat(); err != nil {
			return 0, 0, err
		}
		cpu, wait = c.cpu.observe(cur, c.now(), 0)
		return cpu, wait, nil
	}
	cpu, wait = c.cpu.observe(cur, c.now(), minSampleGap)
	return cpu, wait, nil
}

// readStat reads and parses /proc/stat.
func (c *Collector) readStat() (CPUStat, error) {
	data, err := c.readProc("stat")
	if err != nil {
		return CPUStat{}, err
	}
	st, err := ParseStat(data)
	if err != nil {
		return CPUStat{}, c.parseErr("stat", err)
	}
	return st, nil
}

// static returns the CPU model and boot mode, read once and then cached.
func (c *Collector) static() (CPUInfo, BootInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := c.cpuinfo
	if ci == nil {
		// An unreadable cpuinfo gives PVE's defaults, as in PVE, and is
		// tried again next time.
		data, err := c.readProc("cpuinfo")
		v := ParseCPUInfo(data)
		ci = &v
		if err == nil {
			c.cpuinfo = ci
		}
	}
	if c.boot == nil {
		b := c.bootInfo()
		c.boot = &b
	}
	return *ci, *c.boot
}

// bootInfo tells EFI from legacy boot by the presence of /sys/firmware/efi
// and reads the SecureBoot variable if there is one.
func (c *Collector) bootInfo() BootInfo {
	fi, err := os.Stat(filepath.Join(c.root.Sys, "firmware/efi"))
	if err != nil || !fi.IsDir() {
		return BootInfo{Mode: BootLegacy}
	}
	b := BootInfo{Mode: BootEFI}
	data, err := os.ReadFile(filepath.Join(c.root.Sys, efiSecureBootVar))
	if err != nil {
		return b
	}
	if sb, err := ParseSecureBoot(data); err == nil {
		b.SecureBoot = &sb
	}
	return b
}

// ksmShared returns the memory KSM saves; 0 when KSM is absent.
func (c *Collector) ksmShared() int64 {
	data, err := os.ReadFile(filepath.Join(c.root.Sys, "kernel/mm/ksm/pages_sharing"))
	if err != nil {
		return 0
	}
	n, err := ParseCount(data)
	if err != nil {
		return 0
	}
	return n * c.pageSize
}

// readProc reads a file below the procfs root.
func (c *Collector) readProc(name string) ([]byte, error) {
	p := filepath.Join(c.root.Proc, name)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// parseErr names the procfs file a parse error is about.
func (c *Collector) parseErr(name string, err error) error {
	return fmt.Errorf("parse %s: %w", filepath.Join(c.root.Proc, name), err)
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cpuTracker turns successive /proc/stat samples into usage fractions.
type cpuTracker struct {
	have      bool
	prev      CPUStat
	prevAt    time.Time
	cpu, wait float64
}

// started reports whether a baseline sample exists.
func (t *cpuTracker) started() bool { return t.have }

// observe records the sample cur taken at at. If there is a baseline at
// least minGap older, it returns the busy and iowait fractions over the
// interval and makes cur the new baseline; otherwise it returns the last
// figures (0 before the first interval) and keeps the baseline.
func (t *cpuTracker) observe(cur CPUStat, at time.Time, minGap time.Duration) (cpu, wait float64) {
	if !t.have {
		t.have, t.prev, t.prevAt = true, cur, at
		return t.cpu, t.wait
	}
	if at.Sub(t.prevAt) < minGap {
		return t.cpu, t.wait
	}
	t.cpu, t.wait = usage(t.prev, cur)
	t.prev, t.prevAt = cur, at
	return t.cpu, t.wait
}

// usage returns the busy and iowait fractions of the ticks between two
// samples, each clamped to [0, 1]; 0, 0 when no tick elapsed or the
// counters went backwards (a CPU went offline).
func usage(prev, cur CPUStat) (cpu, wait float64) {
	if cur.Total() <= prev.Total() {
		return 0, 0
	}
	total := float64(cur.Total() - prev.Total())
	if cur.Busy() > prev.Busy() {
		cpu = min(float64(cur.Busy()-prev.Busy())/total, 1)
	}
	if cur.IOWait > prev.IOWait {
		wait = min(float64(cur.IOWait-prev.IOWait)/total, 1)
	}
	return cpu, wait
}
