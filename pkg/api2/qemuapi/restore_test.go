package qemuapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/api2/vzdumpapi"
	"github.com/pvenode/pvenode/pkg/vzdump"
)

// newBackupEnv is newEnv with backups: storages "store" (images and
// backups) and "other" (images), and the vzdump methods beside the VM
// methods.
func newBackupEnv(t testing.TB) *env {
	return newEnvWith(t, func(dir string) string {
		return "dir: store\n\tpath " + filepath.Join(dir, "store") + "\n\tcontent images,backup\n\n" +
			"dir: other\n\tpath " + filepath.Join(dir, "other") + "\n\tcontent images\n\n"
	}, func(p envParts, deps *qemuapi.Deps) []api.Method {
		eng := &vzdump.Engine{Config: p.ae.Root, VMs: p.vms, Storage: p.host, Node: node}
		return vzdumpapi.Methods(&vzdumpapi.Deps{Config: p.ae.Root, Privs: p.ae.Auth, Storage: p.host, Engine: eng,
			Tasks: p.tasks, DefaultsFile: filepath.Join(p.dir, "vzdump.conf")})
	})
}

// fillDisk writes known data at a few places of a (stopped) VM's disk.
func fillDisk(t *testing.T, path, format string) {
	t.Helper()
	for _, w := range []string{"write -P 0x5a 0 300k", "write -P 0xa5 1M 64k", "write -P 0x11 200M 1M"} {
		if out, err := exec.Command("qemu-io", "-f", format, "-c", w, path).CombinedOutput(); err != nil {
			t.Fatalf("qemu-io %s: %v: %s", w, err, out)
		}
	}
}

// rawSHA is the SHA-256 of an image's raw content.
func rawSHA(t *testing.T, path, format string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "cmp.raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-f", format, "-O", "raw", path, dst).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	f, err := os.Open(dst)
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

