package qemuapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", nil)

	conf := e.readConfig("100")
	for _, re := range []string{
		`(?m)^scsi0: store:100/vm-100-disk-0\.qcow2,size=1G$`,
		`(?m)^net0: virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2}$`,
		`(?m)^boot: order=scsi0;net0$`,
		`(?m)^smbios1: uuid=[0-9a-f-]{36}$`,
		`(?m)^vmgenid: [0-9a-f-]{36}$`,
		`(?m)^meta: creation-qemu=7\.2\.0,ctime=\d+$`,
		`(?m)^memory: 128$`,
	} {
		if !regexp.MustCompile(re).MatchString(conf) {
			t.Errorf("config lacks %s:\n%s", re, conf)
		}
	}
	if strings.Contains(conf, "lock:") {
		t.Errorf("lock left in config:\n%s", conf)
	}
	disk := e.store + "/images/100/vm-100-disk-0.qcow2"
	if magic := readMagic(t, disk); magic != "QFI\xfb" {
		t.Fatalf("disk %s is not a qcow2 image: magic %q", disk, magic)
	}

	// GET config: typed values and the digest of the file.
	var cfg map[string]any
	if err := json.Unmarshal(e.must("GET", "/nodes/n1/qemu/100/config", nil), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["cores"] != float64(1) || cfg["memory"] != "128" || cfg["name"] != "vm100" {
		t.Errorf("config types: cores %#v memory %#v name %#v", cfg["cores"], cfg["memory"], cfg["name"])
	}
	if d, _ := cfg["digest"].(string); len(d) != 40 {
		t.Errorf("digest %#v", cfg["digest"])
	}

	s := e.status("100")
	if s.Status != "stopped" || s.MaxMem != 128<<20 || s.MaxDisk != 1<<30 || s.CPUs != 1 || s.HA == nil || s.Name != "vm100" {
		t.Errorf("stopped status: %+v", s)
	}

	if st := e.task("POST", "/nodes/n1/qemu/100/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	s = e.status("100")
	if s.Status != "running" || s.QMPStatus != "running" || s.PID == 0 {
		t.Fatalf("running status: %+v", s)
	}
	if _, ok := s.BlockStat["scsi0"]; !ok {
		t.Errorf("no blockstat for scsi0: %+v", s.BlockStat)
	}
	var list []status
	if err := json.Unmarshal(e.must("GET", "/nodes/n1/qemu", nil), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].VMID != 100 || list[0].Status != "running" || list[0].PID != s.PID {
		t.Errorf("list: %+v", list)
	}

	// A second start fails in its task; QEMU runs once.
	if st := e.task("POST", "/nodes/n1/qemu/100/status/start", nil); !strings.Contains(st, "already running") {
		t.Errorf("second start: %q", st)
	}
	for _, action := range []struct{ path, qmp string }{
		{"suspend", "paused"}, {"resume", "running"}, {"reset", "running"},
	} {
		if st := e.task("POST", "/nodes/n1/qemu/100/status/"+action.path, nil); st != "OK" {
			t.Fatalf("%s: %s", action.path, st)
		}
		if got := e.status("100").QMPStatus; got != action.qmp {
			t.Errorf("after %s: qmpstatus %q, want %q", action.path, got, action.qmp)
		}
	}

	// Deleting a running VM is refused.
	if code, _, body := e.Call("admin", "DELETE", "/nodes/n1/qemu/100", nil); code != 500 || !strings.Contains(body, "is running - destroy failed") {
		t.Errorf("destroy running: %d %s", code, body)
	}

	if st := e.task("POST", "/nodes/n1/qemu/100/status/stop", nil); st != "OK" {
		t.Fatalf("stop: %s", st)
	}
	if _, err := os.FindProcess(s.PID); err == nil && syscall.Kill(s.PID, 0) == nil {
		t.Errorf("QEMU %d still there after stop", s.PID)
	}
	if got := e.status("100").Status; got != "stopped" {
		t.Errorf("after stop: %s", got)
	}

	if st := e.task("DELETE", "/nodes/n1/qemu/100", url.Values{"purge": {"1"}, "destroy-unreferenced-disks": {"1"}}); st != "OK" {
		t.Fatalf("destroy: %s", st)
	}
	if _, err := os.Stat(e.configFile("100")); !os.IsNotExist(err) {
		t.Errorf("config still there: %v", err)
	}
	if files := e.storeFiles(); len(files) != 0 {
		t.Errorf("disks left: %v", files)
	}
}

// TestBadConfigs: refused calls answer 400 naming the parameter and write
// nothing (no config, no disk).
func TestBadConfigs(t *testing.T) {
	e := newEnv(t)
	e.createVM("101", nil)
	before := e.readConfig("101")
	for _, tc := range []struct {
		name  string
		q     url.Values
		param string
	}{
		{"unknown key", url.Values{"vmid": {"102"}, "bogus": {"1"}}, "bogus"},
		{"unknown drive option", url.Values{"vmid": {"102"}, "scsi0": {"store:1,speed=9"}}, "scsi0"},
		{"bad size", url.Values{"vmid": {"102"}, "scsi0": {"store:-1"}}, "scsi0"},
		{"unknown storage", url.Values{"vmid": {"102"}, "scsi0": {"nosuch:1"}}, "scsi0"},
		{"storage without images", url.Values{"vmid": {"102"}, "scsi0": {"isos:1"}}, "scsi0"},
		{"missing volume", url.Values{"vmid": {"102"}, "scsi0": {"store:102/vm-102-disk-9.qcow2"}}, "scsi0"},
		{"bad enum in drive", url.Values{"vmid": {"102"}, "virtio0": {"store:1,cache=fast"}}, "virtio0"},
		{"scsi index too big", url.Values{"vmid": {"102"}, "scsi31": {"store:1"}}, "scsi31"},
		{"bad NIC model", url.Values{"vmid": {"102"}, "net0": {"tulip"}}, "net0"},
		{"bad memory", url.Values{"vmid": {"102"}, "memory": {"8"}}, "memory"},
		{"duplicate VMID", url.Values{"vmid": {"101"}, "scsi0": {"store:1"}}, "vmid"},
	} {
		code, _, body := e.Call("admin", "POST", "/nodes/n1/qemu", tc.q)
		if code != 400 || !strings.Contains(body, `"`+tc.param+`"`) {
			t.Errorf("%s: %d %s; want 400 naming %s", tc.name, code, body, tc.param)
		}
	}
	if _, err := os.Stat(e.configFile("102")); !os.IsNotExist(err) {
		t.Errorf("config of refused VM 102 written: %v", err)
	}
	if files := e.storeFiles(); !slices.Equal(files, []string{"images/101/vm-101-disk-0.qcow2"}) {
		t.Errorf("storage after refused calls: %v", files)
	}
	if after := e.readConfig("101"); after != before {
		t.Errorf("duplicate create changed 101:\n%s\n---\n%s", before, after)
	}

	// The same checks on updates, and a stale digest.
	for _, tc := range []struct {
		name  string
		q     url.Values
		code  int
		match string
	}{
		{"unknown key", url.Values{"bogus": {"1"}}, 400, `"bogus"`},
		{"bad disk", url.Values{"scsi1": {"store:1,format=qcow3"}}, 400, `"scsi1"`},
		{"delete unknown", url.Values{"delete": {"nosuchkey"}}, 400, `"delete"`},
		{"set and delete", url.Values{"name": {"x"}, "delete": {"name"}}, 400, `"delete"`},
		{"stale digest", url.Values{"name": {"x"}, "digest": {strings.Repeat("0", 40)}}, 500, "detected modified configuration"},
	} {
		code, _, body := e.Call("admin", "PUT", "/nodes/n1/qemu/101/config", tc.q)
		if code != tc.code || !strings.Contains(body, tc.match) {
			t.Errorf("update %s: %d %s; want %d with %s", tc.name, code, body, tc.code, tc.match)
		}
	}
	if after := e.readConfig("101"); after != before {
		t.Errorf("refused updates changed 101:\n%s\n---\n%s", before, after)
	}
}

// TestConfigUpdates: PUT and POST with digest, disks moved to unusedN and
// freed, pending changes on a running VM applied at the next start.
func TestConfigUpdates(t *testing.T) {
	e := newEnv(t)
	e.createVM("103", nil)
	var cfg map[string]any
	json.Unmarshal(e.must("GET", "/nodes/n1/qemu/103/config", nil), &cfg)
	e.must("PUT", "/nodes/n1/qemu/103/config", url.Values{"name": {"renamed"}, "digest": {cfg["digest"].(string)}})
	if !strings.Contains(e.readConfig("103"), "name: renamed\n") {
		t.Fatal("PUT name not written")
	}
	// A new disk through the asynchronous POST, then detach and delete.
	var upid string
	json.Unmarshal(e.must("POST", "/nodes/n1/qemu/103/config", url.Values{"virtio1": {"store:0.5"}}), &upid)
	if st := e.wait(upid); st != "OK" {
		t.Fatalf("POST config: %s", st)
	}
	conf := e.readConfig("103")
	if !strings.Contains(conf, "virtio1: store:103/vm-103-disk-1.raw,size=512M\n") {
		t.Fatalf("new disk not in config:\n%s", conf)
	}
	e.must("PUT", "/nodes/n1/qemu/103/config", url.Values{"delete": {"virtio1"}})
	if conf = e.readConfig("103"); !strings.Contains(conf, "unused0: store:103/vm-103-disk-1.raw\n") {
		t.Fatalf("detached disk not unused0:\n%s", conf)
	}
	e.must("PUT", "/nodes/n1/qemu/103/config", url.Values{"delete": {"unused0"}})
	if files := e.storeFiles(); !slices.Equal(files, []string{"images/103/vm-103-disk-0.qcow2"}) {
		t.Errorf("unused0 not freed: %v", files)
	}

	// Running: memory goes to [PENDING], name changes at once.
	if st := e.task("POST", "/nodes/n1/qemu/103/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	e.must("PUT", "/nodes/n1/qemu/103/config", url.Values{"memory": {"256"}, "name": {"live"}, "delete": {"cores"}})
	conf = e.readConfig("103")
	if !strings.Contains(conf, "[PENDING]\ndelete: cores\nmemory: 256\n") || !strings.Contains(conf, "name: live\n") {
		t.Fatalf("pending not recorded:\n%s", conf)
	}
	var pend []map[string]any
	json.Unmarshal(e.must("GET", "/nodes/n1/qemu/103/pending", nil), &pend)
	found := 0
	for _, it := range pend {
		if it["key"] == "memory" && it["value"] == "128" && it["pending"] == "256" {
			found++
		}
		if it["key"] == "cores" && it["delete"] == float64(1) {
			found++
		}
	}
	if found != 2 {
		t.Errorf("pending list: %v", pend)
	}
	cfg = nil
	json.Unmarshal(e.must("GET", "/nodes/n1/qemu/103/config", nil), &cfg)
	if cfg["memory"] != "256" || cfg["cores"] != nil {
		t.Errorf("config with pending applied: memory %v cores %v", cfg["memory"], cfg["cores"])
	}
	cfg = nil
	json.Unmarshal(e.must("GET", "/nodes/n1/qemu/103/config", url.Values{"current": {"1"}}), &cfg)
	if cfg["memory"] != "128" || cfg["cores"] != float64(1) {
		t.Errorf("current config: memory %v", cfg["memory"])
	}
	if st := e.task("POST", "/nodes/n1/qemu/103/status/stop", nil); st != "OK" {
		t.Fatalf("stop: %s", st)
	}
	if st := e.task("POST", "/nodes/n1/qemu/103/status/start", nil); st != "OK" {
		t.Fatalf("restart: %s", st)
	}
	if conf = e.readConfig("103"); strings.Contains(conf, "PENDING") || !strings.Contains(conf, "memory: 256\n") || strings.Contains(conf, "cores:") {
		t.Errorf("pending not applied at start:\n%s", conf)
	}
	if got := e.status("103").MaxMem; got != 256<<20 {
		t.Errorf("maxmem after restart: %d", got)
	}
}

// TestConcurrentOperations: many simultaneous starts and config updates
// of one VM start one QEMU and lose no update.
func TestConcurrentOperations(t *testing.T) {
	e := newEnv(t)
	e.createVM("104", nil)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]string, n)
	upids := make([]string, n)
	for i := range n {
		var up string
		json.Unmarshal(e.must("POST", "/nodes/n1/qemu/104/status/start", nil), &up)
		upids[i] = up
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.wait(upids[i])
		}()
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		if st == "OK" {
			ok++
		} else if !strings.Contains(st, "already running") {
			t.Errorf("start: %s", st)
		}
	}
	if ok != 1 {
		t.Errorf("%d starts succeeded, want 1: %v", ok, statuses)
	}
	if c := qemuProcesses(t, "104"); c != 1 {
		t.Errorf("%d QEMU processes for VM 104", c)
	}

	// Parallel PUTs of distinct keys: every one ends up in the config.
	var mu sync.Mutex
	errs := []string{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, body := e.Call("admin", "PUT", "/nodes/n1/qemu/104/config", url.Values{"description": nil, "tags": nil, "name": {fmt.Sprintf("n%d", i)}, "onboot": {"1"}})
			_ = code
			if code != 200 {
				mu.Lock()
				errs = append(errs, body)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("parallel updates failed: %v", errs)
	}
	conf := e.readConfig("104")
	if !regexp.MustCompile(`(?m)^name: n\d$`).MatchString(conf) || !strings.Contains(conf, "onboot: 1\n") {
		t.Errorf("config after parallel updates:\n%s", conf)
	}
}

