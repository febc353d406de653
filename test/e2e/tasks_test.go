package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// TestTaskListEmptyNode: pvedaemon opens PVE's task directory at start and
// the task list answers through pveproxy (forwarded; no task has run yet).
func TestTaskListEmptyNode(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	r := c.get("/api2/json/nodes/" + nodeName + "/tasks")
	if r.status != http.StatusOK {
		t.Fatalf("task list: %d %q", r.status, r.message)
	}
	var env struct {
		Data  []json.RawMessage `json:"data"`
		Total *int              `json:"total"`
	}
	// PVE's formatter leaves total out when it is 0.
	if err := json.Unmarshal(r.body, &env); err != nil || env.Data == nil || len(env.Data) != 0 || env.Total != nil {
		t.Errorf("task list of a fresh node: %s (err %v), want data [] without total", r.body, err)
	}
	if fi, err := os.Stat(filepath.Join(n.prefix, "var/log/pve/tasks")); err != nil || !fi.IsDir() {
		t.Errorf("task directory: %v", err)
	}
	if r := c.get("/api2/json/nodes/" + nodeName + "/tasks/UPID:x/status"); r.status != http.StatusBadRequest {
		t.Errorf("bad UPID: %d, want 400", r.status)
	}
}

// TestStorageEmbedded: the embedded installation's "local" storage lives
// under its prefix, and a disk image allocated through pveproxy is a real
// qcow2 file there.
func TestStorageEmbedded(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	r := c.get("/api2/json/nodes/" + nodeName + "/storage/local/status")
	var st struct {
		Total  int64 `json:"total"`
		Active int   `json:"active"`
	}
	decode(t, r, &st)
	if r.status != http.StatusOK || st.Active != 1 || st.Total <= 0 {
		t.Fatalf("local status: %d %s", r.status, r.body)
	}
	r = c.must(http.MethodPost, "/api2/json/nodes/"+nodeName+"/storage/local/content",
		url.Values{"vmid": {"100"}, "filename": {"vm-100-disk-0.qcow2"}, "size": {"1M"}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("allocate: %d %q %v", r.status, r.message, r.errors)
	}
	var volid string
	decode(t, r, &volid)
	if volid != "local:100/vm-100-disk-0.qcow2" {
		t.Errorf("volid %q", volid)
	}
	img := filepath.Join(n.prefix, "var/lib/vz/images/100/vm-100-disk-0.qcow2")
	if fi, err := os.Stat(img); err != nil || fi.Size() == 0 {
		t.Fatalf("image under the prefix: %v", err)
	}
}

// TestNextID: /cluster/nextid skips the VMIDs whose config exists, answers
// as PVE does (the number as a JSON string), and refuses a used vmid.
func TestNextID(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	for _, id := range []string{"100", "101"} {
		n.writeCfg(t, "nodes/"+nodeName+"/qemu-server/"+id+".conf", "memory: 128\n", 0o640)
	}
	r := c.get("/api2/json/cluster/nextid")
	if r.status != http.StatusOK || string(r.data) != `"102"` {
		t.Errorf("nextid: %d %s, want \"102\"", r.status, r.data)
	}
	if r := c.get("/api2/json/cluster/nextid?vmid=101"); r.status != http.StatusBadRequest || r.errors["vmid"] != "VM 101 already exists" {
		t.Errorf("nextid vmid=101: %d %v", r.status, r.errors)
	}
	if r := c.get("/api2/json/cluster/nextid?vmid=200"); r.status != http.StatusOK || string(r.data) != `"200"` {
		t.Errorf("nextid vmid=200: %d %s", r.status, r.data)
	}
}
