package e2e

import (
	"encoding/json"
	"net/http"
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
