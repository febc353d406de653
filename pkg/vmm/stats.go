package vmm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// DefaultStatsTimeout is the default Config.StatsTimeout. PVE gives the
// whole QMP exchange of vmstatus 2 seconds (queue_execute(undef, 2)); we
// give each step that much, and the first step without an answer ends the
// exchange, so a hung QEMU costs a status call at most about 2 seconds
// (the handshake) or 2 seconds more than the steps answered before it.
const DefaultStatsTimeout = 2 * time.Second

// Stats is what PVE's vmstatus (GET /nodes/{node}/qemu/{vmid}/status/current)
// reports about a running VM's QEMU process, beyond State. Figures that come
// from QMP are zero or empty when QEMU did not answer within
// Config.StatsTimeout; the /proc figures are there regardless.
type Stats struct {
	State

	// CPU is PVE's cpu: the VM's share of its cpus since the previous Stats
	// call (1 = all of them busy), from /proc/PID/stat utime+stime. QEMU's
	// own threads can push it above 1, up to host CPUs / cpus. It is 0 on
	// the first call for a process; a call less than 10s/host CPUs after
	// the last sample repeats the last rate, as PVE does.
	CPU float64

	// MemHost is the host memory charged to the VM in bytes (PVE's memhost):
	// PVE reads the cgroup of qemu.slice/VMID.scope (memory.current minus
	// file cache); QEMU started by this package is in no such scope unless
	// someone moved it there, and then the QEMU process's PSS
	// (/proc/PID/smaps_rollup, PVE 9.0's figure) is used, or its RSS if
	// smaps_rollup cannot be read.
	MemHost uint64
	// MemUsed is PVE's mem in bytes: the guest's own view (total_mem -
	// free_mem of query-balloon) when pve-qemu's balloon reports it, else
	// MemHost. Upstream QEMU has no guest figures, so MemUsed = MemHost.
	MemUsed uint64

	// DiskRead and DiskWrite are PVE's diskread and diskwrite: rd_bytes and
	// wr_bytes summed over all entries of query-blockstats.
	DiskRead, DiskWrite uint64
	// BlockStats is PVE's blockstat: each drive's counters keyed by PVE's
	// drive name ("scsi0" for -drive id drive-scsi0); marshals to QEMU's
	// object verbatim. Nil if query-blockstats did not answer.
	BlockStats map[string]qemu.QMPBlockDeviceStats

	// NetIn and NetOut are PVE's netin and netout in bytes, summed over the
	// VM's tap devices (tapVMIDiN) in /proc/net/dev, from the guest's side:
	// NetIn is what the taps transmitted (to the guest), NetOut what they
	// received (from it). With the "user" network backend there are no tap
	// devices, so both are 0 and NICs is nil.
	NetIn, NetOut uint64
	// NICs is PVE's nics: the figures of each tap device, keyed by its name.
	NICs map[string]NICStats

	// Balloon is query-balloon's answer, nil without a balloon device (or
	// answer). PVE reports balloon (Actual), ballooninfo (the object) and
	// maxmem (MaxMem) only when MaxMem is not 0, which needs pve-qemu:
	// upstream QEMU answers with Actual alone.
	Balloon *qemu.QMPBalloonInfo

	// RunningMachine is PVE's running-machine: the machine type QEMU runs,
	// "pc-i440fx-7.2" for instance, with "+pveN" on pve-qemu. Upstream QEMU
	// does not mark the current machine in query-machines, so it is then
	// read from the type of QOM object /machine; PVE would fall back to the
	// binary's default machine.
	RunningMachine string
	// RunningQEMU is PVE's running-qemu: query-version as "major.minor.micro".
	RunningQEMU string
	// ProxmoxSupport is PVE's proxmox-support, query-proxmox-support's
	// answer verbatim. Only pve-qemu has the command; it is not sent when
	// Config.Upstream is set, and nil then.
	ProxmoxSupport json.RawMessage
}

