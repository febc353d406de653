package vmm

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestParseNetDev parses testdata/netdev (a /proc/net/dev with a short and
// a malformed line) into testdata/netdev.golden, one "name receive
// transmit" line per interface.
func TestParseNetDev(t *testing.T) {
	data, err := os.ReadFile("testdata/netdev")
	if err != nil {
		t.Fatal(err)
	}
	devs := parseNetDev(data)
	names := make([]string, 0, len(devs))
	for n := range devs {
		names = append(names, n)
	}
	sort.Strings(names)
	var got bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&got, "%s %d %d\n", n, devs[n].Receive, devs[n].Transmit)
	}
	golden := "testdata/netdev.golden"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("parseNetDev(testdata/netdev) =\n%s\nwant (%s)\n%s", got.String(), golden, want)
	}
}

func TestVMNICs(t *testing.T) {
	data, err := os.ReadFile("testdata/netdev")
	if err != nil {
		t.Fatal(err)
	}
	devs := parseNetDev(data)
	for _, tt := range []struct {
		name     string
		vmid     int
		in, out  uint64
		wantNICs map[string]NICStats
	}{
		{"two taps", 100, 7400, 5300, map[string]NICStats{
			"tap100i0": {NetIn: 7000, NetOut: 5000},
			"tap100i1": {NetIn: 400, NetOut: 300},
		}},
		{"not a prefix of another vmid", 1001, 22, 11, map[string]NICStats{"tap1001i0": {NetIn: 22, NetOut: 11}}},
		{"container veth is not a tap", 101, 0, 0, nil},
		{"no taps (user backend)", 902, 0, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, out, nics := vmNICs(devs, tt.vmid)
			if in != tt.in || out != tt.out || !reflect.DeepEqual(nics, tt.wantNICs) {
				t.Errorf("vmNICs(%d) = %d, %d, %v; want %d, %d, %v", tt.vmid, in, out, nics, tt.in, tt.out, tt.wantNICs)
			}
		})
	}
}

func TestDriveID(t *testing.T) {
	for _, tt := range []struct {
		device, qdev string
		want         string
		ok           bool
	}{
		{"drive-scsi0", "scsi0", "scsi0", true},
		{"drive-ide2", "", "ide2", true},
		{"floppy0", "", "floppy0", true},
		{"", "/machine/peripheral/virtio3/virtio-backend", "virtio3", true},
		{"", "/machine/peripheral/virtiox/virtio-backend", "/machine/peripheral/virtiox/virtio-backend", true},
		{"", "/machine/system.flash0", "pflash0", true},
		{"", "/machine/virt.flash1", "efidisk0", true},
		{"", "sata1", "sata1", true},
		{"", "", "", false},
	} {
		got, ok := driveID(tt.device, tt.qdev)
		if got != tt.want || ok != tt.ok {
			t.Errorf("driveID(%q, %q) = %q, %v; want %q, %v", tt.device, tt.qdev, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBlockTotals decodes testdata/blockstats.json (QEMU 7.2's answer for a
// -drive scsi0, with entries added for an ide2 drive, -blockdev backends
// named by qdev only, and one without any name) as PVE's callback does.
func TestBlockTotals(t *testing.T) {
	data, err := os.ReadFile("testdata/blockstats.json")
	if err != nil {
		t.Fatal(err)
	}
	var bs []qemu.QMPBlockStats
	if err := json.Unmarshal(data, &bs); err != nil {
		t.Fatal(err)
	}
	rd, wr, drives := blockTotals(bs)
	if rd != 512+2048+1000+8192+1 || wr != 4096+512+1 {
		t.Errorf("blockTotals = rd %d, wr %d; want 11753, 4609 (unnamed entries count too)", rd, wr)
	}
	var keys []string
	for k := range drives {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := []string{"efidisk0", "ide2", "scsi0", "virtio1"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("blockstat keys = %v; want %v", keys, want)
	}
	s := drives["scsi0"]
	if s.RdBytes != 512 || s.RdOperations != 1 || s.RdTotalTimeNS != 439249 || s.IdleTimeNS == nil || *s.IdleTimeNS != 2078181698 || !s.AccountInvalid {
		t.Errorf("scsi0 stats = %+v", s)
	}
	// The stats object is passed through verbatim, timed_stats included.
	var raw []struct {
		Stats json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, raw[0].Stats); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("json.Marshal(scsi0 stats) = %s; want QEMU's %s", got, want.Bytes())
	}
	// Without Raw, the decoded members.
	got, err = json.Marshal(qemu.QMPBlockDeviceStats{RdBytes: 7})
	if err != nil || !bytes.Contains(got, []byte(`"rd_bytes":7`)) {
		t.Errorf("json.Marshal(decoded stats) = %s, %v", got, err)
	}
}

func TestCurrentMachine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ms      []qemu.QMPMachineInfo
		want    string
		current bool
	}{
		{"pve-qemu current with pve-version", []qemu.QMPMachineInfo{
			{Name: "pc-i440fx-9.0", IsDefault: true},
			{Name: "pc-q35-9.0", IsCurrent: true, PVEVersion: "pve1"},
		}, "pc-q35-9.0+pve1", true},
		{"pve-qemu current", []qemu.QMPMachineInfo{{Name: "pc-i440fx-8.1", IsCurrent: true}}, "pc-i440fx-8.1", true},
		{"upstream: default", []qemu.QMPMachineInfo{
			{Name: "pc-q35-7.2"}, {Name: "pc-i440fx-7.2", Alias: "pc", IsDefault: true},
		}, "pc-i440fx-7.2", false},
		{"nothing", nil, "pc", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, current := currentMachine(tt.ms)
			if got != tt.want || current != tt.current {
				t.Errorf("currentMachine = %q, %v; want %q, %v", got, current, tt.want, tt.current)
			}
		})
	}
}

func TestCPURate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := cpuSample{pid: 42, at: t0, used: 1000, cpu: 0.25}
	for _, tt := range []struct {
		name     string
		prev     cpuSample
		pid      int
		after    time.Duration
		used     uint64
		hostCPUs int
		cpus     int
		want     float64
		keepPrev bool
	}{
		{"first sample", cpuSample{}, 42, 0, 1000, 4, 2, 0, false},
		{"other process", prev, 43, 20 * time.Second, 5000, 4, 2, 0, false},
		// 10s wall = 1000 ticks; 500 ticks used over 2 cpus.
		{"half of one of two cpus", prev, 42, 10 * time.Second, 1500, 4, 2, 0.25, false},
		{"all of both cpus", prev, 42, 10 * time.Second, 3000, 4, 2, 1, false},
		{"idle", prev, 42, 10 * time.Second, 1000, 4, 2, 0, false},
		{"cpus 0 counts as 1", prev, 42, 10 * time.Second, 1500, 4, 0, 0.5, false},
		// Window of 10s/host CPUs: 2.5s with 4 host CPUs.
		{"window too short repeats the rate", prev, 42, 2500 * time.Millisecond, 1100, 4, 1, 0.25, true},
		{"window just long enough", prev, 42, 2510 * time.Millisecond, 1251, 4, 1, 1, false},
		{"one host CPU needs 10s", prev, 42, 9 * time.Second, 1900, 1, 1, 0.25, true},
		{"counter went back", prev, 42, 10 * time.Second, 10, 4, 1, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(tt.after)
			got, next := cpuRate(tt.prev, tt.pid, now, tt.used, tt.hostCPUs, tt.cpus)
			if diff := got - tt.want; diff > 1e-3 || diff < -1e-3 {
				t.Errorf("cpuRate = %v; want %v", got, tt.want)
			}
			want := cpuSample{pid: tt.pid, at: now, used: tt.used, cpu: got}
			if tt.keepPrev {
				want = tt.prev
			}
			if next != want {
				t.Errorf("cpuRate kept %+v; want %+v", next, want)
			}
		})
	}
}

