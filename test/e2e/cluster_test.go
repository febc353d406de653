package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
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

// Bounds the cluster tests hold the daemons to (pvestatd runs with a 1 s
// cycle here; PVE's is 10 s).
const (
	// convergeWithin: a change on one node is seen on every node.
	convergeWithin = 5 * time.Second
	// offlineWithin: a killed node is shown offline (memberlist's failure
	// detection; docs/pvestatd.md gives the tuned figure).
	offlineWithin = 15 * time.Second
)

// clusterNode is one node of a test cluster: its own prefix (run, log
// and lib directories) on the shared config root, its own loopback
// address, pveproxy on the port all nodes share.
type clusterNode struct {
	*node
	ip string
}

// newCluster starts k nodes ("testnode", "node2", ...) sharing the first
// node's config root, made a cluster with pvenode-tool, each with
// pvedaemon, pveproxy and pvestatd: on 127.0.1.<i>, or with a lab each in
// its own network namespace behind the lab's bridge.
func newCluster(t *testing.T, k int, lab *netLab) []*clusterNode {
	t.Helper()
	port := freePort(t, "tcp4", "127.0.1.1:0")
	gport := freePort(t, "tcp4", "127.0.1.1:0")
	var nodes []*clusterNode
	for i := 1; i <= k; i++ {
		ip, ns := fmt.Sprintf("127.0.1.%d", i), ""
		if lab != nil {
			ns, ip = lab.addNode(i)
		}
		n := newNode(t, nodeOpts{noStart: true, defaults: "LISTEN_IP=" + ip + "\n"})
		n.pport, n.netns = port, ns
		if i > 1 {
			n.name = fmt.Sprintf("node%d", i)
			shareConfigRoot(t, n, nodes[0].node)
		}
		nodes = append(nodes, &clusterNode{node: n, ip: ip})
	}
	first := nodes[0]
	tool := func(args ...string) {
		t.Helper()
		args = append(args, "--prefix", first.prefix, "--node", first.name)
		if out, stderr, err := first.run("pvenode-tool", args...); err != nil {
			t.Fatalf("pvenode-tool %v: %v\n%s%s", args, err, out, stderr)
		}
	}
	tool("cluster", "create", "lab", "--link0", first.ip, "--gossip-port", strconv.Itoa(gport))
	for _, n := range nodes[1:] {
		tool("cluster", "addnode", n.name, "--link0", n.ip)
	}
	for _, n := range nodes {
		n.t.Cleanup(n.stopAll)
		n.t.Cleanup(func() { killGuests(n.node) })
		if err := n.startDaemon(false); err != nil {
			t.Fatalf("start pvedaemon of %s: %v", n.name, err)
		}
		if err := n.startProxy(false); err != nil {
			t.Fatalf("start pveproxy of %s: %v", n.name, err)
		}
		n.startStatd()
	}
	return nodes
}

// shareConfigRoot makes n use first's config root, as the nodes of a PVE
// cluster share /etc/pve.
func shareConfigRoot(t *testing.T, n, first *node) {
	t.Helper()
	etc := filepath.Join(n.prefix, "etc/pve")
	if err := os.RemoveAll(etc); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(first.prefix, "etc/pve"), etc); err != nil {
		t.Fatal(err)
	}
	n.root = first.root
	n.pool = first.pool
}

// clientOf returns a logged-in client of the node's pveproxy.
func (n *clusterNode) clientOf(t *testing.T) *client {
	c := n.client(t, clientOpts{host: n.ip, keepAlive: true,
		tls: &tls.Config{RootCAs: n.certPool(), ServerName: "localhost"}})
	c.mustLogin(adminUser, h.adminPW)
	return c
}

