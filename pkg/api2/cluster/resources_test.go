package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/cluster"
	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// clusterEnv is a config root with guests on two nodes, a pool, storages,
// and a view file as pvestatd writes it: n1 online, n2 offline.
type clusterEnv struct {
	c    *apitest.Client
	view string
}

func newClusterEnv(t testing.TB, view *clusterstate.View, extraGuests int) *clusterEnv {
	files := map[string]string{
		"user.cfg": apitest.RootUser +
			"user:admin@pve:1:0:::::\nuser:alice@pve:1:0:::::\n" +
			"pool:lab::100::\n" +
			"acl:1:/:admin@pve:Administrator:\n" +
			"acl:1:/vms/100:alice@pve:PVEAuditor:\n",
		"storage.cfg": "dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n\n" +
			"dir: fast\n\tpath /srv/fast\n\tcontent images\n\tnodes n1\n\n",
		"nodes/n1/qemu-server/100.conf": "name: web\nmemory: 1024\n",
		"nodes/n1/qemu-server/101.conf": "name: db\n",
		"nodes/n2/qemu-server/200.conf": "name: old\n",
	}
	for i := range extraGuests {
		files[fmt.Sprintf("nodes/n1/qemu-server/%d.conf", 1000+i)] = "memory: 512\n"
	}
	e := apitest.New(t, apitest.Setup{Files: files})
	path := filepath.Join(t.TempDir(), "cluster.state")
	if view != nil {
		if err := clusterstate.WriteFile(path, view, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	reg := api.NewRegistry(cluster.Methods(cluster.Deps{
		NodeIP: func() string { return "192.0.2.1" }, Root: e.Root, Access: e.Auth,
		View: clusterstate.NewReader(path),
	}))
	return &clusterEnv{c: e.Serve(reg), view: path}
}

func twoNodeView() *clusterstate.View {
	return &clusterstate.View{
		Version: 7, LocalNode: "n1", Cluster: "lab", ConfigVersion: 3, Quorate: true,
		Members: []clusterstate.Member{
			{Name: "n1", NodeID: 1, IP: "192.0.2.1", Online: true, State: &clusterstate.NodeState{
				Node: clusterstate.Node{Name: "n1", Uptime: 500, CPU: 0.5, MaxCPU: 4, MemTotal: 8 << 30, MemUsed: 2 << 30, RootTotal: 100 << 30, RootUsed: 10 << 30},
				Guests: []clusterstate.Guest{
					{VMID: 100, Type: "qemu", Name: "web", Status: "running", Uptime: 60, CPU: 0.25, MaxCPU: 2, Mem: 512 << 20, MaxMem: 1 << 30},
					{VMID: 101, Type: "qemu", Name: "db", Status: "stopped", MaxCPU: 1, MaxMem: 512 << 20},
				},
				Storages: []clusterstate.Storage{{ID: "local", Type: "dir", Active: true, Total: 100 << 30, Used: 5 << 30}},
			}},
			{Name: "n2", NodeID: 2, IP: "192.0.2.2", Online: false, State: &clusterstate.NodeState{
				Node:   clusterstate.Node{Name: "n2", Uptime: 900, MaxCPU: 2},
				Guests: []clusterstate.Guest{{VMID: 200, Type: "qemu", Name: "old", Status: "running", Uptime: 800}},
			}},
		},
	}
}

type entry map[string]any

func (e *clusterEnv) resources(t *testing.T, user string, q ...string) map[string]entry {
	t.Helper()
	var list []entry
	if err := json.Unmarshal(e.c.Must(user, "GET", "/cluster/resources", apitest.Values(q...)), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for _, x := range list {
		out[x["id"].(string)] = x
	}
	return out
}

func TestResources(t *testing.T) {
	e := newClusterEnv(t, twoNodeView(), 0)
	all := e.resources(t, "admin@pve")
	var ids []string
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	want := []string{"/pool/lab", "node/n1", "node/n2", "qemu/100", "qemu/101", "qemu/200",
		"storage/n1/fast", "storage/n1/local", "storage/n2/local"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	for _, tc := range []struct {
		id, key string
		want    any
	}{
		{"qemu/100", "status", "running"},
		{"qemu/100", "vmid", float64(100)},
		{"qemu/100", "node", "n1"},
		{"qemu/100", "pool", "lab"},
		{"qemu/100", "maxmem", float64(1 << 30)},
		{"qemu/100", "cpu", 0.25},
		{"qemu/101", "status", "stopped"},
		{"qemu/200", "status", "unknown"}, // n2 is offline: last known figures, status unknown
		{"qemu/200", "uptime", float64(800)},
		{"node/n1", "status", "online"},
		{"node/n1", "maxcpu", float64(4)},
		{"node/n2", "status", "offline"},
		{"storage/n1/local", "status", "available"},
		{"storage/n1/local", "maxdisk", float64(100 << 30)},
		{"storage/n1/fast", "status", "unknown"},
		{"storage/n2/local", "status", "unknown"},
		{"/pool/lab", "maxmem", float64(1 << 30)},
	} {
		if got := all[tc.id][tc.key]; got != tc.want {
			t.Errorf("%s %s = %#v, want %#v", tc.id, tc.key, got, tc.want)
		}
	}
	if _, ok := all["node/n2"]["uptime"]; ok {
		t.Errorf("offline node has figures: %v", all["node/n2"])
	}

	vms := e.resources(t, "admin@pve", "type", "vm")
	if len(vms) != 3 || vms["qemu/100"] == nil {
		t.Errorf("type=vm: %v", vms)
	}

	// alice audits VM 100 only: no pool (no Pool.Audit), no storages,
	// node entries without figures.
	seen := e.resources(t, "alice@pve")
	if len(seen) != 3 || seen["qemu/100"] == nil || seen["node/n1"] == nil {
		t.Fatalf("alice sees %v", seen)
	}
	if _, ok := seen["qemu/100"]["pool"]; ok {
		t.Errorf("pool shown without Pool.Audit: %v", seen["qemu/100"])
	}
	if _, ok := seen["node/n1"]["cpu"]; ok || seen["node/n1"]["status"] != "online" {
		t.Errorf("node figures without Sys.Audit: %v", seen["node/n1"])
	}
}

func TestResourcesWithoutView(t *testing.T) {
	e := newClusterEnv(t, nil, 0)
	all := e.resources(t, "admin@pve")
	if all["qemu/100"]["status"] != "unknown" || all["node/n1"]["status"] != "unknown" || all["qemu/200"] == nil {
		t.Errorf("without pvestatd: %v", all)
	}
}

func TestClusterStatus(t *testing.T) {
	e := newClusterEnv(t, twoNodeView(), 0)
	var list []entry
	if err := json.Unmarshal(e.c.Must("admin@pve", "GET", "/cluster/status", nil), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0]["type"] != "cluster" || list[0]["name"] != "lab" || list[0]["nodes"] != float64(2) ||
		list[0]["quorate"] != float64(1) || list[0]["version"] != float64(3) {
		t.Fatalf("status: %v", list)
	}
	n1, n2 := list[1], list[2]
	if n1["name"] != "n1" || n1["local"] != float64(1) || n1["online"] != float64(1) || n1["nodeid"] != float64(1) || n1["ip"] != "192.0.2.1" {
		t.Errorf("n1: %v", n1)
	}
	if n2["online"] != float64(0) || n2["local"] != float64(0) {
		t.Errorf("n2: %v", n2)
	}
}

// TestResourcesFollowTheView: a new view file is picked up within
// clusterstate.RecheckInterval.
func TestResourcesFollowTheView(t *testing.T) {
	v := twoNodeView()
	e := newClusterEnv(t, v, 0)
	if got := e.resources(t, "admin@pve")["qemu/101"]["status"]; got != "stopped" {
		t.Fatalf("before: %v", got)
	}
	v.Version++
	v.Members[0].State.Guests[1].Status = "running"
	time.Sleep(10 * time.Millisecond)
	if err := clusterstate.WriteFile(e.view, v, 0o640); err != nil {
		t.Fatal(err)
	}
	// The reader looks at the file again after clusterstate.RecheckInterval.
	deadline := time.Now().Add(10 * clusterstate.RecheckInterval)
	for {
		got := e.resources(t, "admin@pve")["qemu/101"]["status"]
		if got == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the view changed: %v", 10*clusterstate.RecheckInterval, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(e.view)
}

// BenchmarkResources10k measures GET /cluster/resources with 10,000
// guests, the view unchanged between calls, as root (no permission checks)
// and as a pve user with Administrator on / (a check per entry). The
// server's side only: the in-process request, without decoding the answer.
func BenchmarkResources10k(b *testing.B) {
	v := twoNodeView()
	for i := range 10000 {
		v.Members[0].State.Guests = append(v.Members[0].State.Guests, clusterstate.Guest{
			VMID: 1000 + i, Type: "qemu", Name: fmt.Sprintf("guest%d", i), Status: "running",
			Uptime: 1000, CPU: 0.01, MaxCPU: 2, Mem: 1 << 30, MaxMem: 2 << 30, MaxDisk: 32 << 30, NetIn: 12345, NetOut: 54321})
	}
	e := newClusterEnv(b, v, 10000)
	var list []entry
	if err := json.Unmarshal(e.c.Must("root@pam", "GET", "/cluster/resources", nil), &list); err != nil || len(list) != 10009 {
		b.Fatalf("%d entries, %v", len(list), err)
	}
	// Steady state: the guest directories were just written, and a
	// directory changed less than a second ago is always read again.
	time.Sleep(1100 * time.Millisecond)
	e.c.Must("root@pam", "GET", "/cluster/resources", nil)
	for _, user := range []string{"root@pam", "admin@pve"} {
		b.Run(user, func(b *testing.B) {
			lr := e.c.Login(user)
			req := httptest.NewRequest("GET", "/api2/json/cluster/resources", nil)
			req.RemoteAddr = "127.0.0.1:1"
			req.Header.Set("Cookie", ticket.CookieHeader(lr.Ticket))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				e.c.Server.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