// qemuProcesses counts QEMU processes whose command line names vmid.
func qemuProcesses(t *testing.T, vmid string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range ents {
		cmd, err := os.ReadFile("/proc/" + en.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if strings.Contains(args[0], "qemu-system") && slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "/"+vmid+".pid") }) {
			n++
		}
	}
	return n
}

// TestKilledFromOutside: a QEMU killed by someone else is reported stopped
// and the VM starts again.
func TestKilledFromOutside(t *testing.T) {
	e := newEnv(t)
	e.createVM("105", nil)
	if st := e.task("POST", "/nodes/n1/qemu/105/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	pid := e.status("105").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.status("105").Status != "stopped" {
		if time.Now().After(deadline) {
			t.Fatal("VM still reported running 10 s after QEMU was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := e.task("POST", "/nodes/n1/qemu/105/status/start", nil); st != "OK" {
		t.Fatalf("start after kill: %s", st)
	}
	if s := e.status("105"); s.Status != "running" || s.PID == pid {
		t.Errorf("after restart: %+v", s)
	}
}

// TestPermissions: a VM user may start and audit VM 100 but not change its
// hardware or create VMs.
func TestPermissions(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", nil)
	for _, tc := range []struct {
		method, path string
		q            url.Values
		code         int
	}{
		{"GET", "/nodes/n1/qemu/100/config", nil, 200},
		{"GET", "/nodes/n1/qemu/100/status/current", nil, 200},
		{"PUT", "/nodes/n1/qemu/100/config", url.Values{"memory": {"256"}}, 403},
		{"POST", "/nodes/n1/qemu", url.Values{"vmid": {"100"}}, 403},
		{"POST", "/nodes/n1/qemu", url.Values{"vmid": {"110"}}, 403},
		{"DELETE", "/nodes/n1/qemu/100", nil, 403},
		{"POST", "/nodes/n1/qemu/100/status/start", url.Values{"skiplock": {"1"}}, 403},
	} {
		if code, _, body := e.Call("alice", tc.method, tc.path, tc.q); code != tc.code {
			t.Errorf("alice %s %s %v: %d %s; want %d", tc.method, tc.path, tc.q, code, body, tc.code)
		}
	}
	var list []status
	json.Unmarshal(e.must("GET", "/nodes/n1/qemu", nil), &list)
	if len(list) != 1 {
		t.Errorf("admin list: %+v", list)
	}
}

// readMagic returns the first four bytes of a file.
func readMagic(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}
