package clusterstate

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func sampleState(node string, guests int) *NodeState {
	s := &NodeState{Node: Node{Name: node, Time: 1795340000, Uptime: 3600, CPU: 0.25, MaxCPU: 8, MemTotal: 32 << 30, MemUsed: 8 << 30}}
	for i := range guests {
		s.Guests = append(s.Guests, Guest{VMID: 100 + i, Type: "qemu", Name: fmt.Sprintf("vm%d", i), Status: "running",
			Uptime: 100, CPU: 0.01, MaxCPU: 2, Mem: 1 << 30, MaxMem: 2 << 30, MaxDisk: 32 << 30, NetIn: 12345, DiskRead: 999})
	}
	s.Storages = []Storage{{ID: "local", Type: "dir", Content: "iso,backup", Active: true, Total: 100 << 30, Used: 10 << 30}}
	return s
}

func TestNodeStateRoundTrip(t *testing.T) {
	s := sampleState("pve1", 200)
	data, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip changed the state")
	}
	t.Logf("200 guests: %d bytes encoded", len(data))
	if _, err := DecodeNodeState([]byte("not zstd")); err == nil {
		t.Error("garbage decoded")
	}
}

func TestReaderCachesUntilReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.state")
	r := NewReader(path)
	if _, err := r.View(); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	v := &View{Version: 1, LocalNode: "pve1", Members: []Member{{Name: "pve1", NodeID: 1, Online: true, State: sampleState("pve1", 3)}}}
	if err := WriteFile(path, v, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := r.View()
	if err != nil || got.Version != 1 || got.Member("pve1").State.Guests[2].VMID != 102 {
		t.Fatalf("view: %+v %v", got, err)
	}
	builds := 0
	build := func(v *View) (any, error) { builds++; return v.Version, nil }
	for range 3 {
		if x, _, err := r.Derive("n", build); err != nil || x != uint64(1) {
			t.Fatalf("derive: %v %v", x, err)
		}
	}
	if builds != 1 {
		t.Errorf("%d builds for one view", builds)
	}
	v.Version = 2
	r.recheck = time.Hour // (RecheckInterval, made long enough to see)
	time.Sleep(10 * time.Millisecond)
	if err := WriteFile(path, v, 0o640); err != nil {
		t.Fatal(err)
	}
	// Within the recheck interval of the last look the old view still
	// answers (no stat per call); after it the new one does.
	if x, _, _ := r.Derive("n", build); x != uint64(1) || builds != 1 {
		t.Errorf("right after replace: %v, %d builds; want the cached 1, 1", x, builds)
	}
	r.recheck = 0
	if x, _, _ := r.Derive("n", build); x != uint64(2) || builds != 2 {
		t.Errorf("after replace: %v, %d builds", x, builds)
	}
}
