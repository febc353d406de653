package pools

import (
	"reflect"
	"testing"
)

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