// NICStats are the byte counters of one tap device, from the guest's side
// as in Stats.NetIn and NetOut.
type NICStats struct {
	NetIn  uint64 `json:"netin"`
	NetOut uint64 `json:"netout"`
}

// Stats reports the figures of vmid's running QEMU process that PVE's
// status/current shows, from /proc, /proc/net/dev, the VM's cgroup and one
// QMP connection. cpus is PVE's cpus of the VM (sockets*cores capped at
// the host's CPU count, or vcpus; below 1 counts as 1), by which the CPU
// rate is divided. A VM that is not running gives Stats{} and no error; the
// only error is ctx's, when it has ended before the call.
//
// Each call records a CPU sample for the process, so that the next call
// can report a rate; the sample is dropped when the VM stops.
func (m *Manager) Stats(ctx context.Context, vmid, cpus int) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("stats VM %d: %w", vmid, err)
	}
	pid := m.runningPID(vmid)
	var st procStat
	if pid != 0 {
		var err error
		if st, err = readStat(pid); err != nil {
			pid = 0 // exited meanwhile
		}
	}
	if pid == 0 {
		m.mu.Lock()
		delete(m.samples, vmid)
		m.mu.Unlock()
		return Stats{}, nil
	}
	s := Stats{State: procState(pid, st)}
	s.CPU = m.sampleCPU(vmid, pid, st.utime+st.stime, cpus)
	s.MemHost = m.memHost(vmid, pid, s.RSS)
	s.MemUsed = s.MemHost
	if data, err := os.ReadFile(m.procNetDev); err == nil {
		s.NetIn, s.NetOut, s.NICs = vmNICs(parseNetDev(data), vmid)
	}
	m.queryStats(ctx, vmid, &s)
	if b := s.Balloon; b != nil && b.MaxMem != 0 && b.TotalMem != nil && b.FreeMem != nil && *b.TotalMem >= *b.FreeMem {
		s.MemUsed = *b.TotalMem - *b.FreeMem
	}
	return s, nil
}

// queryStats fills the QMP figures of s over one connection, in PVE's
// order. Each step gets Config.StatsTimeout. An error answer of QEMU (a
// command it does not have, no balloon device) only loses that step's
// figure; a step without an answer (timeout, connection lost) ends the
// exchange, since QEMU is then not going to answer the next one either.
func (m *Manager) queryStats(ctx context.Context, vmid int, s *Stats) {
	step := func(f func(ctx context.Context) error) bool {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.StatsTimeout)
		defer cancel()
		err := f(sctx)
		var qe *qemu.QMPError
		return err == nil || errors.As(err, &qe)
	}
	var c *qemu.QMPClient
	dial := func(ctx context.Context) error {
		var err error
		c, err = qemu.DialQMP(ctx, m.QMPSocket(vmid))
		return err
	}
	if !step(dial) || c == nil {
		return
	}
	defer c.Close()

	var current bool // query-machines named the current machine
	steps := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			qs, err := c.QueryStatus(ctx)
			s.QMPStatus = qs.Status
			return err
		},
		func(ctx context.Context) error {
			if m.cfg.Upstream {
				return nil
			}
			var raw json.RawMessage
			err := c.Execute(ctx, "query-proxmox-support", nil, &raw)
			if err == nil {
				s.ProxmoxSupport = raw
			}
			return err
		},
		func(ctx context.Context) error {
			bs, err := c.QueryBlockstats(ctx)
			if err == nil {
				s.DiskRead, s.DiskWrite, s.BlockStats = blockTotals(bs)
			}
			return err
		},
		func(ctx context.Context) error {
			ms, err := c.QueryMachines(ctx)
			if err == nil {
				s.RunningMachine, current = currentMachine(ms)
			}
			return err
		},
		func(ctx context.Context) error {
			if current {
				return nil
			}
			var typ string
			err := c.Execute(ctx, "qom-get", map[string]string{"path": "/machine", "property": "type"}, &typ)
			if name, ok := strings.CutSuffix(typ, "-machine"); err == nil && ok && name != "" {
				s.RunningMachine = name
			}
			return err
		},
		func(ctx context.Context) error {
			v, err := c.QueryVersion(ctx)
			if err == nil {
				s.RunningQEMU = v.String()
			}
			return err
		},
		func(ctx context.Context) error {
			b, err := c.QueryBalloon(ctx)
			if err == nil {
				s.Balloon = &b
			}
			return err
		},
	}
	for _, f := range steps {
		if !step(f) {
			return
		}
	}
}

