package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// resource is an entry of /cluster/resources.
type resource map[string]any

// resources returns /cluster/resources by id.
func resources(t *testing.T, c *client) map[string]resource {
	t.Helper()
	var list []resource
	r := c.get("/api2/json/cluster/resources")
	if r.status != http.StatusOK {
		t.Fatalf("resources: %d %s", r.status, r.body)
	}
	decode(t, r, &list)
	out := map[string]resource{}
	for _, e := range list {
		out[e["id"].(string)] = e
	}
	return out
}

// waitResource polls /cluster/resources until ok holds for entry id.
func waitResource(t *testing.T, c *client, id string, within time.Duration, ok func(resource) bool) resource {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e := resources(t, c)[id]
		if e != nil && ok(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not as expected within %v: %v", id, within, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatdStandalone: pvestatd on a node outside a cluster publishes the
// node's, a running VM's and the storages' status to /cluster/resources
// and keeps their history for rrddata.
func TestStatdStandalone(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	n.startStatd()
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	node := waitResource(t, c, "node/"+nodeName, 10*time.Second, func(e resource) bool { return e["status"] == "online" })
	if node["maxcpu"] == nil || node["maxmem"].(float64) <= 0 {
		t.Errorf("node entry: %v", node)
	}
	waitResource(t, c, "storage/"+nodeName+"/local", 10*time.Second, func(e resource) bool { return e["status"] == "available" })

	base := "/api2/json/nodes/" + nodeName + "/qemu"
	upid := startedTask(t, c, http.MethodPost, base, url.Values{"vmid": {"100"}, "name": {"stat"}, "memory": {"64"}, "vga": {"none"}, "start": {"1"}})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create and start: %s", st)
	}
	vm := waitResource(t, c, "qemu/100", 10*time.Second, func(e resource) bool { return e["status"] == "running" })
	if vm["name"] != "stat" || vm["maxmem"] != float64(64<<20) || vm["node"] != nodeName {
		t.Errorf("VM entry: %v", vm)
	}

	// History: pvedaemon answers from pvestatd's store, for the node and
	// (from the cycle after it started) the VM.
	for _, path := range []string{"/api2/json/nodes/" + nodeName + "/rrddata?timeframe=hour", base + "/100/rrddata?timeframe=hour&cf=MAX"} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			var points []map[string]any
			r := c.get(path)
			if r.status == http.StatusOK {
				decode(t, r, &points)
				if len(points) > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
