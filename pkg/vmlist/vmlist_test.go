package vmlist

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
		got, ok := ConfigVMID(name)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("ConfigVMID(%q) = %d; want %d", name, got, want)
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
	got, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]Guest{100: {"n1", "qemu"}, 101: {"n1", "lxc"}, 102: {"n2", "openvz"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %v; want %v", got, want)
	}
	empty, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Read(empty); err != nil || len(got) != 0 {
		t.Errorf("Read(no nodes) = %v, %v; want empty", got, err)
	}
}
