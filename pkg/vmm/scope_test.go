package vmm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// TestScopeProperties: the scope of a VM has PVE's properties. (The D-Bus
// calls themselves need a running systemd, which the test machines lack;
// they are not exercised here.)
func TestScopeProperties(t *testing.T) {
	cfg := &qemu.Config{VMID: 105, Props: qemu.Props{"cpuunits": "50000", "cpulimit": "1.5"}}
	got := map[string]string{}
	for _, p := range scopeProperties(cfg, 4242, true) {
		got[p.Name] = p.Value.String()
	}
	want := map[string]string{
		"PIDs":               "@au [4242]",
		"Description":        `"Proxmox VE VM 105"`,
		"Slice":              `"qemu.slice"`,
		"KillMode":           `"process"`,
		"SendSIGKILL":        "false",
		"TimeoutStopUSec":    "@t 18446744073709551615",
		"After":              `["dbus.service"]`,
		"Before":             `["pve-ha-lrm.service", "pve-guests.service"]`,
		"CPUWeight":          "@t 10000",
		"CPUQuotaPerSecUSec": "@t 1500000",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("properties %v", got)
	}
	for _, tc := range []struct {
		v    string
		v2   bool
		want uint64
	}{
		{"", true, 100}, {"0", true, 1}, {"20000", true, 10000}, {"", false, 1024}, {"1", false, 2}, {"300000", false, 262144}, {"512", false, 512},
	} {
		if got := cpuUnits(tc.v, tc.v2); got != tc.want {
			t.Errorf("cpuUnits(%q, %v) = %d, want %d", tc.v, tc.v2, got, tc.want)
		}
	}
}

// failingScope refuses to take the process: a fault that needs systemd to
// cause for real, so this stand-in says so.
type failingScope struct{ prepared bool }

func (f *failingScope) Prepare(context.Context, int) error { f.prepared = true; return nil }
func (f *failingScope) Enter(context.Context, *qemu.Config, int) error {
	return errors.New("systemd job failed")
}

// TestScopeFailureStopsQEMU: when the scope cannot be entered the start
// fails and no QEMU is left running.
func TestScopeFailureStopsQEMU(t *testing.T) {
	m, cfg := setup(t, 931, nil)
	sc := &failingScope{}
	m.cfg.Scope = sc
	err := m.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "systemd job failed") || !sc.prepared {
		t.Fatalf("start: %v (prepared %v)", err, sc.prepared)
	}
	if pid, ok := m.Running(931); ok {
		t.Errorf("QEMU %d still running", pid)
	}
}
