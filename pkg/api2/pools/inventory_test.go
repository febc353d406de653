package pools

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

func TestConfigVMID(t *testing.T) {
	for name, want := range map[string]int{
		"100.conf": 100, "4294967295.conf": 4294967295, "1.conf": 1,
		"0100.conf": -1, "4294967296.conf": -1, "100.conf.tmp": -1, ".conf": -1, "abc.conf": -1, "100": -1, "+100.conf": -1,
	} {
		got, ok := configVMID(name)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("configVMID(%q) = %d; want %d", name, got, want)
		}
	}
}

func TestReadVMList(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"nodes/n1/qemu-server/100.conf", "nodes/n1/lxc/101.conf", "nodes/n2/openvz/102.conf",
		"nodes/n2/qemu-server/100.conf", // duplicate: the first node wins
		"nodes/-bad/qemu-server/103.conf", "nodes/n1/qemu-server/104.conf.tmp.1", "nodes/n1/priv/105.conf",
	} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "nodes/n1/qemu-server/106.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readVMList(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]guest{100: {"n1", "qemu"}, 101: {"n1", "lxc"}, 102: {"n2", "openvz"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("readVMList = %v; want %v", got, want)
	}
	empty, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readVMList(empty); err != nil || len(got) != 0 {
		t.Errorf("readVMList(no nodes) = %v, %v; want empty", got, err)
	}
}

func TestParseStorageCfg(t *testing.T) {
	cfg := parseStorageCfg([]byte(`# comment
dir: local
	path /srv/elsewhere
	content images

DIR: Data
	path /data
	content images,bogus
	content iso
	shared yes
	nodes n2,bad_node,n1

nfs: nfs1
	content none

pbs: backup1
	content none
	shared off

glusterfs: old
	path /x

dir: 1bad
	path /y

zfspool: tank
	pool tank
	content
lvm: hidden
	vgname vg

cephfs: cfs
	content images,iso
`))
	want := map[string]*storageConf{
		// local on another path is replaced by PVE's own
		"local":   {Type: "dir", Path: "/var/lib/vz", Content: []string{"backup", "images", "iso", "rootdir", "snippets", "vztmpl"}},
		"Data":    {Type: "dir", Path: "/data", Nodes: map[string]bool{"n1": true, "n2": true}, Content: []string{"images"}, Shared: true},
		"nfs1":    {Type: "nfs", Content: []string{"images"}, Shared: true}, // none is invalid for nfs: default
		"backup1": {Type: "pbs", Content: []string{"none"}, Shared: true},
		"tank":    {Type: "zfspool", Content: []string{"images", "rootdir"}}, // empty list without none support: default
		"cfs":     {Type: "cephfs", Content: []string{"iso"}, Shared: true},
	}
	if !reflect.DeepEqual(cfg, want) {
		for id, sc := range cfg {
			t.Logf("%s: %+v", id, *sc)
		}
		t.Errorf("parseStorageCfg mismatch")
	}
}