// kill ends all of the node's daemons at once with SIGKILL, as a crash or
// power loss would.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	for _, d := range []string{"pvestatd", "pveproxy", "pvedaemon"} {
		pid := n.pid(t, d)
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestCluster(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ca, cc := a.clientOf(t), c.clientOf(t)

	// Every node sees every node online.
	for _, n := range nodes {
		waitResource(t, cc, "node/"+n.name, convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	}

	// A VM started on A is seen running on C.
	base := "/api2/json/nodes/" + a.name + "/qemu"
	upid := startedTask(t, ca, http.MethodPost, base, url.Values{"vmid": {"100"}, "name": {"on-a"}, "memory": {"64"}, "vga": {"none"}, "start": {"1"}})
	if st := waitTaskOn(t, ca, a.name, upid); st != "OK" {
		t.Fatalf("create on A: %s", st)
	}
	began := time.Now()
	e := waitResource(t, cc, "qemu/100", convergeWithin, func(e resource) bool { return e["status"] == "running" })
	t.Logf("VM started on %s seen running on %s after %v", a.name, c.name, time.Since(began))
	if e["node"] != a.name || e["name"] != "on-a" {
		t.Errorf("VM entry on C: %v", e)
	}

	// A call made on C for the VM on A is forwarded to A.
	var st struct {
		Status string `json:"status"`
		PID    int    `json:"pid"`
	}
	r := cc.get(base + "/100/status/current")
	if r.status != http.StatusOK {
		t.Fatalf("status of A's VM through C: %d %s", r.status, r.body)
	}
	decode(t, r, &st)
	if st.Status != "running" || st.PID == 0 {
		t.Errorf("status of A's VM through C: %+v", st)
	}
	// Without a node certificate, a forwarded-looking call is refused.
	if r := cc.must(http.MethodGet, base+"/100/status/current", nil, http.Header{"PVEDisableProxy": {"true"}}); r.status != http.StatusForbidden {
		t.Errorf("PVEDisableProxy from a client: %d %s", r.status, r.body)
	}

	// B killed: offline on A within the bound, back after a restart.
	b.kill(t)
	began = time.Now()
	waitResource(t, ca, "node/"+b.name, offlineWithin, func(e resource) bool { return e["status"] == "offline" })
	t.Logf("%s killed, offline on %s after %v", b.name, a.name, time.Since(began))
	// A call for the offline node fails at once with PVE's 595.
	began = time.Now()
	r = ca.get("/api2/json/nodes/" + b.name + "/status")
	if r.status != 595 || time.Since(began) > 2*time.Second {
		t.Errorf("call for the offline node: %d %q after %v", r.status, r.message, time.Since(began))
	}
	if err := b.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	if err := b.startProxy(false); err != nil {
		t.Fatal(err)
	}
	b.startStatd()
	began = time.Now()
	waitResource(t, ca, "node/"+b.name, offlineWithin, func(e resource) bool { return e["status"] == "online" })
	t.Logf("%s restarted, online on %s after %v", b.name, a.name, time.Since(began))
}

// waitTaskOn is waitTask for a task of node.
func waitTaskOn(t *testing.T, c *client, node, upid string) string {
	t.Helper()
	path := "/api2/json/nodes/" + node + "/tasks/" + url.PathEscape(upid) + "/status"
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		decode(t, c.get(path), &st)
		if st.Status == "stopped" {
			return st.ExitStatus
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %s still running after 2 minutes", upid)
	return ""
}

// TestClusterPartition: a node cut off the network (its link down in a
// network namespace) is shown offline by the others and sees them offline;
// when the link comes back the cluster heals without any step.
func TestClusterPartition(t *testing.T) {
	t.Parallel()
	lab := newNetLab(t)
	nodes := newCluster(t, 3, lab)
	a, c := nodes[0], nodes[2]
	ca := a.clientOf(t)
	for _, n := range nodes {
		waitResource(t, ca, "node/"+n.name, convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	}
	lab.cut(3)
	began := time.Now()
	waitResource(t, ca, "node/"+c.name, offlineWithin, func(e resource) bool { return e["status"] == "offline" })
	t.Logf("%s cut off, offline on %s after %v", c.name, a.name, time.Since(began))
	lab.heal(3)
	began = time.Now()
	waitResource(t, ca, "node/"+c.name, offlineWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	t.Logf("link back, %s online on %s after %v", c.name, a.name, time.Since(began))
	cc := c.clientOf(t)
	waitResource(t, cc, "node/"+a.name, convergeWithin, func(e resource) bool { return e["status"] == "online" })
}

// TestClusterWrongKey: a node listed in corosync.conf but holding another
// cluster key (its own copy of the config root) cannot join: the members
// never see it online and it sees none of them.
func TestClusterWrongKey(t *testing.T) {
	t.Parallel()
	nodes := newCluster(t, 2, nil)
	a := nodes[0]
	gport := ""
	if b, err := os.ReadFile(filepath.Join(a.prefix, "etc/pve/pvenode/cluster.cfg")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "gossip-port: "); ok {
				gport = strings.TrimSpace(v)
			}
		}
	}
	if gport == "" {
		t.Fatal("no gossip port in cluster.cfg")
	}
	if out, stderr, err := a.run("pvenode-tool", "cluster", "addnode", "node3", "--link0", "127.0.1.3", "--prefix", a.prefix, "--node", a.name); err != nil {
		t.Fatalf("addnode: %v %s%s", err, out, stderr)
	}
	// The outsider: its own config root (the same CA, so its certificate
	// is valid), the cluster's corosync.conf, and another key.
	x := newNode(t, nodeOpts{noStart: true, defaults: "LISTEN_IP=127.0.1.3\n"})
	x.name, x.pport = "node3", a.pport
	if err := x.root.MkdirAll("pvenode", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"corosync.conf", "pvenode/cluster.cfg"} {
		b, err := os.ReadFile(filepath.Join(a.prefix, "etc/pve", f))
		if err != nil {
			t.Fatal(err)
		}
		x.writeCfg(t, f, string(b), 0o640)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	x.writeCfg(t, "priv/pvenode-gossip.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	xc := &clusterNode{node: x, ip: "127.0.1.3"}
	t.Cleanup(x.stopAll)
	if err := x.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	if err := x.startProxy(false); err != nil {
		t.Fatal(err)
	}
	x.startStatd()

	ca, cx := a.clientOf(t), xc.clientOf(t)
	// The outsider runs and reports itself; the members never see it.
	waitResource(t, cx, "node/node3", convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := resources(t, ca)["node/node3"]["status"]; st == "online" {
			t.Fatalf("node with the wrong key shown online on %s", a.name)
		}
		if st := resources(t, cx)["node/"+a.name]["status"]; st == "online" {
			t.Fatalf("node with the wrong key sees %s online", a.name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestClusterGrowsOnReload: a node added to corosync.conf joins; the
// members' pvestatd take it on `reload` (the gossip restarts with the new
// member list) without a restart, and everyone sees it online.
func TestClusterGrowsOnReload(t *testing.T) {
	t.Parallel()
	nodes := newCluster(t, 2, nil)
	a := nodes[0]
	if out, stderr, err := a.run("pvenode-tool", "cluster", "addnode", "node3", "--link0", "127.0.1.3", "--prefix", a.prefix, "--node", a.name); err != nil {
		t.Fatalf("addnode: %v %s%s", err, out, stderr)
	}
	ca := a.clientOf(t)
	// Listed at once (the view follows corosync.conf after the reload),
	// offline until it runs.
	for _, n := range nodes {
		if _, stderr, err := n.run("pvestatd", "reload", "--prefix", n.prefix); err != nil {
			t.Fatalf("reload pvestatd of %s: %v %s", n.name, err, stderr)
		}
	}
	waitResource(t, ca, "node/node3", convergeWithin, func(e resource) bool { return e["status"] == "offline" || e["status"] == "unknown" })

	x := newNode(t, nodeOpts{noStart: true, defaults: "LISTEN_IP=127.0.1.3\n"})
	x.name, x.pport = "node3", a.pport
	shareConfigRoot(t, x, a.node)
	t.Cleanup(x.stopAll)
	if err := x.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	if err := x.startProxy(false); err != nil {
		t.Fatal(err)
	}
	x.startStatd()
	began := time.Now()
	waitResource(t, ca, "node/node3", convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	t.Logf("node3 added and started, online on %s after %v", a.name, time.Since(began))
	var status []map[string]any
	decode(t, ca.get("/api2/json/cluster/status"), &status)
	if len(status) != 4 || status[0]["nodes"] != float64(3) || status[0]["quorate"] != float64(1) {
		t.Errorf("cluster status: %v", status)
	}
}
