package vmlist

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

func TestCacheSeesChanges(t *testing.T) {
	dir := t.TempDir()
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(root)
	list, v1, err := c.Read()
	if err != nil || len(list) != 0 {
		t.Fatalf("empty root: %v %v", list, err)
	}
	qs := filepath.Join(dir, "nodes", "n1", "qemu-server")
	if err := os.MkdirAll(qs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(qs, name), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("100.conf")
	list, v2, _ := c.Read()
	if len(list) != 1 || list[100].Node != "n1" || v2 == v1 {
		t.Fatalf("after create: %v v%d", list, v2)
	}
	// Within a second of the change the cache re-reads (coarse time
	// stamps); after that an unchanged directory is not read again.
	time.Sleep(racyWindow)
	_, v3, _ := c.Read()
	if _, v4, _ := c.Read(); v4 != v3 {
		t.Errorf("unchanged directory read again")
	}
	time.Sleep(10 * time.Millisecond) // a new mtime even on coarse clocks
	write("101.conf")
	if list, _, _ := c.Read(); len(list) != 2 {
		t.Errorf("after a second create: %v", list)
	}
	os.Remove(filepath.Join(qs, "100.conf"))
	if list, _, _ := c.Read(); len(list) != 1 || list[101].Node != "n1" {
		t.Errorf("after remove: %v", list)
	}
}
