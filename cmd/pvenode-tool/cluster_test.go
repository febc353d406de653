package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/clusterstate"

	"github.com/pvenode/pvenode/pkg/corosync"
	"github.com/pvenode/pvenode/pkg/pvefs"
)

// runCluster runs `pvenode-tool cluster <args>` on the installation under
// prefix and returns its output and error.
func runCluster(t *testing.T, prefix string, args ...string) (string, error) {
	t.Helper()
	cmd := clusterCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append(args, "--prefix", prefix))
	err := cmd.Execute()
	return out.String(), err
}

func mustRunCluster(t *testing.T, prefix string, args ...string) string {
	t.Helper()
	out, err := runCluster(t, prefix, args...)
	if err != nil {
		t.Fatalf("cluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func configRoot(prefix string) string { return filepath.Join(prefix, "etc", "pve") }

func TestClusterCommands(t *testing.T) {
	prefix := t.TempDir()
	root := configRoot(prefix)

	out := mustRunCluster(t, prefix, "create", "testcluster", "--node", "pve1", "--link0", "192.0.2.11")
	for _, want := range []string{
		"Writing corosync config to " + filepath.Join(root, "corosync.conf") + "\n",
		"Created cluster 'testcluster': node pve1, node id 1, link0 192.0.2.11\n",
		"Gossip key: " + filepath.Join(root, "priv/pvenode-gossip.key") + "\n",
		"Gossip port: 5420 (TCP and UDP)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	got, _ := os.ReadFile(filepath.Join(root, "corosync.conf"))
	want, _ := os.ReadFile("../../pkg/corosync/testdata/pve/create-single-link.pve")
	if string(got) != string(want) {
		t.Errorf("corosync.conf after create:\n%s\nwant PVE's:\n%s", got, want)
	}
	if _, err := runCluster(t, prefix, "create", "other", "--node", "pve1", "--link0", "192.0.2.11"); err == nil ||
		err.Error() != "cluster config '"+filepath.Join(root, "corosync.conf")+"' already exists" {
		t.Errorf("second create: %v", err)
	}

	out = mustRunCluster(t, prefix, "addnode", "pve2", "--node", "pve1", "--ring0_addr", "192.0.2.12")
	if want := "Added node pve2 to cluster 'testcluster': node id 2, votes 1, link0 192.0.2.12 (config_version 2)\n"; out != want {
		t.Errorf("addnode output %q; want %q", out, want)
	}
	mustRunCluster(t, prefix, "addnode", "pve3", "--node", "pve1", "--link0", "address=192.0.2.13", "--nodeid", "5", "--votes", "2")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"addnode", "pve2", "--node", "pve1", "--link0", "192.0.2.99"}, "can't add existing node 'pve2'"},
		{[]string{"addnode", "pve4", "--node", "pve1", "--link0", "192.0.2.12"}, "address '192.0.2.12' already used on link ring0_addr by node 'pve2'"},
		{[]string{"addnode", "pve4", "--node", "pve1", "--link0", "192.0.2.14", "--nodeid", "5"}, "node id 5 is already used by node 'pve3'"},
		{[]string{"addnode", "pve4", "--node", "pve1", "--link0", "192.0.2.14", "--ring0_addr", "192.0.2.14"}, "give --link0 or --ring0_addr, not both"},
		{[]string{"addnode", "pve4", "--node", "pve1", "--link0", "192.0.2.14", "--link1", "198.51.100.4"}, "link 1 specified for new node doesn't exist"},
		{[]string{"addnode", "pve4", "--node", "pve1"}, "no link address given"},
		{[]string{"addnode", "pve4", "--node", "pve9", "--link0", "192.0.2.14"}, "this node (pve9) is not a member of the cluster"},
		{[]string{"delnode", "pve1", "--node", "pve1"}, "Cannot delete myself from cluster!"},
		{[]string{"delnode", "pve7", "--node", "pve1"}, "Node/IP: pve7 is not a known host of the cluster"},
	} {
		if _, err := runCluster(t, prefix, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("cluster %s: %v; want %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}

	out = mustRunCluster(t, prefix, "nodes", "--node", "pve1")
	wantNodes := `
Membership information
----------------------
    Nodeid      Votes Name                     Link0            State
         1          1 pve1 (local)             192.0.2.11       unknown
         2          1 pve2                     192.0.2.12       unknown
         5          2 pve3                     192.0.2.13       unknown

Online state: ` + noViewNote + "\n"
	if out != wantNodes {
		t.Errorf("nodes:\n%s\nwant:\n%s", out, wantNodes)
	}

	out = mustRunCluster(t, prefix, "status", "--node", "pve2")
	wantStatus := `Cluster information
-------------------
Name:             testcluster
Config Version:   3
Transport:        knet
Secure auth:      on

Quorum information
------------------
Quorum provider:  corosync_votequorum
Nodes:            3
Node name:        pve2
Node ID:          0x00000002
Quorate:          ` + noViewNote + `

Votequorum information
----------------------
Expected votes:   4
Quorum:           3
Total votes:      ` + noViewNote + `
` + strings.Replace(strings.Replace(wantNodes, "pve1 (local)", "pve1        ", 1), "pve2        ", "pve2 (local)", 1) + `
Gossip (pvenode)
----------------
Port:             5420 (TCP and UDP, at each node's link 0 address)
Key:              ` + filepath.Join(root, "priv/pvenode-gossip.key") + "\n"
	if out != wantStatus {
		t.Errorf("status:\n%s\nwant:\n%s", out, wantStatus)
	}

	out = mustRunCluster(t, prefix, "delnode", "192.0.2.12", "--node", "pve1")
	if want := "Removed node pve2 (node id 2) from the cluster\n"; out != want {
		t.Errorf("delnode output %q; want %q", out, want)
	}
	r, err := pvefs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := corosync.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConfigVersion != 4 || len(c.Nodes) != 2 {
		t.Errorf("after delnode: config_version %d, %d nodes; want 4, 2", c.ConfigVersion, len(c.Nodes))
	}
	if ok, _ := corosync.IsMember(r, "pve2"); ok {
		t.Errorf("pve2 still a member")
	}
}

func TestClusterCreateOptions(t *testing.T) {
	prefix := t.TempDir()
	mustRunCluster(t, prefix, "create", "cloud", "--node", "pve1", "--nodeid", "3", "--votes", "2",
		"--link0", "10.10.10.1", "--link1", "10.20.20.1,priority=20", "--gossip-port", "6000")
	got, _ := os.ReadFile(filepath.Join(configRoot(prefix), "corosync.conf"))
	want, _ := os.ReadFile("../../pkg/corosync/testdata/pve/create-two-links.pve")
	if string(got) != string(want) {
		t.Errorf("corosync.conf:\n%s\nwant PVE's:\n%s", got, want)
	}
	cfg, _ := os.ReadFile(filepath.Join(configRoot(prefix), "pvenode/cluster.cfg"))
	if !strings.Contains(string(cfg), "\ngossip-port: 6000\n") {
		t.Errorf("cluster.cfg:\n%s", cfg)
	}
	// Both links are needed to join this cluster.
	if _, err := runCluster(t, prefix, "addnode", "pve2", "--node", "pve1", "--link0", "10.10.10.2"); err == nil ||
		!strings.Contains(err.Error(), "link 1 exists in cluster config but wasn't specified for new node") {
		t.Errorf("addnode with one link: %v", err)
	}
	mustRunCluster(t, prefix, "addnode", "pve2", "--node", "pve1", "--link0", "10.10.10.2", "--link1", "10.20.20.2")

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "a.b", "--node", "pve1", "--link0", "192.0.2.1"}, "cluster name"},
		{[]string{"create", "c", "--node", "pve1", "--link0", "192.0.2.1,prio=1"}, "--link0"},
		{[]string{"create", "c", "--node", "pve1", "--link0", "192.0.2.1", "--gossip-port", "70000"}, "gossip port 70000"},
	} {
		if _, err := runCluster(t, t.TempDir(), tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("cluster %s: %v; want %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

func TestClusterNotInCluster(t *testing.T) {
	prefix := t.TempDir()
	want := "Corosync config '" + filepath.Join(configRoot(prefix), "corosync.conf") +
		"' does not exist - is this node part of a cluster?"
	for _, args := range [][]string{
		{"nodes", "--node", "pve1"},
		{"status", "--node", "pve1"},
		{"addnode", "pve2", "--node", "pve1", "--link0", "192.0.2.12"},
		{"delnode", "pve2", "--node", "pve1"},
	} {
		if _, err := runCluster(t, prefix, args...); err == nil || err.Error() != want {
			t.Errorf("cluster %s: %v; want %q", strings.Join(args, " "), err, want)
		}
	}
	if _, err := os.Stat(configRoot(prefix)); err == nil {
		t.Errorf("a command other than create made the config root")
	}
}

// TestClusterOnlineState: with pvestatd's view the members show their
// online state and the quorum is computed from it.
func TestClusterOnlineState(t *testing.T) {
	prefix := t.TempDir()
	mustRunCluster(t, prefix, "create", "lab", "--node", "pve1", "--link0", "192.0.2.11")
	mustRunCluster(t, prefix, "addnode", "pve2", "--node", "pve1", "--link0", "192.0.2.12")
	mustRunCluster(t, prefix, "addnode", "pve3", "--node", "pve1", "--link0", "192.0.2.13")
	state := buildinfo.PathsFor(prefix).ClusterStateFile()
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	v := &clusterstate.View{Cluster: "lab", Members: []clusterstate.Member{
		{Name: "pve1", Online: true}, {Name: "pve2", Online: true}, {Name: "pve3"},
	}}
	if err := clusterstate.WriteFile(state, v, 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRunCluster(t, prefix, "status", "--node", "pve1")
	for _, want := range []string{
		"Quorate:          Yes\n",
		"Total votes:      2\n",
		"pve2                     192.0.2.12       online\n",
		"pve3                     192.0.2.13       offline\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	v.Members[1].Online = false
	if err := clusterstate.WriteFile(state, v, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRunCluster(t, prefix, "status", "--node", "pve1"); !strings.Contains(out, "Quorate:          No\n") {
		t.Errorf("one of three online, still quorate:\n%s", out)
	}
}