// blockTotals is PVE's blockstats callback: rd_bytes and wr_bytes summed
// over all entries, and each entry's counters under its drive name.
func blockTotals(bs []qemu.QMPBlockStats) (rd, wr uint64, drives map[string]qemu.QMPBlockDeviceStats) {
	drives = map[string]qemu.QMPBlockDeviceStats{}
	for _, b := range bs {
		rd += b.Stats.RdBytes
		wr += b.Stats.WrBytes
		if id, ok := driveID(b.Device, b.QDev); ok {
			drives[id] = b.Stats
		}
	}
	return rd, wr, drives
}

// driveID is PVE's drive name of a query-blockstats entry: the -drive id
// without "drive-", else (-blockdev backends have no name) the guest
// device's qdev id, mapped as PVE's qdev_id_to_drive_id does.
func driveID(device, qdev string) (string, bool) {
	if device != "" {
		return strings.Replace(device, "drive-", "", 1), true
	}
	if qdev == "" {
		return "", false
	}
	if rest, ok := strings.CutPrefix(qdev, "/machine/peripheral/virtio"); ok {
		if n, ok := strings.CutSuffix(rest, "/virtio-backend"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return "virtio" + n, true
		}
	}
	switch qdev {
	case "/machine/system.flash0", "/machine/virt.flash0":
		return "pflash0", true
	case "/machine/system.flash1", "/machine/virt.flash1":
		return "efidisk0", true
	}
	return qdev, true
}

// currentMachine is PVE's current_from_query_machines: the machine marked
// current (pve-qemu only), with "+" and its pve-version if any; else the
// default machine, else "pc". current says whether one was marked.
func currentMachine(ms []qemu.QMPMachineInfo) (name string, current bool) {
	def := ""
	for _, mi := range ms {
		if mi.IsDefault {
			def = mi.Name
		}
		if mi.IsCurrent {
			name = mi.Name
			if mi.PVEVersion != "" {
				name += "+" + mi.PVEVersion
			}
			return name, true
		}
	}
	if def == "" {
		def = "pc"
	}
	return def, false
}

// cpuSample is the last CPU sample of a VM's process.
type cpuSample struct {
	pid  int
	at   time.Time
	used uint64  // utime+stime in clock ticks
	cpu  float64 // the rate reported then
}

// sampleCPU returns the CPU rate of vmid's process pid, which has used
// used clock ticks, and records the sample.
func (m *Manager) sampleCPU(vmid, pid int, used uint64, cpus int) float64 {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, ok := m.samples[vmid]
	if !ok || prev.pid != pid {
		prev = cpuSample{}
	}
	cpu, next := cpuRate(prev, pid, now, used, m.hostCPUs, cpus)
	m.samples[vmid] = next
	return cpu
}

// cpuRate is PVE's cpu figure of vmstatus: the ticks used since prev over
// the ticks elapsed, divided by the VM's cpus. Without a previous sample
// (prev.pid != pid) it is 0. PVE takes a new rate only once the window,
// counted in ticks of all host CPUs, exceeds 1000 ticks (10s / host CPUs of
// wall time); before that it repeats the previous rate and keeps the old
// sample. It returns the rate and the sample to keep.
func cpuRate(prev cpuSample, pid int, now time.Time, used uint64, hostCPUs, cpus int) (float64, cpuSample) {
	if hostCPUs < 1 {
		hostCPUs = 1
	}
	if cpus < 1 {
		cpus = 1
	}
	if prev.pid != pid || used < prev.used {
		return 0, cpuSample{pid: pid, at: now, used: used}
	}
	elapsed := now.Sub(prev.at).Seconds() * clockTicks // wall time in ticks
	if elapsed*float64(hostCPUs) <= 1000 {
		return prev.cpu, prev
	}
	cpu := float64(used-prev.used) / elapsed / float64(cpus)
	return cpu, cpuSample{pid: pid, at: now, used: used, cpu: cpu}
}

