package nodestatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureCollector reads the fixture host dir and fakes the syscalls and the
// clock, so that its output is fully determined by the files.
func fixtureCollector(t *testing.T, host string) *Collector {
	t.Helper()
	dir := filepath.Join("testdata", host)
	c := New(Roots{Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys")},
		Version{Version: "9.1.3", RepoID: "0123456789abcdef"})
	c.pageSize = 4096
	c.statfs = func(path string, st *unix.Statfs_t) error {
		*st = unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000000, Bfree: 600000, Bavail: 550000}
		return nil
	}
	c.uname = func(u *unix.Utsname) error {
		*u = unix.Utsname{}
		copy(u.Sysname[:], "Linux")
		copy(u.Release[:], "6.8.12-4-pve")
		copy(u.Version[:], "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4 (2024-11-06T15:04Z)")
		copy(u.Machine[:], "x86_64")
		return nil
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return clock }
	c.sleep = func(ctx context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
	return c
}

func TestStatusGolden(t *testing.T) {
	for _, host := range []string{"host-amd", "host-efi"} {
		t.Run(host, func(t *testing.T) {
			st, err := fixtureCollector(t, host).Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", host+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Status JSON differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestStatusFields(t *testing.T) {
	st, err := fixtureCollector(t, "host-efi").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.BootInfo.Mode != BootEFI || st.BootInfo.SecureBoot == nil || *st.BootInfo.SecureBoot != 1 {
		t.Errorf("BootInfo = %+v; want efi with secureboot 1", st.BootInfo)
	}
	if st.KSM.Shared != 1234*4096 {
		t.Errorf("KSM.Shared = %d; want %d", st.KSM.Shared, 1234*4096)
	}
	if want := "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4 (2024-11-06T15:04Z)"; st.KVersion != want {
		t.Errorf("KVersion = %q; want %q", st.KVersion, want)
	}
	if want := "pve-manager/9.1.3/0123456789abcdef"; st.PVEVersion != want {
		t.Errorf("PVEVersion = %q; want %q", st.PVEVersion, want)
	}
	if want := (RootFS{Total: 4096000000, Used: 1638400000, Free: 2457600000, Avail: 2252800000}); st.RootFS != want {
		t.Errorf("RootFS = %+v; want %+v", st.RootFS, want)
	}
	if st.Memory.Used != st.Memory.Total-st.Memory.Available {
		t.Errorf("Memory = %+v; want used = total - available", st.Memory)
	}
	amd, err := fixtureCollector(t, "host-amd").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if amd.BootInfo.Mode != BootLegacy || amd.BootInfo.SecureBoot != nil {
		t.Errorf("BootInfo = %+v; want legacy-bios without secureboot", amd.BootInfo)
	}
}

func TestSummary(t *testing.T) {
	s, err := fixtureCollector(t, "host-efi").Summary(context.Background(), "pve1")
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{ID: "node/pve1", Type: "node", Node: "pve1", Status: "online", Uptime: 123456,
		CPU: 0, MaxCPU: 8, Mem: (65843172 - 40123456) * 1024, MaxMem: 65843172 * 1024,
		Disk: 1638400000, MaxDisk: 4096000000}
	if s != want {
		t.Errorf("Summary = %+v; want %+v", s, want)
	}
}

func TestStatusMissingProcFileNamesIt(t *testing.T) {
	c := fixtureCollector(t, "host-amd")
	c.root.Proc = t.TempDir()
	_, err := c.Status(context.Background())
	if err == nil {
		t.Fatal("Status on an empty procfs: want error")
	}
	if want := filepath.Join(c.root.Proc, "stat"); !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not name %s", err, want)
	}
}

func TestStatusHonoursContextOnFirstSample(t *testing.T) {
	c := New(Roots{Proc: "testdata/host-amd/proc", Sys: "testdata/host-amd/sys"}, Version{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Status(cancelled ctx) error = %v; want context.Canceled", err)
	}
}

func TestCPUTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := CPUStat{User: 1000, Idle: 9000, IOWait: 0, CPUs: 1}
	var tr cpuTracker
	if cpu, wait := tr.observe(base, t0, 0); cpu != 0 || wait != 0 {
		t.Errorf("first observe = %v, %v; want 0, 0", cpu, wait)
	}
	// 100 ticks later: 25 busy, 25 iowait, 50 idle.
	s1 := base
	s1.User += 25
	s1.IOWait += 25
	s1.Idle += 50
	cpu, wait := tr.observe(s1, t0.Add(100*time.Millisecond), 0)
	if cpu != 0.25 || wait != 0.25 {
		t.Errorf("observe = %v, %v; want 0.25, 0.25", cpu, wait)
	}
	// Too soon with a 1 s minimum: the last figures again, baseline kept.
	s2 := s1
	s2.User += 100
	if cpu, wait := tr.observe(s2, t0.Add(500*time.Millisecond), time.Second); cpu != 0.25 || wait != 0.25 {
		t.Errorf("observe too soon = %v, %v; want repeated 0.25, 0.25", cpu, wait)
	}
	// 1.1 s after the baseline: computed over s1..s3.
	s3 := s2
	s3.Idle += 100
	if cpu, wait := tr.observe(s3, t0.Add(1200*time.Millisecond), time.Second); cpu != 0.5 || wait != 0 {
		t.Errorf("observe = %v, %v; want 0.5, 0", cpu, wait)
	}
}

func TestUsage(t *testing.T) {
	a := CPUStat{User: 100, System: 100, Idle: 800}
	for _, tt := range []struct {
		name      string
		prev, cur CPUStat
		cpu, wait float64
	}{
		{"no ticks", a, a, 0, 0},
		{"backwards", CPUStat{User: 200, Idle: 900}, a, 0, 0},
		{"all busy", a, CPUStat{User: 150, System: 150, Idle: 800}, 1, 0},
		{"guest inside user", a, CPUStat{User: 150, Guest: 50, System: 100, Idle: 850}, 0.5, 0},
		{"steal counts busy", a, CPUStat{User: 100, System: 100, Steal: 10, Idle: 890}, 0.1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cpu, wait := usage(tt.prev, tt.cur)
			if math.Abs(cpu-tt.cpu) > 1e-9 || math.Abs(wait-tt.wait) > 1e-9 {
				t.Errorf("usage = %v, %v; want %v, %v", cpu, wait, tt.cpu, tt.wait)
			}
		})
	}
}

// TestStatusMatchesAPISchema checks every property that PVE's API schema
// lists for GET /nodes/{node}/status and GET /nodes against the JSON this
// package produces: present, and of the schema's JSON type.
func TestStatusMatchesAPISchema(t *testing.T) {
	schemaPath := filepath.Join("..", "..", "..", "shared", "reference", "pve-api-schema.json")
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Skipf("API schema not available: %v", err)
	}
	var tree []schemaNode
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	c := fixtureCollector(t, "host-efi")
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check := func(path string, v any) {
		ret := findReturns(tree, path)
		if ret == nil {
			t.Fatalf("schema has no GET %s", path)
		}
		b, _ := json.Marshal(v)
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		checkType(t, path, ret, doc)
	}
	check("/nodes/{node}/status", st)
	check("/nodes", []Summary{st.Summary("pve1")})
}

type schemaNode struct {
	Path     string                     `json:"path"`
	Info     map[string]json.RawMessage `json:"info"`
	Children []schemaNode               `json:"children"`
}

type schemaType struct {
	Type       string                `json:"type"`
	Optional   int                   `json:"optional"`
	Properties map[string]schemaType `json:"properties"`
	Items      *schemaType           `json:"items"`
}

func findReturns(nodes []schemaNode, path string) *schemaType {
	for _, n := range nodes {
		if n.Path == path {
			var m struct {
				Returns schemaType `json:"returns"`
			}
			if err := json.Unmarshal(n.Info["GET"], &m); err == nil {
				return &m.Returns
			}
		}
		if r := findReturns(n.Children, path); r != nil {
			return r
		}
	}
	return nil
}

func checkType(t *testing.T, where string, s *schemaType, v any) {
	t.Helper()
	switch s.Type {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T; want object", where, v)
			return
		}
		for name, ps := range s.Properties {
			pv, present := obj[name]
			if !present {
				if ps.Optional == 0 {
					t.Errorf("%s.%s: missing", where, name)
				}
				continue
			}
			checkType(t, where+"."+name, &ps, pv)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			t.Errorf("%s: got %T; want array", where, v)
			return
		}
		for i, e := range arr {
			if s.Items != nil {
				checkType(t, where+"["+strconv.Itoa(i)+"]", s.Items, e)
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			t.Errorf("%s: got %T %v; want string", where, v, v)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			t.Errorf("%s: got %T %v; want integer", where, v, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			t.Errorf("%s: got %T %v; want number", where, v, v)
		}
	case "boolean":
		// PVE encodes booleans as the integers 0 and 1.
		if f, ok := v.(float64); !ok || (f != 0 && f != 1) {
			t.Errorf("%s: got %T %v; want 0 or 1", where, v, v)
		}
	}
}

// TestStatusLive reads this machine's /proc and /sys.
func TestStatusLive(t *testing.T) {
	c := New(Roots{}, Version{})
	ctx := context.Background()
	for i := range 2 {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Memory.Total <= 0 || st.Memory.Used < 0 || st.Memory.Used > st.Memory.Total ||
			st.Memory.Free > st.Memory.Total || st.Memory.Available > st.Memory.Total {
			t.Errorf("call %d: Memory = %+v; want 0 <= used, free, available <= total, total > 0", i, st.Memory)
		}
		if st.Swap.Used < 0 || st.Swap.Used > st.Swap.Total {
			t.Errorf("call %d: Swap = %+v; want 0 <= used <= total", i, st.Swap)
		}
		if st.CPU < 0 || st.CPU > 1 || st.Wait < 0 || st.Wait > 1 {
			t.Errorf("call %d: CPU, Wait = %v, %v; want within [0, 1]", i, st.CPU, st.Wait)
		}
		if st.CPUInfo.CPUs < 1 || st.CPUInfo.Sockets < 1 || st.CPUInfo.Cores < 1 {
			t.Errorf("call %d: CPUInfo = %+v; want counts >= 1", i, st.CPUInfo)
		}
		if st.RootFS.Total <= 0 || st.RootFS.Used > st.RootFS.Total || st.RootFS.Avail > st.RootFS.Free {
			t.Errorf("call %d: RootFS = %+v; want total > 0, used <= total, avail <= free", i, st.RootFS)
		}
		if st.Uptime <= 0 {
			t.Errorf("call %d: Uptime = %d; want > 0", i, st.Uptime)
		}
		for _, l := range st.LoadAvg {
			if _, err := strconv.ParseFloat(l, 64); err != nil {
				t.Errorf("call %d: LoadAvg = %q; want decimal strings", i, st.LoadAvg)
			}
		}
		if st.CurrentKernel.Sysname != "Linux" || st.CurrentKernel.Release == "" {
			t.Errorf("call %d: CurrentKernel = %+v", i, st.CurrentKernel)
		}
		if st.BootInfo.Mode != BootEFI && st.BootInfo.Mode != BootLegacy {
			t.Errorf("call %d: BootInfo.Mode = %q", i, st.BootInfo.Mode)
		}
	}
}
