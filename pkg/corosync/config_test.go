package corosync

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func mustParseFile(t *testing.T, path string) *Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(ConfFile, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := Parse(ConfFile, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func marshal(t *testing.T, c *Config) string {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNodesAndTotem(t *testing.T) {
	c := mustParseFile(t, "testdata/pve/pve-docs-two-links.in")
	if got := c.ClusterName(); got != "testcluster" {
		t.Errorf("ClusterName = %q", got)
	}
	if v, err := c.ConfigVersion(); v != 4 || err != nil {
		t.Errorf("ConfigVersion = %d, %v; want 4", v, err)
	}
	nodes, err := c.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{"due", 2, 1, map[int]string{0: "10.10.10.2", 1: "10.20.20.2"}},
		{"tre", 3, 1, map[int]string{0: "10.10.10.3", 1: "10.20.20.3"}},
		{"uno", 1, 1, map[int]string{0: "10.10.10.1", 1: "10.20.20.1"}},
	}
	if !reflect.DeepEqual(nodes, want) {
		t.Errorf("Nodes = %+v\nwant %+v", nodes, want)
	}
	if n, ok, _ := c.Node("uno"); !ok || n.Addr() != "10.10.10.1" {
		t.Errorf("Node(uno) = %+v, %v", n, ok)
	}
	if _, ok, _ := c.Node("quattro"); ok {
		t.Errorf("Node(quattro) found")
	}
	if got := len(c.Interfaces()); got != 2 {
		t.Errorf("%d interfaces; want 2", got)
	}
	// A node without name and votes: keyed by ring0_addr, one vote.
	old := mustParseFile(t, "testdata/pve/pve-cluster-old.in")
	nodes, _ = old.Nodes()
	if len(nodes) != 1 || nodes[0].Name != "" || nodes[0].Addr() != "prox1" || nodes[0].Votes != 1 {
		t.Errorf("old.conf nodes = %+v", nodes)
	}
	// linkN_addr counts as a link too.
	u := mustParseFile(t, "testdata/pve/unknown-keys-qdevice.in")
	nodes, _ = u.Nodes()
	if len(nodes) != 1 || nodes[0].Links[1] != "n1-link1.example.com" || nodes[0].Addr() != "fd00::1" {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestTypedErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nodelist {\n  node {\n    name: a\n    nodeid: x\n  }\n}\n", `corosync.conf:4: node 'a': nodeid "x" is not a number`},
		{"nodelist {\n  node {\n    ring0_addr: h\n    quorum_votes: -1\n  }\n}\n", `corosync.conf:4: node 'h': quorum_votes "-1" is not a number`},
	} {
		if _, err := mustParse(t, tt.in).Nodes(); err == nil || err.Error() != tt.want {
			t.Errorf("Nodes() error = %v; want %s", err, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"totem {\n  config_version: x1\n}\n", `corosync.conf:2: config_version "x1" is not a number`},
		{"totem {\n}\n", `corosync.conf: totem has no config_version`},
		{"quorum {\n}\n", `corosync.conf: no totem section`},
	} {
		c := mustParse(t, tt.in)
		if _, err := c.ConfigVersion(); err == nil || err.Error() != tt.want {
			t.Errorf("ConfigVersion() error = %v; want %s", err, tt.want)
		}
		if err := c.BumpVersion(); err == nil || !strings.Contains(err.Error(), "unable to read config version") {
			t.Errorf("BumpVersion() error = %v", err)
		}
	}
}

func TestBumpVersion(t *testing.T) {
	c := mustParseFile(t, "testdata/pve/pve-docs-three-nodes.in")
	if err := c.BumpVersion(); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/pve/pve-docs-three-nodes.pve")
	if got := marshal(t, c); got != strings.Replace(string(want), "config_version: 3", "config_version: 4", 1) {
		t.Errorf("after BumpVersion:\n%s", got)
	}
}

// TestNew compares New (and the first write's bump) with what PVE's
// create_conf writes for the same parameters.
func TestNew(t *testing.T) {
	for _, tt := range []struct {
		golden string
		o      NewOptions
	}{
		{"create-single-link", NewOptions{ClusterName: "testcluster", Node: "pve1",
			Links: map[int]Link{0: {Addr: "192.0.2.11"}}}},
		{"create-two-links", NewOptions{ClusterName: "cloud", Node: "pve1", NodeID: 3, Votes: 2,
			Links: map[int]Link{0: {Addr: "10.10.10.1"}, 1: {Addr: "10.20.20.1", Priority: 20}}}},
	} {
		c, err := New(tt.o)
		if err != nil {
			t.Fatalf("%s: %v", tt.golden, err)
		}
		if v, _ := c.ConfigVersion(); v != 0 {
			t.Errorf("%s: config_version %d; want 0 before the first write", tt.golden, v)
		}
		if err := c.BumpVersion(); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile("testdata/pve/" + tt.golden + ".pve")
		if got := marshal(t, c); got != string(want) {
			t.Errorf("%s:\n%s\nPVE writes:\n%s", tt.golden, got, want)
		}
	}
	coeff := 0
	c, err := New(NewOptions{ClusterName: "c", Node: "n", Links: map[int]Link{0: {Addr: "h"}}, TokenCoefficient: &coeff})
	if err != nil || !strings.Contains(marshal(t, c), "token_coefficient: 0\n") {
		t.Errorf("TokenCoefficient 0: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	ok := NewOptions{ClusterName: "c", Node: "n", Links: map[int]Link{0: {Addr: "192.0.2.1"}}}
	for _, tt := range []struct {
		name string
		mod  func(*NewOptions)
	}{
		{"long cluster name", func(o *NewOptions) { o.ClusterName = "a23456789012345x" }},
		{"cluster name with dot", func(o *NewOptions) { o.ClusterName = "a.b" }},
		{"bad node name", func(o *NewOptions) { o.Node = "-n" }},
		{"no links", func(o *NewOptions) { o.Links = nil }},
		{"link 8", func(o *NewOptions) { o.Links = map[int]Link{8: {Addr: "h"}} }},
		{"bad address", func(o *NewOptions) { o.Links = map[int]Link{0: {Addr: "a b"}} }},
		{"address with zone", func(o *NewOptions) { o.Links = map[int]Link{0: {Addr: "fe80::1%eth0"}} }},
		{"priority", func(o *NewOptions) { o.Links = map[int]Link{0: {Addr: "h", Priority: 256}} }},
		{"negative node id", func(o *NewOptions) { o.NodeID = -1 }},
	} {
		o := ok
		tt.mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestParseLink(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Link
		err  bool
	}{
		{"192.0.2.1", Link{Addr: "192.0.2.1"}, false},
		{"address=10.0.0.1,priority=20", Link{Addr: "10.0.0.1", Priority: 20}, false},
		{"fd00::1,priority=0", Link{Addr: "fd00::1"}, false},
		{"node1.example.com", Link{Addr: "node1.example.com"}, false},
		{"priority=3", Link{}, true},
		{"10.0.0.1,priority=256", Link{}, true},
		{"10.0.0.1,address=10.0.0.2", Link{}, true},
		{"10.0.0.1,color=red", Link{}, true},
		{"not an address", Link{}, true},
		{"", Link{}, true},
	} {
		got, err := ParseLink(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLink(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// threeNodes is a cluster as PVE writes it after two addnode calls.
const threeNodes = `logging {
  debug: off
  to_syslog: yes
}

nodelist {
  node {
    name: pve1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 192.0.2.11
  }
  node {
    name: pve2
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 192.0.2.12
  }
  node {
    name: pve4
    nodeid: 4
    quorum_votes: 1
    ring0_addr: 192.0.2.14
  }
}

quorum {
  provider: corosync_votequorum
}

totem {
  cluster_name: testcluster
  config_version: 3
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  link_mode: passive
  secauth: on
  token_coefficient: 125
  version: 2
}

`

func intp(i int) *int { return &i }

func TestAddNode(t *testing.T) {
	for _, tt := range []struct {
		name    string
		o       AddNodeOptions
		want    Node   // on success
		wantErr string // substring
	}{
		{"lowest free id", AddNodeOptions{Name: "pve3", Links: map[int]string{0: "192.0.2.13"}},
			Node{"pve3", 3, 1, map[int]string{0: "192.0.2.13"}}, ""},
		{"explicit id and votes", AddNodeOptions{Name: "pve0", NodeID: 10, Votes: intp(2), Links: map[int]string{0: "pve0.example.com"}},
			Node{"pve0", 10, 2, map[int]string{0: "pve0.example.com"}}, ""},
		{"zero votes", AddNodeOptions{Name: "q", Votes: intp(0), Links: map[int]string{0: "192.0.2.20"}},
			Node{"q", 3, 0, map[int]string{0: "192.0.2.20"}}, ""},
		{"duplicate name", AddNodeOptions{Name: "pve2", Links: map[int]string{0: "192.0.2.99"}},
			Node{}, "can't add existing node 'pve2'"},
		{"force with same id", AddNodeOptions{Name: "pve2", Force: true, Links: map[int]string{0: "192.0.2.99"}},
			Node{"pve2", 2, 1, map[int]string{0: "192.0.2.99"}}, ""},
		{"force with other id", AddNodeOptions{Name: "pve2", NodeID: 7, Force: true, Links: map[int]string{0: "192.0.2.99"}},
			Node{}, "can't add existing node 'pve2'"},
		{"duplicate id", AddNodeOptions{Name: "pve5", NodeID: 4, Links: map[int]string{0: "192.0.2.15"}},
			Node{}, "node id 4 is already used by node 'pve4'"},
		{"duplicate address", AddNodeOptions{Name: "pve5", Links: map[int]string{0: "192.0.2.14"}},
			Node{}, "corosync: address '192.0.2.14' already used on link ring0_addr by node 'pve4'"},
		{"missing link 0", AddNodeOptions{Name: "pve5", Links: map[int]string{1: "192.0.2.15"}},
			Node{}, "link 0 exists in cluster config but wasn't specified for new node"},
		{"extra link", AddNodeOptions{Name: "pve5", Links: map[int]string{0: "192.0.2.15", 1: "198.51.100.15"}},
			Node{}, "link 1 specified for new node doesn't exist in cluster config"},
		{"no link", AddNodeOptions{Name: "pve5"}, Node{}, "no link address given"},
		{"bad name", AddNodeOptions{Name: "pve_5", Links: map[int]string{0: "192.0.2.15"}}, Node{}, "not look like a valid node name"},
		{"bad address", AddNodeOptions{Name: "pve5", Links: map[int]string{0: "192.0.2.15/24"}}, Node{}, "valid address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, threeNodes)
			got, err := c.AddNode(tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddNode error = %v; want %q", err, tt.wantErr)
				}
				if marshal(t, c) != threeNodes {
					t.Errorf("a refused AddNode changed the config:\n%s", marshal(t, c))
				}
				return
			}
			if err != nil {
				t.Fatalf("AddNode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AddNode = %+v; want %+v", got, tt.want)
			}
			n, ok, _ := c.Node(tt.o.Name)
			if !ok || !reflect.DeepEqual(n, tt.want) {
				t.Errorf("Node(%s) after AddNode = %+v, %v", tt.o.Name, n, ok)
			}
			nodes, _ := c.Nodes()
			for i := 1; i < len(nodes); i++ {
				if nodes[i-1].Name >= nodes[i].Name {
					t.Errorf("nodes not sorted by name: %+v", nodes)
				}
			}
			// Parse reads back what Marshal writes.
			again := mustParse(t, marshal(t, c))
			if !again.Main.Equal(c.Main) {
				t.Errorf("written config reads back differently")
			}
		})
	}
}

func TestAddNodeGolden(t *testing.T) {
	// Adding pve3 to threeNodes: the node lands in name order and
	// config_version goes up once.
	c := mustParse(t, threeNodes)
	if _, err := c.AddNode(AddNodeOptions{Name: "pve3", Links: map[int]string{0: "192.0.2.13"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.BumpVersion(); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(threeNodes, "config_version: 3", "config_version: 4", 1)
	want = strings.Replace(want, "  node {\n    name: pve4", "  node {\n    name: pve3\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 192.0.2.13\n  }\n  node {\n    name: pve4", 1)
	if got := marshal(t, c); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestAddNodeRefusesInvalidConfig(t *testing.T) {
	// pve2 lacks link 1 that pve1 has: PVE's verify_conf error.
	c := mustParse(t, "nodelist {\n node {\n name: pve1\n nodeid: 1\n ring0_addr: a\n ring1_addr: b\n }\n node {\n name: pve2\n nodeid: 2\n ring0_addr: c\n }\n}\ntotem {\n config_version: 1\n}\n")
	_, err := c.AddNode(AddNodeOptions{Name: "pve3", Links: map[int]string{0: "d", 1: "e"}})
	if err == nil || !strings.Contains(err.Error(), "node 'pve2' is missing link 1, which is configured on other nodes") {
		t.Errorf("AddNode error = %v", err)
	}
}

func TestVerify(t *testing.T) {
	for _, tt := range []struct {
		in          string
		errs, warns []string
	}{
		{threeNodes, nil, nil},
		{"totem {\n}\n", []string{"no nodes found"}, nil},
		{"nodelist {\n}\n", []string{"no totem found"}, nil},
		{"nodelist {\n node {\n name: a\n ring0_addr: x\n }\n}\ntotem {\n}\n", nil,
			[]string{"warning: authentication/encryption is not explicitly enabled (secauth / crypto_cipher / crypto_hash)"}},
		{"nodelist {\n node {\n name: a\n ring0_addr: x\n ring1_addr: y\n }\n node {\n name: b\n ring1_addr: z\n }\n}\ntotem {\n secauth: on\n interface {\n linknumber: 0\n }\n}\n",
			[]string{"node 'b' is missing address for interface number 0",
				"node 'a' has 'ring1_addr', but there is no interface number 1",
				"node 'b' has 'ring1_addr', but there is no interface number 1"}, nil},
		{"nodelist {\n node {\n name: a\n ring0_addr: x\n }\n}\ntotem {\n crypto_cipher: aes256\n}\n", nil, nil},
	} {
		errs, warns := mustParse(t, tt.in).Verify()
		if !reflect.DeepEqual(errs, tt.errs) || !reflect.DeepEqual(warns, tt.warns) {
			t.Errorf("Verify(%q) = %q, %q; want %q, %q", tt.in, errs, warns, tt.errs, tt.warns)
		}
	}
}

func TestRemoveNode(t *testing.T) {
	for _, tt := range []struct {
		arg, want, wantErr string
	}{
		{"pve2", "pve2", ""},
		{"192.0.2.14", "pve4", ""},
		{"pve9", "", "Node/IP: pve9 is not a known host of the cluster"},
	} {
		c := mustParse(t, threeNodes)
		n, err := c.RemoveNode(tt.arg)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("RemoveNode(%s) error = %v; want %s", tt.arg, err, tt.wantErr)
			}
			continue
		}
		if err != nil || n.Name != tt.want {
			t.Errorf("RemoveNode(%s) = %+v, %v; want %s", tt.arg, n, err, tt.want)
			continue
		}
		if _, ok, _ := c.Node(tt.want); ok {
			t.Errorf("RemoveNode(%s): node still there", tt.arg)
		}
		if nodes, _ := c.Nodes(); len(nodes) != 2 {
			t.Errorf("RemoveNode(%s): %d nodes left; want 2", tt.arg, len(nodes))
		}
	}
}

func TestSectionSetters(t *testing.T) {
	s := NewSection()
	for _, bad := range [][2]string{{"", "v"}, {"a b", "v"}, {"a:", "v"}, {"a", ""}, {"a", "x y"}, {"a", "{"}, {"a", "b#c"}, {"#a", "v"}} {
		if err := s.Set(bad[0], bad[1]); err == nil {
			t.Errorf("Set(%q, %q) succeeded", bad[0], bad[1])
		}
	}
	if err := s.Set("ring0_addr", "fe80::1"); err != nil {
		t.Errorf("Set IPv6: %v", err)
	}
	if _, err := s.EnsureSection("node"); err == nil {
		t.Errorf("EnsureSection(node) succeeded; node sections form a list")
	}
	if err := s.SetList("totem", []*Section{NewSection()}); err == nil {
		t.Errorf("SetList(totem) succeeded")
	}
	if _, err := s.EnsureSection("ring0_addr"); err == nil {
		t.Errorf("EnsureSection over a key succeeded")
	}
	sub, err := s.EnsureSection("totem")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("totem", "x"); err == nil {
		t.Errorf("Set over a section succeeded")
	}
	_ = sub.Set("k", "v")
	c := s.Clone()
	_ = sub.Set("k", "w")
	if v, _ := c.Section("totem").Get("k"); v != "v" {
		t.Errorf("Clone shares subsections")
	}
	s.Delete("totem")
	if s.Section("totem") != nil {
		t.Errorf("Delete left the section")
	}
}
