package nodes_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// pw is the password of every test user.
const pw = apitest.Password

// storEnv is pvedaemon's API server over a real Authenticator, a config
// root with a storage.cfg whose dir storage lives in a temporary directory,
// real qemu-img and a real task manager. The task tests use it too
// (newNodeEnv).
type storEnv struct {
	*apitest.Client
	t     *testing.T            // Client.TB as a *testing.T
	auth  *access.Authenticator // Client.Auth
	tasks *tasks.Manager
	store string // path of the dir storage "store"
}

// newStorEnv is newNodeEnv for tests that run qemu-img.
func newStorEnv(t *testing.T) *storEnv {
	t.Helper()
	if _, err := os.Stat(storage.DefaultQemuImg); err != nil {
		t.Skip("qemu-img not installed")
	}
	return newNodeEnv(t)
}

func newNodeEnv(t *testing.T) *storEnv {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\tdisable 1\n\n" +
		"dir: store\n\tpath " + store + "\n\tcontent images,iso,backup\n\n" +
		"dir: other\n\tpath " + filepath.Join(dir, "other") + "\n\tcontent iso\n\tnodes n2\n\n" +
		"nfs: nas\n\texport /srv\n\tpath /mnt/pve/nas\n\tserver 192.0.2.1\n\tcontent images\n\n"
	env := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"storage.cfg": cfg,
		"user.cfg": "user:alice@pve:1:0:::::\nuser:bob@pve:1:0:::::\nuser:carol@pve:1:0:::::\n" +
			"acl:1:/storage/store:alice@pve:PVEDatastoreUser:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMAdmin:\n" +
			"acl:1:/storage:carol@pve:PVEDatastoreAdmin:\n" +
			"acl:1:/nodes/n1:carol@pve:PVEAuditor:\n",
	}})
	m, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: apitest.Node, Logger: env.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c := env.Serve(api.NewRegistry(nodes.Methods(nodes.Deps{Privs: env.Auth, Tasks: m,
		Storage: &nodes.StorageDeps{Config: env.Root}})))
	return &storEnv{Client: c, t: t, auth: env.Auth, tasks: m, store: store}
}

type storStatus struct {
	Storage      string   `json:"storage"`
	Type         string   `json:"type"`
	Content      string   `json:"content"`
	Active       *int     `json:"active"`
	Enabled      *int     `json:"enabled"`
	Shared       *int     `json:"shared"`
	Total        *int64   `json:"total"`
	Used         *int64   `json:"used"`
	Avail        *int64   `json:"avail"`
	UsedFraction *float64 `json:"used_fraction"`
	Formats      *struct {
		Default   string   `json:"default"`
		Supported []string `json:"supported"`
	} `json:"formats"`
}

func (e *storEnv) index(user string, q url.Values) (int, map[string]storStatus) {
	e.t.Helper()
	code, data, body := e.Call(user, "GET", "/nodes/n1/storage", q)
	var list []storStatus
	if code == 200 {
		if err := json.Unmarshal(data, &list); err != nil {
			e.t.Fatalf("index: %v: %s", err, body)
		}
	}
	out := map[string]storStatus{}
	for _, s := range list {
		out[s.Storage] = s
	}
	return code, out
}

