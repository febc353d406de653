package vzdump

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// makeSnapshotVM writes VM vmid's config with scsi0 (qcow2, 16 MiB of
// random data in places), scsi1 (raw, 1 MiB, backup=0) and scsi2 (raw,
// 8 MiB, replicate=0, patterns written with qemu-io). It returns the
// files of scsi0 and scsi2.
func (e *testEnv) makeSnapshotVM(vmid int) (qcow2, raw string) {
	e.t.Helper()
	if _, err := exec.LookPath("qemu-io"); err != nil {
		e.t.Skip("qemu-io not installed")
	}
	qcow2 = e.makeVM(vmid, 16, "qcow2")
	raw = filepath.Join(e.store, "images", fmt.Sprint(vmid), fmt.Sprintf("vm-%d-disk-1.raw", vmid))
	for _, args := range [][]string{
		{"qemu-img", "create", "-f", "raw", raw, "8M"},
		{"qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x5c 5M 512k", "-c", "write -P 0x01 8388096 512", raw},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			e.t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	conf := e.conf(vmid) + fmt.Sprintf("scsi2: store:%d/vm-%d-disk-1.raw,replicate=0,size=8M\n", vmid, vmid)
	if err := e.root.WriteFile(e.eng.configName(vmid), []byte(conf), 0o640); err != nil {
		e.t.Fatal(err)
	}
	return qcow2, raw
}

// blockJobs lists the block jobs of the running VM vmid.
func (e *testEnv) blockJobs(vmid int) []blockJob {
	e.t.Helper()
	var jobs []blockJob
	err := e.eng.vmDialer(vmid)(context.Background(), func(c *qemu.QMPClient) error {
		return c.Execute(context.Background(), "query-block-jobs", nil, &jobs)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return jobs
}

// startJob starts a slow (1 MiB/s) drive-backup job id of scsi0 on the
// running VM vmid, as an earlier or concurrent run would have.
func (e *testEnv) startJob(vmid int, id string) {
	e.t.Helper()
	args := map[string]any{"job-id": id, "device": "drive-scsi0",
		"target": filepath.Join(e.t.TempDir(), id+".raw"), "format": "raw", "sync": "full", "mode": "absolute-paths",
		"speed": 1 << 20, "auto-dismiss": false}
	err := e.eng.vmDialer(vmid)(context.Background(), func(c *qemu.QMPClient) error {
		return c.Execute(context.Background(), "drive-backup", args, nil)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func diskKeys(ds []SnapshotDisk) []string {
	var keys []string
	for _, d := range ds {
		keys = append(keys, d.Key)
	}
	return keys
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	return names
}

// skipReplicateOff is the include of replication: all but replicate=0.
func skipReplicateOff(_ string, drive map[string]string) bool { return drive["replicate"] != "0" }

func TestSnapshotDisksOfRunningVM(t *testing.T) {
	e := newTestEnv(t)
	qcow2, raw := e.makeSnapshotVM(103)
	spare := filepath.Join(e.store, "images/103/vm-103-disk-9.raw")
	want := map[string]string{"scsi0": rawSum(t, qcow2, "qcow2"), "scsi1": rawSum(t, spare, "raw"), "scsi2": rawSum(t, raw, "raw")}
	pid := e.start(103)
	// A replication job left over by an earlier run is still there.
	e.startJob(103, "replicate-scsi0")

	tests := []struct {
		name    string
		include func(string, map[string]string) bool
		keys    []string
	}{
		{"backup selection", nil, []string{"scsi0", "scsi2"}},
		{"replicate filter", skipReplicateOff, []string{"scsi0", "scsi1"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			out := &testOut{}
			var seen []string
			include := tt.include
			if include != nil {
				include = func(key string, drive map[string]string) bool {
					seen = append(seen, key+"="+drive["file"])
					return tt.include(key, drive)
				}
			}
			disks, done, err := e.eng.SnapshotDisks(context.Background(), 103, tmp, include, out)
			if err != nil {
				t.Fatalf("SnapshotDisks: %v\n%s", err, out.text())
			}
			t.Log(out.text())
			if got := diskKeys(disks); !slices.Equal(got, tt.keys) {
				t.Fatalf("disks %v, want %v", got, tt.keys)
			}
			if include != nil && !slices.Equal(seen, []string{"scsi0=store:103/vm-103-disk-0.qcow2", "scsi1=store:103/vm-103-disk-9.raw", "scsi2=store:103/vm-103-disk-1.raw"}) {
				t.Errorf("include asked about %v", seen)
			}
			for _, d := range disks {
				if !strings.HasPrefix(d.Path, tmp+"/") {
					t.Errorf("%s: path %s not a copy under %s", d.Key, d.Path, tmp)
				}
				if got := fileSum(t, d.Path); got != want[d.Key] {
					t.Errorf("%s: copy differs from the source", d.Key)
				}
			}
			if d := disks[0]; d.VolID != "store:103/vm-103-disk-0.qcow2" || d.Format != "qcow2" || d.Size != 16<<20 {
				t.Errorf("scsi0: %+v", d)
			}
			if d := disks[1]; d.Format != "raw" || (d.Key == "scsi2" && d.Size != 8<<20) || (d.Key == "scsi1" && d.Size != 1<<20) {
				t.Errorf("%s: %+v", d.Key, d)
			}
			if p, ok := e.vms.Running(103); !ok || p != pid {
				t.Errorf("VM not running as before (pid %d, now %d %v)", pid, p, ok)
			}
			if strings.Contains(e.conf(103), "lock:") {
				t.Errorf("config marked:\n%s", e.conf(103))
			}
			if jobs := e.blockJobs(103); len(jobs) != 0 {
				t.Errorf("block jobs after the copy: %+v", jobs)
			}
			leftover := strings.Contains(out.text(), "WARN: left-over replication block job still running inside QEMU - canceled (replicate-scsi0)")
			if leftover != (i == 0) {
				t.Errorf("left-over job reported %v:\n%s", leftover, out.text())
			}
			done()
			if left := dirEntries(t, tmp); len(left) != 0 {
				t.Errorf("done left %v", left)
			}
			done() // a second call does nothing
		})
	}

	// The guest writing to its disk once the jobs started does not change
	// the copy; the disk itself is changed.
	t.Run("point in time", func(t *testing.T) {
		tmp := t.TempDir()
		out := &hookOut{on: "started block jobs", hook: func() {
			var res string
			err := e.eng.vmDialer(103)(context.Background(), func(c *qemu.QMPClient) error {
				return c.Execute(context.Background(), "human-monitor-command",
					map[string]any{"command-line": `qemu-io drive-scsi2 "write -P 0xee 0 6M"`}, &res)
			})
			if err != nil || strings.Contains(res, "rror") {
				t.Errorf("guest write: %v %s", err, res)
			}
		}}
		disks, done, err := e.eng.SnapshotDisks(context.Background(), 103, tmp, nil, out)
		if err != nil {
			t.Fatalf("SnapshotDisks: %v\n%s", err, out.text())
		}
		defer done()
		if !out.fired || len(disks) != 2 || disks[1].Key != "scsi2" {
			t.Fatalf("hook fired %v, disks %+v", out.fired, disks)
		}
		if got := fileSum(t, disks[1].Path); got != want["scsi2"] {
			t.Errorf("copy has the write made after the jobs started")
		}
		if fileSum(t, raw) == want["scsi2"] {
			t.Errorf("the guest write did not reach the disk")
		}
	})

	// While a backup job copies scsi0, QEMU refuses a second job on it:
	// the copy fails, leaving the backup's job alone.
	e.startJob(103, "vzdump-scsi0")
	tmp := t.TempDir()
	out := &testOut{}
	if _, _, err := e.eng.SnapshotDisks(context.Background(), 103, tmp, nil, out); err == nil ||
		!strings.Contains(err.Error(), "start backup jobs: ") || !strings.Contains(err.Error(), "is busy") {
		t.Errorf("copy during a backup: %v\n%s", err, out.text())
	}
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("failed copy left %v", left)
	}
	var ids []string
	for _, j := range e.blockJobs(103) {
		ids = append(ids, j.Device)
	}
	if !slices.Equal(ids, []string{"vzdump-scsi0"}) {
		t.Errorf("block jobs after the failed copy: %v", ids)
	}
}

func TestSnapshotDisksOfStoppedVM(t *testing.T) {
	e := newTestEnv(t)
	qcow2, raw := e.makeSnapshotVM(104)
	wantQcow2, wantRaw := rawSum(t, qcow2, "qcow2"), fileSum(t, raw)
	tmp := t.TempDir()
	out := &testOut{}
	disks, done, err := e.eng.SnapshotDisks(context.Background(), 104, tmp, nil, out)
	if err != nil {
		t.Fatalf("SnapshotDisks: %v\n%s", err, out.text())
	}
	if got := diskKeys(disks); !slices.Equal(got, []string{"scsi0", "scsi2"}) {
		t.Fatalf("disks %v", got)
	}
	if !strings.HasPrefix(disks[0].Path, tmp+"/") || fileSum(t, disks[0].Path) != wantQcow2 || disks[0].Format != "qcow2" || disks[0].Size != 16<<20 {
		t.Errorf("qcow2 disk not converted: %+v", disks[0])
	}
	if disks[1].Path != raw || disks[1].VolID != "store:104/vm-104-disk-1.raw" || disks[1].Size != 8<<20 || fileSum(t, disks[1].Path) != wantRaw {
		t.Errorf("raw disk not read in place: %+v", disks[1])
	}
	for _, line := range []string{"VM 104 is stopped: converting 'store:104/vm-104-disk-0.qcow2' (scsi0, qcow2) to a raw image",
		"VM 104 is stopped: reading 'store:104/vm-104-disk-1.raw' (scsi2) in place"} {
		if !strings.Contains(out.text(), line) {
			t.Errorf("log lacks %q:\n%s", line, out.text())
		}
	}
	if _, running := e.vms.Running(104); running {
		t.Error("stopped VM was started")
	}
	done()
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("done left %v", left)
	}
	if fileSum(t, raw) != wantRaw || fileSum(t, qcow2) == "" {
		t.Error("done touched the volumes")
	}

	// Nothing selected: no disks, nothing to remove.
	disks, done, err = e.eng.SnapshotDisks(context.Background(), 104, tmp, func(string, map[string]string) bool { return false }, out)
	if err != nil || len(disks) != 0 {
		t.Fatalf("empty selection: %v %v", disks, err)
	}
	done()
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("empty selection left %v", left)
	}
}

// TestSnapshotDisksFailuresLeaveNothing: a copy cancelled while QEMU's
// jobs run, a cancelled context and a missing VM leave no temporary file
// and no block job.
func TestSnapshotDisksFailuresLeaveNothing(t *testing.T) {
	e := newTestEnv(t)
	e.makeVM(105, 4096, "raw") // copying 4 GiB takes a while
	pid := e.start(105)
	tmp := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &hookOut{on: "started block jobs", hook: cancel}
	disks, done, err := e.eng.SnapshotDisks(ctx, 105, tmp, nil, out)
	if !errors.Is(err, context.Canceled) || disks != nil || done != nil {
		t.Fatalf("cancelled copy: %v %v\n%s", disks, err, out.text())
	}
	if !out.fired {
		t.Fatalf("jobs never started:\n%s", out.text())
	}
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("cancelled copy left %v", left)
	}
	if jobs := e.blockJobs(105); len(jobs) != 0 {
		t.Errorf("block jobs left: %+v", jobs)
	}
	if p, ok := e.vms.Running(105); !ok || p != pid {
		t.Errorf("VM not running after the cancelled copy")
	}

	if _, _, err := e.eng.SnapshotDisks(ctx, 105, tmp, nil, &testOut{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, _, err := e.eng.SnapshotDisks(context.Background(), 109, tmp, nil, &testOut{}); err == nil ||
		err.Error() != "unable to find configuration file for VM 109 on node 'n1'" {
		t.Errorf("missing VM: %v", err)
	}
	if _, _, err := e.eng.SnapshotDisks(context.Background(), 105, filepath.Join(tmp, "missing"), nil, &testOut{}); err == nil ||
		!strings.Contains(err.Error(), "create temporary directory") {
		t.Errorf("missing tmpdir: %v", err)
	}
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("failures left %v", left)
	}
}

// hookOut is a testOut that calls hook when a line containing on is
// logged.
type hookOut struct {
	testOut
	on    string
	hook  func()
	fired bool
}

func (o *hookOut) Printf(format string, a ...any) {
	o.testOut.Printf(format, a...)
	if strings.Contains(fmt.Sprintf(format, a...), o.on) {
		o.fired = true
		o.hook()
	}
}
