package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScheduledBackupRestore: a backup job created through the API with a
// schedule a few seconds ahead is fired by a real pvescheduler, which has
// the real pvedaemon back up a running VM (real QEMU) in snapshot mode; the
// VM keeps running; the archive, restored into a new VM through the API,
// gives a disk identical to the source; and prune, asked through
// pveproxy, keeps what PVE keeps on a set of dated archives.
func TestScheduledBackupRestore(t *testing.T) {
	for _, bin := range []string{"qemu-system-x86_64", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	api := "/api2/json"
	qemu := api + "/nodes/" + nodeName + "/qemu"

	upid := startedTask(t, c, http.MethodPost, qemu, url.Values{
		"vmid": {"100"}, "name": {"src"}, "memory": {"64"}, "vga": {"none"},
		"scsi0": {"local:1,format=qcow2"}, "scsi1": {"local:1,format=raw"},
	})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create: %s\n%s", st, taskLog(t, c, upid))
	}
	// Known data in both disks, in places far apart (the rest stays
	// sparse), written before QEMU opens them.
	images := filepath.Join(n.prefix, "var/lib/vz/images")
	src := []string{filepath.Join(images, "100/vm-100-disk-0.qcow2"), filepath.Join(images, "100/vm-100-disk-1.raw")}
	for i, img := range src {
		for _, w := range []string{"write -P 0x5a 0 4M", fmt.Sprintf("write -P 0x%02x 700M 3M", 0x31+i), "write -P 0xff 1023M 1M"} {
			if out, err := exec.Command("qemu-io", "-f", map[bool]string{true: "qcow2", false: "raw"}[i == 0], "-c", w, img).CombinedOutput(); err != nil {
				t.Fatalf("qemu-io %s: %v\n%s", w, err, out)
			}
		}
	}
	want := []string{rawSum(t, src[0]), rawSum(t, src[1])}
	upid = startedTask(t, c, http.MethodPost, qemu+"/100/status/start", url.Values{})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("start: %s\n%s", st, taskLog(t, c, upid))
	}

	// The job, due in a few seconds (UTC, to the second), then the scheduler.
	due := time.Now().Truncate(time.Second).Add(4 * time.Second)
	r := c.must(http.MethodPost, api+"/cluster/backup", url.Values{
		"id": {"e2ejob"}, "schedule": {due.UTC().Format("2006-01-02 15:04:05") + " UTC"},
		"vmid": {"100"}, "storage": {"local"}, "mode": {"snapshot"}, "compress": {"zstd"},
		"notes-template": {"{{guestname}} on {{node}}"}, "enabled": {"1"},
	}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("create job: %d %s", r.status, r.body)
	}
	if _, stderr, err := n.run("pvescheduler", "start", "--prefix", n.prefix, "--node", nodeName); err != nil {
		t.Fatalf("start pvescheduler: %v: %s", err, stderr)
	}
	t.Cleanup(func() { n.run("pvescheduler", "stop", "--prefix", n.prefix) })

	// The job's state names its task once it has fired.
	stateFile := filepath.Join(n.prefix, "var/lib/pve-manager/jobs/vzdump-e2ejob.json")
	var state struct {
		State string `json:"state"`
		UPID  string `json:"upid"`
		Msg   string `json:"msg"`
	}
	deadline := time.Now().Add(time.Until(due) + 20*time.Second)
	for state.UPID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not fire; state %+v", state)
		}
		time.Sleep(100 * time.Millisecond)
		if b, err := os.ReadFile(stateFile); err == nil {
			_ = json.Unmarshal(b, &state)
		}
	}
	if !strings.Contains(state.UPID, ":vzdump:100:root@pam:") {
		t.Fatalf("job task %s", state.UPID)
	}
	if st := waitTask(t, c, state.UPID); st != "OK" {
		t.Fatalf("backup: %s\n%s", st, taskLog(t, c, state.UPID))
	}
	var vm struct {
		Status string `json:"status"`
	}
	decode(t, c.get(qemu+"/100/status/current"), &vm)
	if vm.Status != "running" {
		t.Fatalf("VM %s after a snapshot-mode backup", vm.Status)
	}

	// The archive, its log and notes, in the storage's content list.
	var content []struct {
		VolID   string `json:"volid"`
		Format  string `json:"format"`
		Notes   string `json:"notes"`
		VMID    int    `json:"vmid"`
		Size    int64  `json:"size"`
		Subtype string `json:"subtype"`
	}
	decode(t, c.get(api+"/nodes/"+nodeName+"/storage/local/content?content=backup"), &content)
	if len(content) != 1 || !strings.HasPrefix(content[0].VolID, "local:backup/vzdump-qemu-100-") ||
		!strings.HasSuffix(content[0].VolID, ".vma.zst") || content[0].VMID != 100 {
		t.Fatalf("backup content %+v", content)
	}
	volid := content[0].VolID
	archive := filepath.Join(n.prefix, "var/lib/vz/dump", strings.TrimPrefix(volid, "local:backup/"))
	base := strings.TrimSuffix(archive, ".vma.zst")
	if notes, err := os.ReadFile(archive + ".notes"); err != nil || string(notes) != "src on "+nodeName {
		t.Errorf("notes %q %v", notes, err)
	}
	if log, err := os.ReadFile(base + ".log"); err != nil || !strings.Contains(string(log), "Finished Backup of VM 100") {
		t.Errorf("backup log %q %v", log, err)
	}

	// Restore into a new VM: both disks identical to the source.
	upid = startedTask(t, c, http.MethodPost, qemu, url.Values{"vmid": {"200"}, "archive": {volid}, "storage": {"local"}})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("restore: %s\n%s", st, taskLog(t, c, upid))
	}
	var cfg map[string]any
	decode(t, c.get(qemu+"/200/config"), &cfg)
	for i, key := range []string{"scsi0", "scsi1"} {
		disk, _ := cfg[key].(string)
		volname := strings.TrimPrefix(strings.SplitN(disk, ",", 2)[0], "local:")
		if !strings.HasPrefix(volname, "200/vm-200-disk-") {
			t.Fatalf("restored %s = %q", key, disk)
		}
		if got := rawSum(t, filepath.Join(images, volname)); got != want[i] {
			t.Errorf("restored %s: sha256 %s, source %s", key, got, want[i])
		}
	}
	if cfg["name"] != "src" {
		t.Errorf("restored config %v", cfg)
	}

	// Prune through pveproxy: dated archives of VM 100 (empty files; only
	// names and dates count) and what keep-last=1,keep-daily=2 keeps.
	dump := filepath.Dir(archive)
	for _, d := range []string{"2026_01_10-10_00_00", "2026_01_10-22_00_00", "2026_01_11-09_00_00", "2026_01_12-09_00_00", "2026_01_13-09_00_00"} {
		if err := os.WriteFile(filepath.Join(dump, "vzdump-qemu-100-"+d+".vma.zst"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dump, "vzdump-qemu-100-2026_01_10-22_00_00.vma.zst.protected"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var marks []struct {
		VolID string `json:"volid"`
		Mark  string `json:"mark"`
	}
	decode(t, c.get(api+"/nodes/"+nodeName+"/storage/local/prunebackups?vmid=100&type=qemu&prune-backups="+url.QueryEscape("keep-last=1,keep-daily=2")), &marks)
	got := map[string]string{}
	for _, m := range marks {
		got[strings.TrimPrefix(m.VolID, "local:backup/vzdump-qemu-100-")] = m.Mark
	}
	wantMarks := map[string]string{
		strings.TrimPrefix(volid, "local:backup/vzdump-qemu-100-"): "keep", // keep-last
		"2026_01_13-09_00_00.vma.zst":                              "keep", // keep-daily 1
		"2026_01_12-09_00_00.vma.zst":                              "keep", // keep-daily 2
		"2026_01_11-09_00_00.vma.zst":                              "remove",
		"2026_01_10-22_00_00.vma.zst":                              "protected",
		"2026_01_10-10_00_00.vma.zst":                              "remove",
	}
	if fmt.Sprint(got) != fmt.Sprint(wantMarks) {
		t.Errorf("prune marks\n got %v\nwant %v", got, wantMarks)
	}

	// An edit of the job reaches the running scheduler at once: a new
	// schedule a few seconds ahead gives a second run.
	firstUPID := state.UPID
	due = time.Now().Truncate(time.Second).Add(3 * time.Second)
	if r := c.must(http.MethodPut, api+"/cluster/backup/e2ejob", url.Values{
		"schedule": {due.UTC().Format("2006-01-02 15:04:05") + " UTC"}, "remove": {"0"},
	}, nil); r.status != http.StatusOK {
		t.Fatalf("edit job: %d %s", r.status, r.body)
	}
	deadline = time.Now().Add(time.Until(due) + 20*time.Second)
	for state.UPID == firstUPID {
		if time.Now().After(deadline) {
			t.Fatalf("the edited job did not fire; state %+v", state)
		}
		time.Sleep(100 * time.Millisecond)
		if b, err := os.ReadFile(stateFile); err == nil {
			_ = json.Unmarshal(b, &state)
		}
	}
	if st := waitTask(t, c, state.UPID); st != "OK" {
		t.Fatalf("second backup: %s\n%s", st, taskLog(t, c, state.UPID))
	}
}

// rawSum is the SHA-256 of a disk image's guest-visible content.
func rawSum(t *testing.T, img string) string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", img, tmp).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v\n%s", img, err, out)
	}
	f, err := os.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp)
	return hex.EncodeToString(h.Sum(nil))
}