func TestStorageStatus(t *testing.T) {
	e := newStorEnv(t)

	// carol (Datastore.Allocate on /storage) sees all four.
	code, all := e.index("carol@pve", nil)
	if code != 200 || len(all) != 4 {
		t.Fatalf("carol's index: %d %v", code, all)
	}
	st := all["store"]
	if st.Type != "dir" || st.Active == nil || *st.Active != 1 || *st.Enabled != 1 || *st.Shared != 0 ||
		st.Total == nil || *st.Total <= 0 || *st.Used < 0 || *st.Avail <= 0 || *st.Used > *st.Total || *st.Avail > *st.Total ||
		st.UsedFraction == nil || *st.UsedFraction < 0 || *st.UsedFraction > 1 {
		t.Errorf("store: %+v", st)
	}
	if st.Content != "backup,images,iso" {
		t.Errorf("store content %q", st.Content)
	}
	// The index activated it: the content directories exist.
	for _, sub := range []string{"images", "template/iso", "dump"} {
		if fi, err := os.Stat(filepath.Join(e.store, sub)); err != nil || !fi.IsDir() {
			t.Errorf("activation did not create %s: %v", sub, err)
		}
	}
	// Not implemented type: listed as PVE shows an inactive storage.
	if nas := all["nas"]; nas.Type != "nfs" || *nas.Active != 0 || *nas.Enabled != 1 || *nas.Shared != 1 || *nas.Total != 0 || nas.UsedFraction != nil {
		t.Errorf("nas: %+v", nas)
	}
	// Disabled, and restricted to another node: enabled 0, inactive.
	for _, id := range []string{"local", "other"} {
		if s := all[id]; *s.Enabled != 0 || *s.Active != 0 {
			t.Errorf("%s: %+v", id, s)
		}
	}
	// Filters.
	if _, l := e.index("carol@pve", url.Values{"content": {"images"}}); len(l) != 2 || l["store"].Storage == "" || l["nas"].Storage == "" {
		t.Errorf("content=images: %v", l)
	}
	if _, l := e.index("carol@pve", url.Values{"content": {"iso"}}); len(l) != 1 || l["store"].Storage == "" {
		t.Errorf("content=iso (other is not on n1): %v", l)
	}
	if _, l := e.index("carol@pve", url.Values{"enabled": {"1"}}); len(l) != 3 || l["local"].Storage != "" {
		t.Errorf("enabled=1: %v", l)
	}
	if _, l := e.index("carol@pve", url.Values{"target": {"n2"}}); len(l) != 1 || l["nas"].Storage == "" {
		t.Errorf("target=n2 (shared only): %v", l)
	}
	if _, l := e.index("carol@pve", url.Values{"storage": {"store"}, "format": {"1"}}); len(l) != 1 || l["store"].Formats == nil ||
		l["store"].Formats.Default != "raw" || len(l["store"].Formats.Supported) != 4 {
		t.Errorf("storage=store format=1: %+v", l)
	}
	if code, _, _ := e.Call("carol@pve", "GET", "/nodes/n1/storage", url.Values{"storage": {"nope"}}); code != 400 {
		t.Errorf("storage=nope: %d, want 400", code)
	}
	// alice (Datastore.AllocateSpace on store only) sees store; bob nothing.
	if code, l := e.index("alice@pve", nil); code != 200 || len(l) != 1 || l["store"].Storage == "" {
		t.Errorf("alice's index: %d %v", code, l)
	}
	if code, l := e.index("bob@pve", nil); code != 200 || len(l) != 0 {
		t.Errorf("bob's index: %d %v", code, l)
	}

	// read_status.
	code, data, body := e.Call("alice@pve", "GET", "/nodes/n1/storage/store/status", nil)
	var one map[string]any
	_ = json.Unmarshal(data, &one)
	if code != 200 || one["active"] != float64(1) || one["type"] != "dir" || one["total"].(float64) <= 0 || one["storage"] != nil {
		t.Errorf("read_status: %d %s", code, body)
	}
	if code, _, _ := e.Call("bob@pve", "GET", "/nodes/n1/storage/store/status", nil); code != 403 {
		t.Errorf("bob reads status: %d, want 403", code)
	}
	if code, _, _ := e.Call("carol@pve", "GET", "/nodes/n1/storage/nope/status", nil); code != 400 {
		t.Errorf("status of a missing storage: %d, want 400", code)
	}
	code, data, _ = e.Call("carol@pve", "GET", "/nodes/n1/storage/nas/status", nil)
	_ = json.Unmarshal(data, &one)
	if code != 200 || one["active"] != float64(0) || one["total"] != float64(0) {
		t.Errorf("nas status: %d %v", code, one)
	}
	if code, data, _ := e.Call("alice@pve", "GET", "/nodes/n1/storage/store", nil); code != 200 || !strings.Contains(string(data), `"subdir":"content"`) {
		t.Errorf("diridx: %d %s", code, data)
	}
}

