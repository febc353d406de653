package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replStatus is an entry of GET /nodes/{node}/replication.
type replStatus struct {
	ID        string  `json:"id"`
	LastSync  int64   `json:"last_sync"`
	LastTry   int64   `json:"last_try"`
	FailCount int     `json:"fail_count"`
	Error     string  `json:"error"`
	Duration  float64 `json:"duration"`
	NextSync  int64   `json:"next_sync"`
	PID       int     `json:"pid"`
}

// TestReplication: a replication job of a running VM on node A to node B,
// fired by A's pvescheduler and run by A's pvedaemon, copies both disks
// (qcow2 and raw) as of one instant to B's storage over the nodes' TLS;
// the replicas match the source; the state and the job log tell of the
// run; schedule_now runs it again; with B's pveproxy down the run fails,
// and the state says why and counts the failure.
func TestReplication(t *testing.T) {
	for _, bin := range []string{"qemu-system-x86_64", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	t.Parallel()
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	ca := a.clientOf(t)
	for _, n := range nodes {
		waitResource(t, ca, "node/"+n.name, convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	}
	api := "/api2/json"
	qemu := api + "/nodes/" + a.name + "/qemu"
	upid := startedTask(t, ca, http.MethodPost, qemu, url.Values{
		"vmid": {"100"}, "name": {"repl"}, "memory": {"64"}, "vga": {"none"},
		"scsi0": {"local:1,format=qcow2"}, "scsi1": {"local:1,format=raw"},
	})
	if st := waitTaskOn(t, ca, a.name, upid); st != "OK" {
		t.Fatalf("create: %s", st)
	}
	srcImages := filepath.Join(a.prefix, "var/lib/vz/images/100")
	src := []string{filepath.Join(srcImages, "vm-100-disk-0.qcow2"), filepath.Join(srcImages, "vm-100-disk-1.raw")}
	for i, img := range src {
		for _, w := range []string{"write -P 0x6b 0 2M", fmt.Sprintf("write -P 0x%02x 900M 5M", 0x41+i)} {
			if out, err := exec.Command("qemu-io", "-f", map[bool]string{true: "qcow2", false: "raw"}[i == 0], "-c", w, img).CombinedOutput(); err != nil {
				t.Fatalf("qemu-io: %v\n%s", err, out)
			}
		}
	}
	want := []string{rawSum(t, src[0]), rawSum(t, src[1])}
	upid = startedTask(t, ca, http.MethodPost, qemu+"/100/status/start", url.Values{})
	if st := waitTaskOn(t, ca, a.name, upid); st != "OK" {
		t.Fatalf("start: %s", st)
	}

	if r := ca.must(http.MethodPost, api+"/cluster/replication", url.Values{
		"id": {"100-0"}, "target": {b.name}, "type": {"local"}, "schedule": {"*/15"},
	}, nil); r.status != http.StatusOK {
		t.Fatalf("create job: %d %s", r.status, r.body)
	}
	if _, stderr, err := a.run("pvescheduler", "start", "--prefix", a.prefix, "--node", a.name); err != nil {
		t.Fatalf("start pvescheduler: %v: %s", err, stderr)
	}
	t.Cleanup(func() { a.run("pvescheduler", "stop", "--prefix", a.prefix) })

	// A new job runs at once (it never ran).
	began := time.Now()
	st := waitReplication(t, ca, a.name, "100-0", func(s replStatus) bool { return s.LastSync > 0 || s.FailCount > 0 })
	if st.FailCount != 0 || st.Error != "" {
		t.Fatalf("first run failed: %+v\nlog:\n%s", st, replLog(t, ca, a.name))
	}
	t.Logf("first replication (2 x 1 GiB disks, sparse) done %v after the job was created (%.1fs run)", time.Since(began), st.Duration)
	dstImages := filepath.Join(b.prefix, "var/lib/vz/images/100")
	for i, name := range []string{"vm-100-disk-0.qcow2", "vm-100-disk-1.raw"} {
		if got := rawSum(t, filepath.Join(dstImages, name)); got != want[i] {
			t.Errorf("replica %s on %s: sha256 %s, source %s", name, b.name, got, want[i])
		}
	}
	if next := time.Unix(st.NextSync, 0); next.Before(time.Now()) || next.After(time.Now().Add(16*time.Minute)) {
		t.Errorf("next sync %v", next)
	}
	log := replLog(t, ca, a.name)
	for _, line := range []string{"start replication job", "volumes => local:100/vm-100-disk-0.qcow2,local:100/vm-100-disk-1.raw", "end replication job"} {
		if !strings.Contains(log, line) {
			t.Errorf("job log lacks %q:\n%s", line, log)
		}
	}
	var vm struct {
		Status string `json:"status"`
	}
	decode(t, ca.get(qemu+"/100/status/current"), &vm)
	if vm.Status != "running" {
		t.Errorf("VM %s after replication", vm.Status)
	}

	// The guest's disk changes (2 MiB written into the raw disk through
	// QEMU); schedule_now runs the job again within seconds, and only the
	// changed chunks go over.
	hmp(t, filepath.Join(a.prefix, "run/qemu-server/100.qmp"), `qemu-io drive-scsi1 "write -P 0x99 100M 2M"`)
	want[1] = rawSum(t, src[1])
	first := st.LastSync
	if r := ca.must(http.MethodPost, api+"/nodes/"+a.name+"/replication/100-0/schedule_now", nil, nil); r.status != http.StatusOK {
		t.Fatalf("schedule_now: %d %s", r.status, r.body)
	}
	st = waitReplication(t, ca, a.name, "100-0", func(s replStatus) bool { return s.LastSync > first || s.FailCount > 0 })
	if st.FailCount != 0 {
		t.Fatalf("second run failed: %+v", st)
	}
	for i, name := range []string{"vm-100-disk-0.qcow2", "vm-100-disk-1.raw"} {
		if got := rawSum(t, filepath.Join(dstImages, name)); got != want[i] {
			t.Errorf("replica %s after the incremental sync: sha256 %s, source %s", name, got, want[i])
		}
	}
	log = replLog(t, ca, a.name)
	for _, line := range []string{
		"incremental sync 'local:100/vm-100-disk-0.qcow2' (1.0 GiB) to node '" + b.name + "': 0 of 16384 chunks changed",
		"incremental sync 'local:100/vm-100-disk-1.raw' (1.0 GiB) to node '" + b.name + "': 32 of 16384 chunks changed, 2.0 MiB sent",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("second run's log lacks %q:\n%s", line, log)
		}
	}
	t.Logf("incremental sync (2 MiB changed of 2 GiB) took %.1fs", st.Duration)

	// The target's pveproxy down: the run fails, the state says why.
	if err := b.stop("pveproxy"); err != nil {
		t.Fatal(err)
	}
	ca.must(http.MethodPost, api+"/nodes/"+a.name+"/replication/100-0/schedule_now", nil, nil)
	st = waitReplication(t, ca, a.name, "100-0", func(s replStatus) bool { return s.FailCount > 0 })
	if st.Error == "" || !strings.Contains(st.Error, b.name) || st.NextSync != st.LastTry+300 {
		t.Errorf("failed run: %+v", st)
	}
	t.Logf("failed run reported: %q, next try %ds after it", st.Error, st.NextSync-st.LastTry)
}

func waitReplication(t *testing.T, c *client, node, id string, ok func(replStatus) bool) replStatus {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var list []replStatus
		decode(t, c.get("/api2/json/nodes/"+node+"/replication"), &list)
		for _, s := range list {
			if s.ID == id && s.PID == 0 && ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication %s: no such state within 90 s: %+v\nlog:\n%s", id, list, replLog(t, c, node))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func replLog(t *testing.T, c *client, node string) string {
	var lines []struct {
		T string `json:"t"`
	}
	decode(t, c.get("/api2/json/nodes/"+node+"/replication/100-0/log"), &lines)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.T + "\n")
	}
	return b.String()
}

// hmp runs a human monitor command in a VM through its QMP socket.
func hmp(t *testing.T, socket, cmd string) {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		t.Fatal(err)
	}
	for _, req := range []map[string]any{
		{"execute": "qmp_capabilities"},
		{"execute": "human-monitor-command", "arguments": map[string]any{"command-line": cmd}},
	} {
		if err := json.NewEncoder(conn).Encode(req); err != nil {
			t.Fatal(err)
		}
		for {
			var resp map[string]any
			if err := dec.Decode(&resp); err != nil {
				t.Fatal(err)
			}
			if _, ev := resp["event"]; ev {
				continue
			}
			if e, bad := resp["error"]; bad {
				t.Fatalf("%s: %v", cmd, e)
			}
			if out, _ := resp["return"].(string); strings.Contains(out, "rror") {
				t.Fatalf("%s: %s", cmd, out)
			}
			break
		}
	}
}