// memHost is Stats.MemHost of vmid's process pid.
func (m *Manager) memHost(vmid, pid int, rss uint64) uint64 {
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
		if n, ok := scopeMemory(m.cgroupRoot, cg, vmid); ok {
			return n
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		if n, ok := parsePSS(data); ok {
			return n
		}
	}
	return rss
}

// scopeMemory is PVE's get_memory_stat mem of the cgroup qemu.slice/VMID.scope
// (mounted under root), if procCgroup (/proc/PID/cgroup) places the
// process there: memory.current minus memory.stat's file on cgroup v2,
// memory.usage_in_bytes minus total_cache on v1.
func scopeMemory(root string, procCgroup []byte, vmid int) (uint64, bool) {
	scope := "/qemu.slice/" + strconv.Itoa(vmid) + ".scope"
	v1, v2 := false, false
	for _, line := range strings.Split(string(procCgroup), "\n") {
		hier, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok || path != scope {
			continue
		}
		switch {
		case hier == "0" && ctrls == "":
			v2 = true
		case containsWord(ctrls, "memory"):
			v1 = true
		}
	}
	var dir, usage, cache string
	switch {
	case v1: // hybrid hierarchy: memory is a v1 controller
		dir, usage, cache = filepath.Join(root, "memory", scope), "memory.usage_in_bytes", "total_cache"
	case v2:
		dir, usage, cache = filepath.Join(root, scope), "memory.current", "file"
	default:
		return 0, false
	}
	data, err := os.ReadFile(filepath.Join(dir, usage))
	if err != nil {
		return 0, false
	}
	cur, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, false
	}
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, false
	}
	var file uint64
	for _, line := range strings.Split(string(stat), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == cache {
			file, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if file > cur {
		return 0, true
	}
	return cur - file, true
}

func containsWord(list, w string) bool {
	for _, s := range strings.Split(list, ",") {
		if s == w {
			return true
		}
	}
	return false
}

// parsePSS returns the Pss line of /proc/PID/smaps_rollup in bytes.
func parsePSS(data []byte) (uint64, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "Pss:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return n * 1024, true
	}
	return 0, false
}

// netDevCounters are the byte counters of one interface in /proc/net/dev.
type netDevCounters struct {
	Receive, Transmit uint64
}

// parseNetDev is PVE's read_proc_net_dev: each "NAME: COUNTERS..." line of
// /proc/net/dev with at least the 9 counters up to transmitted bytes;
// other lines (the two header lines) are skipped.
func parseNetDev(data []byte) map[string]netDevCounters {
	res := map[string]netDevCounters{}
	for _, line := range strings.Split(string(data), "\n") {
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			continue
		}
		name := strings.TrimSpace(line[:i])
		f := strings.Fields(line[i+1:])
		if name == "" || len(f) < 9 {
			continue
		}
		var n [9]uint64
		ok := true
		for j := range n {
			v, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				ok = false
				break
			}
			n[j] = v
		}
		if ok {
			res[name] = netDevCounters{Receive: n[0], Transmit: n[8]}
		}
	}
	return res
}

// vmNICs picks vmid's tap devices (PVE's ^tap(VMID)i) from devs and
// returns PVE's netin, netout and nics; a tap's receive is the guest's out.
func vmNICs(devs map[string]netDevCounters, vmid int) (in, out uint64, nics map[string]NICStats) {
	prefix := "tap" + strconv.Itoa(vmid) + "i"
	for name, c := range devs {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		in += c.Transmit
		out += c.Receive
		if nics == nil {
			nics = map[string]NICStats{}
		}
		nics[name] = NICStats{NetIn: c.Transmit, NetOut: c.Receive}
	}
	return in, out, nics
}