func TestStorageContent(t *testing.T) {
	e := newStorEnv(t)
	ctx := context.Background()
	content := "/nodes/n1/storage/store/content"

	// Allocation: bob may not, alice (AllocateSpace) may.
	if code, _, _ := e.Call("bob@pve", "POST", content, url.Values{"filename": {"vm-100-disk-0.qcow2"}, "size": {"1G"}, "vmid": {"100"}}); code != 403 {
		t.Errorf("bob allocates: %d, want 403", code)
	}
	code, data, body := e.Call("alice@pve", "POST", content, url.Values{"filename": {"vm-100-disk-0.qcow2"}, "size": {"1G"}, "vmid": {"100"}})
	var volid string
	_ = json.Unmarshal(data, &volid)
	if code != 200 || volid != "store:100/vm-100-disk-0.qcow2" {
		t.Fatalf("alloc: %d %s", code, body)
	}
	code, data, body = e.Call("carol@pve", "POST", content, url.Values{"filename": {"vm-101-disk-0.raw"}, "size": {"2048"}, "vmid": {"101"}})
	var volid2 string
	_ = json.Unmarshal(data, &volid2)
	if code != 200 || volid2 != "store:101/vm-101-disk-0.raw" {
		t.Fatalf("alloc raw: %d %s", code, body)
	}
	dir, err := storage.NewDir(&storage.Section{Type: "dir", ID: "store", Options: map[string]string{"path": e.store, "content": "images"}}, storage.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string][2]any{volid: {"qcow2", int64(1 << 30)}, volid2: {"raw", int64(2 << 20)}} {
		p, _, err := dir.VolumePath(v)
		if err != nil {
			t.Fatal(err)
		}
		info, err := storage.QemuImg{}.Info(ctx, p, "")
		if err != nil || info.Format != want[0] || info.VirtualSize != want[1] {
			t.Errorf("%s: %+v %v, want %v", v, info, err, want)
		}
	}
	// Parameter errors.
	for _, q := range []url.Values{
		{"filename": {"vm-100-disk-1.raw"}, "size": {"1T"}, "vmid": {"100"}},
		{"filename": {"vm-100-disk-1.raw"}, "size": {"1G"}, "vmid": {"100"}, "format": {"qcow2"}},
	} {
		if code, _, body := e.Call("carol@pve", "POST", content, q); code != 400 {
			t.Errorf("alloc %v: %d %s, want 400", q, code, body)
		}
	}
	if code, _, body := e.Call("carol@pve", "POST", content, url.Values{"filename": {"vm-100-disk-0.qcow2"}, "size": {"1G"}, "vmid": {"100"}}); code != 500 || !strings.Contains(body, "already exists") {
		t.Errorf("alloc over an existing image: %d %s", code, body)
	}
	if code, _, _ := e.Call("carol@pve", "POST", "/nodes/n1/storage/nas/content", url.Values{"filename": {"vm-100-disk-1.raw"}, "size": {"1G"}, "vmid": {"100"}}); code != 501 {
		t.Errorf("alloc on nfs: %d, want 501", code)
	}

	// Listing: carol sees both, alice only her VM's disk, bob nothing.
	list := func(user string, q url.Values) (int, []storage.VolumeInfo) {
		code, data, _ := e.Call(user, "GET", content, q)
		var l []storage.VolumeInfo
		_ = json.Unmarshal(data, &l)
		return code, l
	}
	if code, l := list("carol@pve", nil); code != 200 || len(l) != 2 || l[0].VolID != volid || l[0].Format != "qcow2" || l[0].Size != 1<<30 || l[0].VMID != 100 || l[1].VolID != volid2 {
		t.Errorf("carol's list: %d %+v", code, l)
	}
	if code, l := list("alice@pve", nil); code != 200 || len(l) != 1 || l[0].VolID != volid {
		t.Errorf("alice's list: %d %+v", code, l)
	}
	if code, l := list("carol@pve", url.Values{"vmid": {"101"}}); code != 200 || len(l) != 1 || l[0].VolID != volid2 {
		t.Errorf("vmid=101: %d %+v", code, l)
	}
	if code, l := list("carol@pve", url.Values{"content": {"iso"}}); code != 200 || len(l) != 0 {
		t.Errorf("content=iso: %d %+v", code, l)
	}
	if code, _ := list("bob@pve", nil); code != 403 {
		t.Errorf("bob lists: %d, want 403", code)
	}

	// Info, by full volume ID and by volume name.
	vpath := content + "/" + url.PathEscape(volid)
	code, data, body = e.Call("alice@pve", "GET", vpath, nil)
	var info map[string]any
	_ = json.Unmarshal(data, &info)
	if code != 200 || info["format"] != "qcow2" || info["size"] != float64(1<<30) || info["used"].(float64) <= 0 ||
		info["path"] != filepath.Join(e.store, "images/100/vm-100-disk-0.qcow2") || info["notes"] != nil || info["protected"] != nil {
		t.Errorf("info: %d %s", code, body)
	}
	if code, _, body := e.Call("carol@pve", "GET", content+"/"+url.PathEscape("101/vm-101-disk-0.raw"), nil); code != 200 || !strings.Contains(body, `"format":"raw"`) {
		t.Errorf("info by name: %d %s", code, body)
	}
	if code, _, _ := e.Call("alice@pve", "GET", content+"/"+url.PathEscape(volid2), nil); code != 403 {
		t.Errorf("alice reads VM 101's disk: %d, want 403", code)
	}
	if code, _, _ := e.Call("carol@pve", "GET", content+"/"+url.PathEscape("other:iso/x.iso"), nil); code != 400 {
		t.Errorf("storage mismatch: %d, want 400", code)
	}

	// Delete: a task; alice lacks Datastore.Allocate.
	if code, _, _ := e.Call("alice@pve", "DELETE", vpath, nil); code != 403 {
		t.Errorf("alice deletes: %d, want 403", code)
	}
	code, data, body = e.Call("carol@pve", "DELETE", vpath, url.Values{"delay": {"5"}})
	if code != 200 || string(data) != "null" {
		t.Errorf("delete with delay: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(e.store, "images/100")); !os.IsNotExist(err) {
		t.Errorf("image dir still there: %v", err)
	}
	code, data, body = e.Call("carol@pve", "DELETE", content+"/"+url.PathEscape(volid2), nil)
	var upid string
	_ = json.Unmarshal(data, &upid)
	if code != 200 || !strings.HasPrefix(upid, "UPID:n1:") || !strings.Contains(upid, ":imgdel:101@store:carol@pve:") {
		t.Fatalf("delete: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, data, _ := e.Call("carol@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(upid)+"/status", nil)
		var st map[string]any
		_ = json.Unmarshal(data, &st)
		if st["status"] == "stopped" {
			if st["exitstatus"] != "OK" {
				t.Errorf("imgdel task: %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imgdel task still running: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, l := list("carol@pve", nil); code != 200 || len(l) != 0 {
		t.Errorf("list after delete: %d %+v", code, l)
	}
}

func TestStorageBackupAttributes(t *testing.T) {
	e := newStorEnv(t)
	// Activate by listing, then place a backup with notes and protection.
	if code, _, body := e.Call("carol@pve", "GET", "/nodes/n1/storage/store/content", nil); code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	name := "vzdump-qemu-100-2025_01_02-03_04_05.vma.zst"
	p := filepath.Join(e.store, "dump", name)
	for f, data := range map[string]string{p: "backup data", p + ".notes": "my notes", p + ".protected": ""} {
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, data, body := e.Call("carol@pve", "GET", "/nodes/n1/storage/store/content/"+url.PathEscape("store:backup/"+name), nil)
	var info map[string]any
	_ = json.Unmarshal(data, &info)
	if code != 200 || info["notes"] != "my notes" || info["protected"] != float64(1) || info["format"] != "raw" || info["size"].(float64) < 11 {
		t.Errorf("backup info: %d %s", code, body)
	}
	// Clients (proxmoxer, pvesh-style scripts) send the volume ID with its
	// '/' unencoded; PVE takes the rest of the path as the volume.
	if code, raw, body := e.Call("carol@pve", "GET", "/nodes/n1/storage/store/content/store:backup/"+name, nil); code != 200 || string(raw) != string(data) {
		t.Errorf("backup info with an unencoded '/': %d %s", code, body)
	}
	// A backup of VM 100: Datastore.Allocate alone (carol) is not enough,
	// PVE wants AllocateSpace plus VM.Backup on the guest (alice).
	if code, _, _ := e.Call("carol@pve", "DELETE", "/nodes/n1/storage/store/content/"+url.PathEscape("store:backup/"+name), nil); code != 403 {
		t.Errorf("carol deletes VM 100's backup: %d, want 403", code)
	}
	// A protected backup is not removed: the task fails and delay reports it.
	code, _, body = e.Call("alice@pve", "DELETE", "/nodes/n1/storage/store/content/"+url.PathEscape("store:backup/"+name), url.Values{"delay": {"5"}})
	if code != 500 || !strings.Contains(body, "protected") {
		t.Errorf("delete protected backup: %d %s", code, body)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("protected backup removed: %v", err)
	}
	// Unprotected, it goes with its log and notes.
	logf := filepath.Join(e.store, "dump", "vzdump-qemu-100-2025_01_02-03_04_05.log")
	if err := os.WriteFile(logf, []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p + ".protected"); err != nil {
		t.Fatal(err)
	}
	code, data, body = e.Call("alice@pve", "DELETE", "/nodes/n1/storage/store/content/"+url.PathEscape("store:backup/"+name), url.Values{"delay": {"5"}})
	if code != 200 || string(data) != "null" {
		t.Errorf("delete backup: %d %s", code, body)
	}
	for _, f := range []string{p, p + ".notes", logf} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", f, err)
		}
	}
}
