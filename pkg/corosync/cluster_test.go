package corosync

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// *pvefs.Root is the Root the commands use.
var _ Root = (*pvefs.Root)(nil)

func openRoot(t *testing.T) *pvefs.Root {
	t.Helper()
	r, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mode(t *testing.T, r *pvefs.Root, name string) fs.FileMode {
	t.Helper()
	fi, err := r.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func createOpts() NewOptions {
	return NewOptions{ClusterName: "testcluster", Node: "pve1", Links: map[int]Link{0: {Addr: "192.0.2.11"}}}
}

func mustCreate(t *testing.T, r *pvefs.Root) {
	t.Helper()
	if _, err := Create(context.Background(), r, createOpts(), 0); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func TestCreate(t *testing.T) {
	r := openRoot(t)
	ctx := context.Background()
	if ok, err := IsMember(r, "pve1"); ok || err != nil {
		t.Errorf("IsMember before Create = %v, %v", ok, err)
	}
	if _, err := Load(r); !errors.Is(err, ErrNoCluster) {
		t.Errorf("Load before Create: %v; want ErrNoCluster", err)
	}
	mustCreate(t, r)

	got, _ := r.ReadFile(ConfFile)
	want, _ := os.ReadFile("testdata/pve/create-single-link.pve")
	if string(got) != string(want) {
		t.Errorf("corosync.conf:\n%s\nPVE writes:\n%s", got, want)
	}
	if m := mode(t, r, ConfFile); m != 0o640 {
		t.Errorf("corosync.conf mode %v; want 0640", m)
	}
	if m := mode(t, r, "priv"); m != fs.ModeDir|0o700 {
		t.Errorf("priv mode %v; want drwx------", m)
	}
	if m := mode(t, r, GossipKeyFile); m != 0o600 {
		t.Errorf("key mode %v; want 0600", m)
	}
	keys, err := ReadGossipKeys(r)
	if err != nil || len(keys) != 1 || len(keys[0]) != GossipKeySize {
		t.Errorf("ReadGossipKeys = %d keys, %v", len(keys), err)
	}
	cfg, _ := r.ReadFile(SettingsFile)
	if !strings.Contains(string(cfg), "\ngossip-port: 5420\n") {
		t.Errorf("cluster.cfg:\n%s", cfg)
	}

	c, err := Load(r)
	if err != nil {
		t.Fatal(err)
	}
	wantC := &Cluster{Name: "testcluster", ConfigVersion: 1, Settings: Settings{GossipPort: 5420},
		Nodes: []Node{{"pve1", 1, 1, map[int]string{0: "192.0.2.11"}}}}
	if !reflect.DeepEqual(c, wantC) {
		t.Errorf("Load = %+v; want %+v", c, wantC)
	}
	if n, ok := c.Node("pve1"); !ok || n.Addr() != "192.0.2.11" {
		t.Errorf("Node(pve1) = %+v, %v", n, ok)
	}
	if ok, err := IsMember(r, "pve1"); !ok || err != nil {
		t.Errorf("IsMember(pve1) = %v, %v", ok, err)
	}
	if ok, _ := IsMember(r, "pve2"); ok {
		t.Errorf("IsMember(pve2) = true")
	}

	// A second create is refused and changes nothing.
	before, _ := r.ReadFile(GossipKeyFile)
	o := createOpts()
	o.ClusterName = "other"
	if _, err := Create(ctx, r, o, 0); !errors.Is(err, ErrClusterExists) {
		t.Errorf("second Create: %v; want ErrClusterExists", err)
	}
	after, _ := r.ReadFile(GossipKeyFile)
	if !bytes.Equal(before, after) {
		t.Errorf("refused Create replaced the gossip key")
	}
	if now, _ := r.ReadFile(ConfFile); string(now) != string(want) {
		t.Errorf("refused Create changed corosync.conf")
	}
}

func TestCreateReplacesOldKeyKeepsSettings(t *testing.T) {
	r := openRoot(t)
	ctx := context.Background()
	if _, err := EnsureGossipKey(ctx, r); err != nil {
		t.Fatal(err)
	}
	old, _ := r.ReadFile(GossipKeyFile)
	if err := r.MkdirAll("pvenode", 0o755); err != nil {
		t.Fatal(err)
	}
	custom := []byte("# mine\ngossip-port: 6000\n")
	if err := r.WriteFile(SettingsFile, custom, 0o640); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, r)
	if now, _ := r.ReadFile(GossipKeyFile); bytes.Equal(now, old) {
		t.Errorf("Create kept the key of an earlier cluster")
	}
	if now, _ := r.ReadFile(SettingsFile); !bytes.Equal(now, custom) {
		t.Errorf("Create without a port rewrote cluster.cfg:\n%s", now)
	}
}

func TestCreateGossipPort(t *testing.T) {
	r := openRoot(t)
	if _, err := Create(context.Background(), r, createOpts(), 7000); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSettings(r)
	if err != nil || s.GossipPort != 7000 {
		t.Errorf("ReadSettings = %+v, %v; want port 7000", s, err)
	}
	if _, err := Create(context.Background(), openRoot(t), createOpts(), 70000); !errors.Is(err, ErrInvalid) {
		t.Errorf("Create with port 70000: %v; want ErrInvalid", err)
	}
}

func TestAddAndDeleteNode(t *testing.T) {
	r := openRoot(t)
	ctx := context.Background()
	if _, err := AddNode(ctx, r, AddNodeOptions{Name: "pve2", Links: map[int]string{0: "192.0.2.12"}}); !errors.Is(err, ErrNoCluster) {
		t.Errorf("AddNode without cluster: %v; want ErrNoCluster", err)
	}
	if _, err := DeleteNode(ctx, r, "pve2", "pve1"); !errors.Is(err, ErrNoCluster) {
		t.Errorf("DeleteNode without cluster: %v; want ErrNoCluster", err)
	}
	mustCreate(t, r)
	n, err := AddNode(ctx, r, AddNodeOptions{Name: "pve2", Links: map[int]string{0: "192.0.2.12"}})
	if err != nil {
		t.Fatal(err)
	}
	if n.NodeID != 2 {
		t.Errorf("pve2 got node id %d; want 2", n.NodeID)
	}
	for _, d := range []string{"nodes/pve2/qemu-server", "nodes/pve2/lxc", "nodes/pve2/priv"} {
		if _, err := r.Stat(d); err != nil {
			t.Errorf("AddNode did not create %s: %v", d, err)
		}
	}
	if m := mode(t, r, "nodes/pve2/priv"); m != fs.ModeDir|0o700 {
		t.Errorf("nodes/pve2/priv mode %v", m)
	}
	if _, err := AddNode(ctx, r, AddNodeOptions{Name: "pve3", Links: map[int]string{0: "192.0.2.12"}}); err == nil ||
		!strings.Contains(err.Error(), "already used") {
		t.Errorf("AddNode with pve2's address: %v", err)
	}
	c, _ := Load(r)
	if c.ConfigVersion != 2 || len(c.Nodes) != 2 {
		t.Errorf("after AddNode: version %d, %d nodes; want 2, 2", c.ConfigVersion, len(c.Nodes))
	}

	if _, err := DeleteNode(ctx, r, "pve1", "pve1"); !errors.Is(err, ErrDeleteSelf) {
		t.Errorf("DeleteNode of self: %v", err)
	}
	if _, err := DeleteNode(ctx, r, "192.0.2.11", "pve1"); !errors.Is(err, ErrDeleteSelf) {
		t.Errorf("DeleteNode of self by address: %v", err)
	}
	if _, err := DeleteNode(ctx, r, "pve9", "pve1"); err == nil || !strings.Contains(err.Error(), "not a known host") {
		t.Errorf("DeleteNode(pve9): %v", err)
	}
	n, err = DeleteNode(ctx, r, "192.0.2.12", "pve1")
	if err != nil || n.Name != "pve2" {
		t.Fatalf("DeleteNode(192.0.2.12) = %+v, %v", n, err)
	}
	c, _ = Load(r)
	if c.ConfigVersion != 3 || len(c.Nodes) != 1 {
		t.Errorf("after DeleteNode: version %d, %d nodes; want 3, 1", c.ConfigVersion, len(c.Nodes))
	}
	if _, err := r.Stat("nodes/pve2"); err != nil {
		t.Errorf("DeleteNode removed nodes/pve2 (PVE keeps it): %v", err)
	}
}

func TestAddNodeConcurrent(t *testing.T) {
	r := openRoot(t)
	mustCreate(t, r)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each call opens its own Root, as separate processes would.
			ri, err := pvefs.Open(r.Dir())
			if err == nil {
				_, err = AddNode(context.Background(), ri, AddNodeOptions{
					Name: fmt.Sprintf("node%d", i), Links: map[int]string{0: fmt.Sprintf("198.51.100.%d", i+1)}})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("AddNode %d: %v", i, err)
		}
	}
	c, err := Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != n+1 || c.ConfigVersion != n+1 {
		t.Errorf("%d nodes, version %d; want %d, %d", len(c.Nodes), c.ConfigVersion, n+1, n+1)
	}
	ids := map[int]bool{}
	for _, node := range c.Nodes {
		if ids[node.NodeID] {
			t.Errorf("node id %d given twice", node.NodeID)
		}
		ids[node.NodeID] = true
	}
}

func TestLoadWithBadSettings(t *testing.T) {
	r := openRoot(t)
	mustCreate(t, r)
	if err := r.WriteFile(SettingsFile, []byte("gossip-port: 6000\ncolor: blue\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := Load(r)
	if c == nil || c.Settings.GossipPort != 6000 || err == nil || err.Error() != "pvenode/cluster.cfg:2: unknown key 'color'" {
		t.Errorf("Load = %+v, %v", c, err)
	}
}

func TestParseSettings(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Settings
		err  string
	}{
		{"", Settings{5420}, ""},
		{"# c\n\ngossip-port: 6000\n", Settings{6000}, ""},
		{"  gossip-port :  6001  \r\n", Settings{6001}, ""},
		{"gossip-port: 0\n", Settings{5420}, `c.cfg:1: gossip-port "0": not a port number (1-65535)`},
		{"gossip-port: 65536\n", Settings{5420}, `c.cfg:1: gossip-port "65536": not a port number (1-65535)`},
		{"gossip-port: 6000\ngossip-port: 6001\n", Settings{6000}, "c.cfg:2: second 'gossip-port' (first on line 1)"},
		{"gossip-port 6000\n", Settings{5420}, `c.cfg:1: expected 'key: value', got "gossip-port 6000"`},
		{"x: 1\ngossip-port: 7\n", Settings{7}, "c.cfg:1: unknown key 'x'"},
	} {
		got, err := ParseSettings("c.cfg", []byte(tt.in))
		errStr := ""
		if err != nil {
			errStr = err.Error()
		}
		if got != tt.want || errStr != tt.err {
			t.Errorf("ParseSettings(%q) = %+v, %q; want %+v, %q", tt.in, got, errStr, tt.want, tt.err)
		}
	}
	s := Settings{GossipPort: 6123}
	back, err := ParseSettings("c.cfg", s.Marshal())
	if err != nil || back != s {
		t.Errorf("ParseSettings(Marshal) = %+v, %v", back, err)
	}
}

func TestGossipKey(t *testing.T) {
	r := openRoot(t)
	ctx := context.Background()
	if _, err := ReadGossipKeys(r); !errors.Is(err, ErrNoGossipKey) {
		t.Errorf("ReadGossipKeys without file: %v", err)
	}
	k1, err := EnsureGossipKey(ctx, r)
	if err != nil || len(k1) != GossipKeySize {
		t.Fatalf("EnsureGossipKey = %x, %v", k1, err)
	}
	k2, err := EnsureGossipKey(ctx, r)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second EnsureGossipKey returned another key")
	}
	data, _ := r.ReadFile(GossipKeyFile)
	if want := base64.StdEncoding.EncodeToString(k1) + "\n"; string(data) != want {
		t.Errorf("key file %q", data)
	}
	k3, err := NewGossipKey(ctx, r)
	if err != nil || bytes.Equal(k3, k1) {
		t.Errorf("NewGossipKey = %x, %v", k3, err)
	}
	// A broken file is reported, never replaced.
	if err := r.WriteFile(GossipKeyFile, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureGossipKey(ctx, r); err == nil || err.Error() != "priv/pvenode-gossip.key:1: not the base64 of a 32-byte key" {
		t.Errorf("EnsureGossipKey on a broken file: %v", err)
	}
	if now, _ := r.ReadFile(GossipKeyFile); string(now) != "c2hvcnQ=\n" {
		t.Errorf("broken key file replaced")
	}
}

func TestParseGossipKeys(t *testing.T) {
	a := bytes.Repeat([]byte{1}, 32)
	b := bytes.Repeat([]byte{2}, 32)
	enc := base64.StdEncoding.EncodeToString
	keys, err := ParseGossipKeys("k", []byte("# rotation\n"+enc(a)+"\n\n  "+enc(b)+"\r\n"))
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], a) || !bytes.Equal(keys[1], b) {
		t.Errorf("ParseGossipKeys = %x, %v", keys, err)
	}
	for _, in := range []string{"", "# only\n", enc(a[:16]) + "\n", "!!!\n", enc(a) + "x\n"} {
		if _, err := ParseGossipKeys("k", []byte(in)); err == nil {
			t.Errorf("ParseGossipKeys(%q) succeeded", in)
		} else if strings.Contains(err.Error(), enc(a)) {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}
