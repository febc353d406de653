package vzdump

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vma"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// testOut collects the lines of a job.
type testOut struct {
	mu    sync.Mutex
	lines []string
}

func (o *testOut) Printf(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = append(o.lines, fmt.Sprintf(format, a...))
}

func (o *testOut) Warnf(format string, a ...any) { o.Printf("WARN: "+format, a...) }

func (o *testOut) text() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// testEnv is a node with a config root, a dir storage "store" (images and
// backups) and a VM manager running real QEMU (TCG).
type testEnv struct {
	t     testing.TB
	root  *pvefs.Root
	store string
	vms   *vmm.Manager
	eng   *Engine
	clock time.Time
	mu    sync.Mutex
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(filepath.Join(etc, "nodes/n1/qemu-server"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "storage.cfg"), []byte("dir: store\n\tpath "+store+"\n\tcontent images,backup\n\tprune-backups keep-last=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := pvefs.Open(etc)
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("", "vz") // QMP socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	host := &storage.Host{Root: root, Node: "n1"}
	vms := vmm.New(vmm.Config{RunDir: run, Upstream: true, NetBackend: "user",
		KVM: func() bool { return false }, ResolveVolume: host.Resolve})
	e := &testEnv{t: t, root: root, store: store, vms: vms,
		clock: time.Date(2026, 8, 24, 2, 30, 1, 0, time.Local)}
	e.eng = &Engine{Config: root, VMs: vms, Storage: host, Node: "n1", Now: e.now}
	t.Cleanup(func() {
		for vmid := 100; vmid < 110; vmid++ {
			if pid, ok := vms.Running(vmid); ok {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return e
}

// now is a clock that advances one second per call, so that archive
// names of consecutive backups differ.
func (e *testEnv) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = e.clock.Add(time.Second)
	return e.clock
}

// makeVM writes VM vmid's config with a qcow2 disk of sizeMiB holding
// random data in some places (and zeros elsewhere).
func (e *testEnv) makeVM(vmid, sizeMiB int, format string) string {
	e.t.Helper()
	imgdir := filepath.Join(e.store, "images", fmt.Sprint(vmid))
	if err := os.MkdirAll(imgdir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	raw := filepath.Join(e.t.TempDir(), "src.raw")
	f, err := os.Create(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		e.t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(vmid), 7))
	buf := make([]byte, 300_000)
	for _, off := range []int64{0, 1 << 20, int64(sizeMiB)<<20 - 300_000 - 5} {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			e.t.Fatal(err)
		}
	}
	f.Close()
	name := fmt.Sprintf("vm-%d-disk-0.%s", vmid, format)
	disk := filepath.Join(imgdir, name)
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", format, raw, disk).CombinedOutput(); err != nil {
		e.t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	conf := fmt.Sprintf("boot: order=scsi0\ncores: 1\nmemory: 128\nname: vm%d\nnet0: virtio=BC:24:11:00:00:01\n"+
		"ide2: none,media=cdrom\nscsi0: store:%d/%s,size=%dM\nscsi1: store:%d/vm-%d-disk-9.raw,backup=0,size=1M\nscsihw: virtio-scsi-pci\nvga: none\n",
		vmid, vmid, name, sizeMiB, vmid, vmid)
	if err := e.root.WriteFile(e.eng.configName(vmid), []byte(conf), 0o640); err != nil {
		e.t.Fatal(err)
	}
	// scsi1 is excluded from the backup but must exist for QEMU.
	if out, err := exec.Command("qemu-img", "create", "-f", "raw", filepath.Join(imgdir, fmt.Sprintf("vm-%d-disk-9.raw", vmid)), "1M").CombinedOutput(); err != nil {
		e.t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return disk
}

func (e *testEnv) start(vmid int) int {
	e.t.Helper()
	raw, err := e.root.ReadFile(e.eng.configName(vmid))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := qemu.Parse(vmid, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.vms.Start(ctx, cfg); err != nil {
		e.t.Fatal(err)
	}
	pid, _ := e.vms.Running(vmid)
	return pid
}

// rawSum is the SHA-256 of the raw content of an image of any format.
func rawSum(t testing.TB, path, format string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "cmp.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", format, "-O", "raw", path, dst).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	return fileSum(t, dst)
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// extractSum extracts device devName of the archive into a sparse file of
// the device's size and returns its SHA-256.
func extractSum(t testing.TB, archive, devName string) string {
	t.Helper()
	a, err := OpenArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dst := filepath.Join(t.TempDir(), "restored.raw")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	err = a.Extract(func(d vma.Device) (io.WriterAt, error) {
		if d.Name != devName {
			return discardAt{}, nil
		}
		found = true
		return f, f.Truncate(d.Size)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("archive has no device %s", devName)
	}
	return fileSum(t, dst)
}

// backupFiles lists the dump directory.
func (e *testEnv) backupFiles() []string {
	ents, _ := os.ReadDir(filepath.Join(e.store, "dump"))
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

func (e *testEnv) conf(vmid int) string {
	raw, err := e.root.ReadFile(e.eng.configName(vmid))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(raw)
}

func TestSnapshotBackupOfRunningVM(t *testing.T) {
	e := newTestEnv(t)
	disk := e.makeVM(100, 64, "qcow2")
	want := rawSum(t, disk, "qcow2")
	pid := e.start(100)

	out := &testOut{}
	res, err := e.eng.Run(context.Background(), []int{100}, Options{Mode: "snapshot", Compress: "zstd", Storage: "store",
		Remove: true, NotesTemplate: `{{guestname}} on {{node}}\nid {{vmid}}`, Protected: true}, out)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out.text())
	}
	log := out.text()
	t.Log(log)
	if p, ok := e.vms.Running(100); !ok || p != pid {
		t.Errorf("VM not running as before (pid %d, now %d %v)", pid, p, ok)
	}
	if len(res) != 1 || !strings.HasSuffix(res[0].Archive, "/dump/vzdump-qemu-100-2026_08_24-02_30_02.vma.zst") {
		t.Fatalf("results %+v\n%s", res, log)
	}
	for _, line := range []string{
		"INFO: starting new backup job: vzdump 100",
		"INFO: Starting Backup of VM 100 (qemu)",
		"INFO: status = running",
		"INFO: VM Name: vm100",
		"INFO: include disk 'scsi0' 'store:100/vm-100-disk-0.qcow2' 64M",
		"INFO: exclude disk 'scsi1' 'store:100/vm-100-disk-9.raw' (backup=no)",
		"INFO: backup mode: snapshot",
		"INFO: creating vzdump archive '" + res[0].Archive + "'",
		"INFO: backup is sparse: ",
		"INFO: transferred 64.00 MiB in ",
		"INFO: adding notes to backup",
		"INFO: marking backup as protected",
		"INFO: prune older backups with retention: keep-last=2",
		"INFO: Finished Backup of VM 100 (00:00:",
		"INFO: Backup job finished successfully",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
	if got := extractSum(t, res[0].Archive, "drive-scsi0"); got != want {
		t.Errorf("backed-up disk differs from the source")
	}
	if strings.Contains(e.conf(100), "lock:") {
		t.Errorf("lock left in config:\n%s", e.conf(100))
	}
	files := strings.Join(e.backupFiles(), " ")
	wantFiles := "vzdump-qemu-100-2026_08_24-02_30_02.log vzdump-qemu-100-2026_08_24-02_30_02.vma.zst vzdump-qemu-100-2026_08_24-02_30_02.vma.zst.notes vzdump-qemu-100-2026_08_24-02_30_02.vma.zst.protected"
	if files != wantFiles {
		t.Errorf("dump dir: %s\nwant %s", files, wantFiles)
	}
	notes, _ := os.ReadFile(res[0].Archive + ".notes")
	if string(notes) != "vm100 on n1\nid 100" {
		t.Errorf("notes %q", notes)
	}
	logFile, _ := os.ReadFile(strings.TrimSuffix(res[0].Archive, ".vma.zst") + ".log")
	if !strings.Contains(string(logFile), " INFO: Finished Backup of VM 100") {
		t.Errorf("log file:\n%s", logFile)
	}

	conf, err := ExtractConfig(res[0].Archive)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "scsi0: store:100/vm-100-disk-0.qcow2,size=64M\n") || strings.Contains(conf, "lock:") ||
		!strings.HasSuffix(conf, "#qmdump#map:scsi0:drive-scsi0:store:qcow2:\n") {
		t.Errorf("archived config:\n%s", conf)
	}
	maps, err := ParseDiskMaps(conf)
	if err != nil || len(maps) != 1 || maps[0] != (DiskMap{"scsi0", "drive-scsi0", "store", "qcow2"}) {
		t.Errorf("disk maps %+v %v", maps, err)
	}
}

func TestSuspendAndStopModes(t *testing.T) {
	e := newTestEnv(t)
	disk := e.makeVM(101, 16, "qcow2")
	want := rawSum(t, disk, "qcow2")
	pid := e.start(101)

	out := &testOut{}
	res, err := e.eng.Run(context.Background(), []int{101}, Options{Mode: "suspend", Compress: "gzip", DumpDir: filepath.Join(e.store, "dump"), Remove: true, PruneBackups: "keep-last=1"}, out)
	if err != nil {
		t.Fatalf("suspend backup: %v\n%s", err, out.text())
	}
	for _, line := range []string{"INFO: suspending guest", "INFO: resuming VM again after"} {
		if !strings.Contains(out.text(), line) {
			t.Errorf("log lacks %q:\n%s", line, out.text())
		}
	}
	st, _ := e.vms.Status(context.Background(), 101)
	if st.PID != pid || st.QMPStatus != "running" {
		t.Errorf("after suspend mode: %+v", st)
	}
	if got := extractSum(t, res[0].Archive, "drive-scsi0"); got != want {
		t.Errorf("suspend mode: backed-up disk differs")
	}

	out = &testOut{}
	res, err = e.eng.Run(context.Background(), []int{101}, Options{Mode: "stop", DumpDir: filepath.Join(e.store, "dump"), Remove: true, PruneBackups: "keep-last=1"}, out)
	if err != nil {
		t.Fatalf("stop backup: %v\n%s", err, out.text())
	}
	newPID, running := e.vms.Running(101)
	if !running || newPID == pid {
		t.Errorf("stop mode did not restart the VM: running %v pid %d (was %d)\n%s", running, newPID, pid, out.text())
	}
	for _, line := range []string{"INFO: stopping virtual guest", "INFO: restarting vm", "INFO: guest is online again after", "INFO: delete old backup '"} {
		if !strings.Contains(out.text(), line) {
			t.Errorf("log lacks %q:\n%s", line, out.text())
		}
	}
	if got := extractSum(t, res[0].Archive, "drive-scsi0"); got != want {
		t.Errorf("stop mode: backed-up disk differs")
	}
	// keep-last=1 removed the first (gzip) archive and its log.
	files := strings.Join(e.backupFiles(), " ")
	if strings.Contains(files, ".gz") || strings.Count(files, ".log") != 1 || strings.Count(files, ".vma") != 1 {
		t.Errorf("after pruning: %s", files)
	}

	// A stopped VM is read directly in any mode.
	if err := e.vms.Stop(context.Background(), 101, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out = &testOut{}
	res, err = e.eng.Run(context.Background(), []int{101}, Options{Mode: "snapshot", DumpDir: filepath.Join(e.store, "dump")}, out)
	if err != nil {
		t.Fatalf("stopped backup: %v\n%s", err, out.text())
	}
	if !strings.Contains(out.text(), "INFO: backup mode: stop") {
		t.Errorf("stopped VM not backed up in stop mode:\n%s", out.text())
	}
	if _, running := e.vms.Running(101); running {
		t.Errorf("stopped VM was started")
	}
	if got := extractSum(t, res[0].Archive, "drive-scsi0"); got != want {
		t.Errorf("stopped VM: backed-up disk differs")
	}
}

// TestFailuresLeaveNothing: a cancelled backup and one of a locked or
// missing VM leave no archive and no temporary files, and unlock the VM.
func TestFailuresLeaveNothing(t *testing.T) {
	e := newTestEnv(t)
	e.makeVM(102, 64, "raw")
	pid := e.start(102)

	ctx, cancel := context.WithCancel(context.Background())
	out := &testOut{}
	go func() {
		for !strings.Contains(out.text(), "creating vzdump archive") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	// 1 MiB/s: the 64 MiB disk would take a minute.
	_, err := e.eng.Run(ctx, []int{102}, Options{Mode: "snapshot", Compress: "zstd", Storage: "store", BwLimit: 1024}, out)
	if err == nil {
		t.Fatalf("cancelled backup succeeded:\n%s", out.text())
	}
	if !strings.Contains(out.text(), "ERROR: Backup of VM 102 failed - context canceled") ||
		!strings.Contains(out.text(), "INFO: Backup job finished with errors") {
		t.Errorf("log:\n%s", out.text())
	}
	for _, f := range e.backupFiles() {
		if !strings.HasSuffix(f, ".log") {
			t.Errorf("left in dump dir: %s", f)
		}
	}
	if p, ok := e.vms.Running(102); !ok || p != pid {
		t.Errorf("VM not running after cancelled backup")
	}
	if strings.Contains(e.conf(102), "lock:") {
		t.Errorf("lock left:\n%s", e.conf(102))
	}
	// No block job left in QEMU.
	var jobs []blockJob
	c, err := qemu.DialQMP(context.Background(), e.vms.QMPSocket(102))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Execute(context.Background(), "query-block-jobs", nil, &jobs); err != nil || len(jobs) != 0 {
		t.Errorf("block jobs left: %+v %v", jobs, err)
	}
	c.Close()

	// A locked VM and a missing VM fail; the lock stays as it was.
	conf := strings.Replace(e.conf(102), "cores: 1\n", "cores: 1\nlock: migrate\n", 1)
	if err := e.root.WriteFile(e.eng.configName(102), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	out = &testOut{}
	if _, err := e.eng.Run(context.Background(), []int{102, 109}, Options{Storage: "store"}, out); err == nil {
		t.Fatal("backup of locked and missing VMs succeeded")
	}
	for _, line := range []string{"ERROR: Backup of VM 102 failed - VM is locked (migrate)", "ERROR: Backup of VM 109 failed - unable to find configuration file for VM 109"} {
		if !strings.Contains(out.text(), line) {
			t.Errorf("log lacks %q:\n%s", line, out.text())
		}
	}
	if !strings.Contains(e.conf(102), "lock: migrate\n") {
		t.Errorf("foreign lock removed")
	}
	for _, f := range e.backupFiles() {
		if !strings.HasSuffix(f, ".log") {
			t.Errorf("left in dump dir: %s", f)
		}
	}
	// lzo is refused with a clear error.
	if _, err := e.eng.Run(context.Background(), []int{109}, Options{Storage: "store", Compress: "lzo"}, &testOut{}); err == nil {
		t.Error("lzo accepted")
	}

	// A block job left over by an earlier backup is cancelled first.
	if err := e.root.WriteFile(e.eng.configName(102), []byte(strings.Replace(e.conf(102), "lock: migrate\n", "", 1)), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err = qemu.DialQMP(context.Background(), e.vms.QMPSocket(102))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Execute(context.Background(), "drive-backup", map[string]any{"job-id": "vzdump-scsi0", "device": "drive-scsi0",
		"target": filepath.Join(t.TempDir(), "left.raw"), "format": "raw", "sync": "full", "mode": "absolute-paths",
		"speed": 1 << 20, "auto-dismiss": false}, nil)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	out = &testOut{}
	if _, err := e.eng.Run(context.Background(), []int{102}, Options{Storage: "store"}, out); err != nil {
		t.Fatalf("backup with a left-over job: %v\n%s", err, out.text())
	}
	if !strings.Contains(out.text(), "WARN: left-over backup job still running inside QEMU - canceled (vzdump-scsi0)") {
		t.Errorf("left-over job not reported:\n%s", out.text())
	}
}

// discardAt drops what is written to it.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