func TestScopeMemory(t *testing.T) {
	root := "testdata/cgroup"
	for _, tt := range []struct {
		name, procCgroup, root string
		vmid                   int
		want                   uint64
		ok                     bool
	}{
		{"v2: current minus file", "0::/qemu.slice/100.scope\n", root + "/v2", 100, 100000000, true},
		{"v1 hybrid: usage minus total_cache", "12:pids:/qemu.slice/100.scope\n4:memory:/qemu.slice/100.scope\n1:name=systemd:/qemu.slice/100.scope\n0::/qemu.slice/100.scope\n", root + "/v1", 100, 200000000, true},
		{"v1 joint controllers", "4:memory,hugetlb:/qemu.slice/100.scope\n", root + "/v1", 100, 200000000, true},
		{"other VM's scope", "0::/qemu.slice/101.scope\n", root + "/v2", 100, 0, false},
		{"not in a scope", "0::/user.slice/session-1.scope\n", root + "/v2", 100, 0, false},
		{"scope without files", "0::/qemu.slice/100.scope\n", root + "/v1", 100, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scopeMemory(tt.root, []byte(tt.procCgroup), tt.vmid)
			if got != tt.want || ok != tt.ok {
				t.Errorf("scopeMemory = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParsePSS(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       uint64
		ok         bool
	}{
		{"rollup", "55dab65de000-7ffefb7b3000 ---p 00000000 00:00 0  [rollup]\nRss:  1756 kB\nPss:  525 kB\nPss_Dirty:  112 kB\n", 525 * 1024, true},
		{"no Pss", "Rss: 1 kB\n", 0, false},
		{"bad unit", "Pss: 1 MB\n", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parsePSS([]byte(tt.data))
			if got != tt.want || ok != tt.ok {
				t.Errorf("parsePSS = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestStats runs a VM with a qcow2 disk and no OS: SeaBIOS reads the boot
// sector, so diskread grows; the CPU rate comes from a fake clock.
func TestStats(t *testing.T) {
	const vmid, cpus = 903, 1
	m, cfg := setupDisk(t, vmid, nil, "qcow2")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.cfg.Now = func() time.Time { return now }
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	if s, err := m.Stats(ctx, vmid, cpus); err != nil || !reflect.DeepEqual(s, Stats{}) {
		t.Fatalf("Stats of a stopped VM = %+v, %v; want zero", s, err)
	}
	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	s, err := m.Stats(ctx, vmid, cpus)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != 0 {
		t.Errorf("first Stats CPU = %v; want 0", s.CPU)
	}
	if !s.Running || s.QMPStatus != "running" || s.PID <= 0 || s.RSS == 0 {
		t.Fatalf("Stats state = %+v", s.State)
	}
	for s.DiskRead == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("diskread still 0: %+v", s)
		case <-time.After(100 * time.Millisecond):
		}
		if s, err = m.Stats(ctx, vmid, cpus); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(10 * time.Second)
	s, err = m.Stats(ctx, vmid, cpus)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: cpu %v mem %d diskread %d machine %q qemu %q balloon %+v", s.CPU, s.MemUsed, s.DiskRead, s.RunningMachine, s.RunningQEMU, s.Balloon)

	if max := float64(m.hostCPUs) / cpus; s.CPU < 0 || s.CPU > max {
		t.Errorf("second Stats CPU = %v; want in [0, %v]", s.CPU, max)
	}
	if s.MemHost == 0 || s.MemUsed != s.MemHost {
		t.Errorf("MemHost, MemUsed = %d, %d; want equal and > 0", s.MemHost, s.MemUsed)
	}
	scsi0, ok := s.BlockStats["scsi0"]
	if !ok || len(s.BlockStats) != 1 {
		t.Fatalf("BlockStats = %v; want scsi0 only", s.BlockStats)
	}
	if scsi0.RdBytes == 0 || scsi0.RdOperations == 0 || s.DiskRead != scsi0.RdBytes || s.DiskWrite != scsi0.WrBytes {
		t.Errorf("scsi0 = %+v; diskread %d, diskwrite %d", scsi0, s.DiskRead, s.DiskWrite)
	}
	if s.NetIn != 0 || s.NetOut != 0 || s.NICs != nil {
		t.Errorf("user backend: net %d/%d, nics %v; want none", s.NetIn, s.NetOut, s.NICs)
	}
	if s.Balloon == nil || s.Balloon.Actual != 128<<20 {
		t.Errorf("Balloon = %+v; want actual 128 MiB", s.Balloon)
	}
	if !strings.HasPrefix(s.RunningMachine, "pc-i440fx-") {
		t.Errorf("RunningMachine = %q; want pc-i440fx-*", s.RunningMachine)
	}
	if s.ProxmoxSupport != nil {
		t.Errorf("ProxmoxSupport = %s; want nil on upstream QEMU", s.ProxmoxSupport)
	}
	c, err := qemu.DialQMP(ctx, m.QMPSocket(vmid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.QueryVersion(ctx)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.RunningQEMU != v.String() || s.RunningQEMU == "" {
		t.Errorf("RunningQEMU = %q; want query-version %q", s.RunningQEMU, v.String())
	}

	// The CPU sample lives as long as the VM.
	m.mu.Lock()
	_, kept := m.samples[vmid]
	m.mu.Unlock()
	if !kept {
		t.Error("no CPU sample kept for a running VM")
	}
	if err := m.Stop(ctx, vmid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	n := len(m.samples)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d CPU samples left after Stop", n)
	}
}

// TestStatsHungQEMU stops QEMU with SIGSTOP: QMP does not answer, and Stats
// returns after StatsTimeout with the /proc figures only.
func TestStatsHungQEMU(t *testing.T) {
	const vmid = 904
	m, cfg := setup(t, vmid, nil)
	m.cfg.StatsTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pid, _ := m.Running(vmid)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)

	start := time.Now()
	s, err := m.Stats(ctx, vmid, 1)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Stats of a stopped QEMU took %v: %+v", took, s.State)
	if took > 2*m.cfg.StatsTimeout+time.Second {
		t.Errorf("Stats took %v; want about StatsTimeout %v", took, m.cfg.StatsTimeout)
	}
	if !s.Running || s.PID != pid || s.RSS == 0 || s.MemUsed == 0 || s.Threads == 0 {
		t.Errorf("/proc figures missing: %+v", s.State)
	}
	if s.QMPStatus != "" || s.RunningQEMU != "" || s.RunningMachine != "" || s.BlockStats != nil || s.Balloon != nil || s.DiskRead != 0 {
		t.Errorf("QMP figures of a hung QEMU: %+v", s)
	}
}

// TestStatsCPUSampleDropped checks that samples of VMs that died without
// Stop are dropped by the next Stats call.
func TestStatsCPUSampleDropped(t *testing.T) {
	m := New(Config{RunDir: filepath.Join(t.TempDir(), "run")})
	m.samples[905] = cpuSample{pid: 1}
	if s, err := m.Stats(context.Background(), 905, 1); err != nil || s.Running {
		t.Fatalf("Stats = %+v, %v", s, err)
	}
	if _, ok := m.samples[905]; ok {
		t.Error("sample of a VM that is not running kept")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Stats(ctx, 905, 1); err == nil {
		t.Error("Stats with an ended context: no error")
	}
}
