package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVMThroughProxy drives a real VM through pveproxy over HTTPS as a
// client would: create it with a qcow2 disk, start it (real QEMU), watch
// the task to OK, read its live status, stop it and delete it with its
// disk.
func TestVMThroughProxy(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + nodeName + "/qemu"

	upid := startedTask(t, c, http.MethodPost, base, url.Values{
		"vmid": {"100"}, "name": {"e2e"}, "memory": {"128"}, "cores": {"1"},
		"scsi0": {"local:1,format=qcow2"}, "net0": {"virtio"}, "vga": {"none"},
	})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create: %s\n%s", st, taskLog(t, c, upid))
	}
	disk := filepath.Join(n.prefix, "var/lib/vz/images/100/vm-100-disk-0.qcow2")
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("disk: %v", err)
	}

	// GET config is answered by pveproxy itself (www-data reads the
	// config root); the disk line is PVE's.
	r := c.get(base + "/100/config")
	var cfg map[string]any
	decode(t, r, &cfg)
	if r.status != http.StatusOK || cfg["scsi0"] != "local:100/vm-100-disk-0.qcow2,size=1G" {
		t.Fatalf("config: %d %s", r.status, r.body)
	}

	began := time.Now()
	upid = startedTask(t, c, http.MethodPost, base+"/100/status/start", url.Values{})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("start: %s\n%s", st, taskLog(t, c, upid))
	}
	var s struct {
		Status    string `json:"status"`
		QMPStatus string `json:"qmpstatus"`
		PID       int    `json:"pid"`
		Uptime    int    `json:"uptime"`
		MaxMem    int64  `json:"maxmem"`
		Mem       int64  `json:"mem"`
		DiskRead  int64  `json:"diskread"`
	}
	decode(t, c.get(base+"/100/status/current"), &s)
	t.Logf("start call to status running: %v", time.Since(began))
	if s.Status != "running" || s.QMPStatus != "running" || s.PID == 0 || s.MaxMem != 128<<20 || s.Mem <= 0 {
		t.Fatalf("status after start: %+v", s)
	}
	if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/cmdline"); err != nil || !strings.Contains(string(cmd), "qemu-system") {
		t.Fatalf("pid %d is not QEMU: %q %v", s.PID, cmd, err)
	}

	upid = startedTask(t, c, http.MethodPost, base+"/100/status/stop", url.Values{})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("stop: %s", st)
	}
	decode(t, c.get(base+"/100/status/current"), &s)
	if s.Status != "stopped" {
		t.Fatalf("status after stop: %+v", s)
	}

	upid = startedTask(t, c, http.MethodDelete, base+"/100?purge=1&destroy-unreferenced-disks=1", nil)
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("destroy: %s", st)
	}
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Errorf("disk still there after destroy: %v", err)
	}
	if r := c.get(base + "/100/config"); r.status != http.StatusInternalServerError || !strings.Contains(r.message, "does not exist") {
		t.Errorf("config after destroy: %d %q", r.status, r.message)
	}
}

// TestVMSurvivesDaemonRestart: a running VM keeps running while pvedaemon
// restarts; the new pvedaemon adopts it (status, stop) and notices when it
// is killed from outside.
func TestVMSurvivesDaemonRestart(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + nodeName + "/qemu"
	for _, vmid := range []string{"101", "102"} {
		upid := startedTask(t, c, http.MethodPost, base, url.Values{"vmid": {vmid}, "memory": {"64"}, "vga": {"none"}, "start": {"1"}})
		if st := waitTask(t, c, upid); st != "OK" {
			t.Fatalf("create and start %s: %s\n%s", vmid, st, taskLog(t, c, upid))
		}
	}
	var before, after struct {
		PID    int    `json:"pid"`
		Status string `json:"status"`
	}
	decode(t, c.get(base+"/101/status/current"), &before)
	if before.Status != "running" || before.PID == 0 {
		t.Fatalf("before restart: %+v", before)
	}

	if err := n.stop("pvedaemon"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(before.PID, 0); err != nil {
		t.Fatalf("QEMU %d gone after pvedaemon stopped: %v", before.PID, err)
	}
	if err := n.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	decode(t, c.get(base+"/101/status/current"), &after)
	if after != before {
		t.Fatalf("after restart: %+v, before %+v", after, before)
	}
	upid := startedTask(t, c, http.MethodPost, base+"/101/status/stop", url.Values{})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("stop adopted VM: %s", st)
	}
	decode(t, c.get(base+"/101/status/current"), &after)
	if after.Status != "stopped" {
		t.Errorf("adopted VM after stop: %+v", after)
	}

	// An adopted VM killed from outside is seen stopped within the
	// watch interval (2 s) and its pid file is removed.
	decode(t, c.get(base+"/102/status/current"), &before)
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		decode(t, c.get(base+"/102/status/current"), &after)
		if after.Status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("killed adopted VM still running after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pidFile := filepath.Join(n.prefix, "run/qemu-server/102.pid")
	for time.Now().Before(deadline) {
		if _, err := os.Stat(pidFile); os.IsNotExist(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s still there after the VM was killed", pidFile)
}

// killGuests kills the QEMU processes a failed test left running under
// n's prefix (their pid files name them).
func killGuests(n *node) {
	files, _ := filepath.Glob(filepath.Join(n.prefix, "run/qemu-server/*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// startedTask makes a call that answers a UPID.
func startedTask(t *testing.T, c *client, method, path string, form url.Values) string {
	t.Helper()
	r := c.must(method, path, form, nil)
	var upid string
	if r.status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
	}
	decode(t, r, &upid)
	if !strings.HasPrefix(upid, "UPID:"+nodeName+":") {
		t.Fatalf("%s %s: not a UPID: %q", method, path, upid)
	}
	return upid
}

// waitTask polls a task of this node until it stops and returns its exit
// status.
func waitTask(t *testing.T, c *client, upid string) string {
	t.Helper()
	return waitTaskOn(t, c, nodeName, upid)
}

// taskLog returns a task's log for failure messages.
func taskLog(t *testing.T, c *client, upid string) string {
	r := c.get("/api2/json/nodes/" + nodeName + "/tasks/" + url.PathEscape(upid) + "/log")
	return string(r.body)
}