func (e *env) backupFiles() []string {
	ents, _ := os.ReadDir(filepath.Join(e.store, "dump"))
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

func TestBackupAndRestore(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed")
	}
	e := newBackupEnv(t)
	e.createVM("100", url.Values{"scsi0": {"store:0.25,format=qcow2"}, "scsi1": {"store:0.0625"}})
	src := e.store + "/images/100/vm-100-disk-0.qcow2"
	fillDisk(t, src, "qcow2")
	want := rawSHA(t, src, "qcow2")
	if st := e.task("POST", "/nodes/n1/qemu/100/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	pid := e.status("100").PID

	// Snapshot backup of the running VM through the API.
	var upid string
	if err := json.Unmarshal(e.must("POST", "/nodes/n1/vzdump", url.Values{"vmid": {"100"}, "storage": {"store"}, "compress": {"zstd"}, "mode": {"snapshot"}}), &upid); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(upid, ":vzdump:100:admin@pve:") {
		t.Errorf("upid %s", upid)
	}
	if st := e.wait(upid); st != "OK" {
		t.Fatalf("vzdump: %s\n%s", st, e.taskLog(upid))
	}
	t.Log(e.taskLog(upid))
	if s := e.status("100"); s.Status != "running" || s.PID != pid || s.QMPStatus != "running" {
		t.Errorf("VM after snapshot backup: %+v", s)
	}
	var archive string
	for _, f := range e.backupFiles() {
		if strings.HasSuffix(f, ".vma.zst") {
			archive = f
		}
	}
	if !regexp.MustCompile(`^vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$`).MatchString(archive) {
		t.Fatalf("dump dir: %v", e.backupFiles())
	}
	volid := "store:backup/" + archive

	// extractconfig returns the archived config.
	var conf string
	if err := json.Unmarshal(e.must("GET", "/nodes/n1/vzdump/extractconfig", url.Values{"volume": {volid}}), &conf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "name: vm100\n") || !strings.Contains(conf, "#qmdump#map:scsi0:drive-scsi0:store:qcow2:\n") ||
		!strings.Contains(conf, "#qmdump#map:scsi1:drive-scsi1:store:raw:\n") {
		t.Errorf("extractconfig:\n%s", conf)
	}
	if code, _, body := e.Call("alice", "GET", "/nodes/n1/vzdump/extractconfig", url.Values{"volume": {volid}}); code != 403 {
		t.Errorf("alice extractconfig: %d %s", code, body)
	}

	// Restore into a new VMID on the original storages, with new MACs.
	if st := e.task("POST", "/nodes/n1/qemu", url.Values{"vmid": {"110"}, "archive": {volid}, "unique": {"1"}}); st != "OK" {
		t.Fatalf("restore: %s", st)
	}
	restored := e.readConfig("110")
	for _, re := range []string{
		`(?m)^scsi0: store:110/vm-110-disk-0\.qcow2,size=256M$`,
		`(?m)^scsi1: store:110/vm-110-disk-1\.raw,size=64M$`,
		`(?m)^name: vm100$`,
		`(?m)^net0: virtio=BC:24:11:[0-9A-F:]{8}$`,
	} {
		if !regexp.MustCompile(re).MatchString(restored) {
			t.Errorf("restored config lacks %s:\n%s", re, restored)
		}
	}
	orig := e.readConfig("100")
	mac := regexp.MustCompile(`net0: virtio=(\S+)`)
	if mac.FindStringSubmatch(orig)[1] == mac.FindStringSubmatch(restored)[1] {
		t.Errorf("unique restore kept the MAC")
	}
	if strings.Contains(restored, "lock:") || strings.Contains(restored, "#qmdump#") {
		t.Errorf("restored config:\n%s", restored)
	}
	if got := rawSHA(t, e.store+"/images/110/vm-110-disk-0.qcow2", "qcow2"); got != want {
		t.Errorf("restored disk differs from the source")
	}

	// Restore onto another storage (all disks there, formats kept).
	if st := e.task("POST", "/nodes/n1/qemu", url.Values{"vmid": {"111"}, "archive": {volid}, "storage": {"other"}, "name": {"copy"}}); st != "OK" {
		t.Fatalf("restore to other: %s", st)
	}
	restored = e.readConfig("111")
	if !strings.Contains(restored, "scsi0: other:111/vm-111-disk-0.qcow2,size=256M\n") || !strings.Contains(restored, "name: copy\n") ||
		mac.FindStringSubmatch(orig)[1] != mac.FindStringSubmatch(restored)[1] {
		t.Errorf("restore to other:\n%s", restored)
	}
	other := filepath.Join(filepath.Dir(e.store), "other")
	if got := rawSHA(t, other+"/images/111/vm-111-disk-0.qcow2", "qcow2"); got != want {
		t.Errorf("disk restored to other differs from the source")
	}

	// An existing VMID needs force; force replaces a stopped VM.
	code, _, body := e.Call("admin", "POST", "/nodes/n1/qemu", url.Values{"vmid": {"111"}, "archive": {volid}})
	if code != 500 || !strings.Contains(body, "already exists") {
		t.Errorf("restore over existing: %d %s", code, body)
	}
	if st := e.task("POST", "/nodes/n1/qemu", url.Values{"vmid": {"111"}, "archive": {volid}, "force": {"1"}}); st != "OK" {
		t.Fatalf("forced restore: %s", st)
	}
	if got := e.readConfig("111"); !strings.Contains(got, "scsi0: store:111/vm-111-disk-0.qcow2,size=256M\n") || strings.Contains(got, "name: copy") {
		t.Errorf("forced restore config:\n%s", got)
	}
	if _, err := os.Stat(other + "/images/111/vm-111-disk-0.qcow2"); !os.IsNotExist(err) {
		t.Errorf("replaced disk not freed: %v", err)
	}

	// Drive parameters conflict with archive.
	code, _, body = e.Call("admin", "POST", "/nodes/n1/qemu", url.Values{"vmid": {"112"}, "archive": {volid}, "scsi0": {"store:1"}})
	if code != 400 || !strings.Contains(body, `"scsi0"`) {
		t.Errorf("drive with archive: %d %s", code, body)
	}
}

// TestRestoreFailureLeavesNothing: a restore onto a storage that cannot
// take the disks fails and leaves no config and no volume behind.
func TestRestoreFailureLeavesNothing(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed")
	}
	e := newBackupEnv(t)
	e.createVM("100", nil)
	fillDisk(t, e.store+"/images/100/vm-100-disk-0.qcow2", "qcow2")
	// Stopped VM: the disks are read directly.
	if st := e.task("POST", "/nodes/n1/vzdump", url.Values{"vmid": {"100"}, "storage": {"store"}}); st != "OK" {
		t.Fatalf("vzdump: %s", st)
	}
	var archive string
	for _, f := range e.backupFiles() {
		if strings.HasSuffix(f, ".vma") {
			archive = f
		}
	}
	if archive == "" {
		t.Fatalf("no archive: %v", e.backupFiles())
	}
	before := e.storeFiles()
	// The target storage's image directory cannot be created.
	other := filepath.Join(filepath.Dir(e.store), "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "images"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := e.task("POST", "/nodes/n1/qemu", url.Values{"vmid": {"120"}, "archive": {"store:backup/" + archive}, "storage": {"other"}})
	if !strings.Contains(st, "unable to restore VM 120") {
		t.Fatalf("restore to broken storage: %s", st)
	}
	if _, err := os.Stat(e.configFile("120")); !os.IsNotExist(err) {
		t.Errorf("config of failed restore left: %v", err)
	}
	if after := e.storeFiles(); !slices.Equal(before, after) {
		t.Errorf("files changed by failed restore: %v -> %v", before, after)
	}
	// A restore cancelled while it writes the disks (slowed down by
	// bwlimit) removes its volumes and config.
	var upid string
	if err := json.Unmarshal(e.must("POST", "/nodes/n1/qemu", url.Values{"vmid": {"122"}, "archive": {"store:backup/" + archive}, "bwlimit": {"100"}}), &upid); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(e.taskLog(upid), "map 'drive-scsi0'"); i++ {
		if i > 500 {
			t.Fatalf("restore did not start writing:\n%s", e.taskLog(upid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.tasks.Stop(upid); err != nil {
		t.Fatal(err)
	}
	if st := e.wait(upid); !strings.Contains(st, "interrupt") || !strings.Contains(e.taskLog(upid), "successfully removed") {
		t.Errorf("cancelled restore: %s\n%s", st, e.taskLog(upid))
	}
	if _, err := os.Stat(e.configFile("122")); !os.IsNotExist(err) {
		t.Errorf("config of cancelled restore left: %v", err)
	}
	if after := e.storeFiles(); !slices.Equal(before, after) {
		t.Errorf("files changed by cancelled restore: %v -> %v", before, after)
	}

	// A missing archive is refused before anything is written.
	code, _, body := e.Call("admin", "POST", "/nodes/n1/qemu", url.Values{"vmid": {"121"}, "archive": {"store:backup/vzdump-qemu-100-2020_01_01-00_00_00.vma"}})
	if code != 400 || !strings.Contains(body, `"archive"`) {
		t.Errorf("missing archive: %d %s", code, body)
	}
	if _, err := os.Stat(e.configFile("121")); !os.IsNotExist(err) {
		t.Errorf("config written for refused restore")
	}
}

// taskLog returns a task's log text.
func (e *env) taskLog(upid string) string {
	lines, _, err := e.tasks.ReadLog(upid, 0, 1000)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.T + "\n")
	}
	return b.String()
}
