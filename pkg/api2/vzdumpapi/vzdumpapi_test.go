package vzdumpapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/vzdumpapi"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmm"
	"github.com/pvenode/pvenode/pkg/vzdump"
)

const node = apitest.Node

type env struct {
	*apitest.Client
	tasks *tasks.Manager
	store string
}

// newEnv serves the vzdump methods over a config root with stopped VMs
// 100 and 101 (small raw disks), a container 200, and a dir storage
// "store" for images and backups.
func newEnv(t *testing.T, vzdumpConf string) *env {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	files := map[string]string{
		"storage.cfg": "dir: store\n\tpath " + store + "\n\tcontent images,backup\n\tprune-backups keep-last=3,keep-daily=1\n\n",
		"user.cfg": "user:admin@pve:1:0:::::\nuser:alice@pve:1:0:::::\n" +
			"acl:1:/:admin@pve:Administrator:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMAdmin:\n",
		"nodes/" + node + "/lxc/200.conf": "hostname: ct\n",
	}
	for _, vmid := range []string{"100", "101"} {
		files["nodes/"+node+"/qemu-server/"+vmid+".conf"] = "name: vm" + vmid + "\nmemory: 128\nscsi0: store:" + vmid + "/vm-" + vmid + "-disk-0.raw,size=1M\n"
	}
	ae := apitest.New(t, apitest.Setup{Dir: dir, Files: files})
	for _, vmid := range []string{"100", "101"} {
		img := filepath.Join(store, "images", vmid)
		if err := os.MkdirAll(img, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(img, "vm-"+vmid+"-disk-0.raw"), []byte(strings.Repeat("data"+vmid, 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defaults := filepath.Join(dir, "vzdump.conf")
	if err := os.WriteFile(defaults, []byte(vzdumpConf), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: node, Logger: ae.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close(context.Background()) })
	host := &storage.Host{Root: ae.Root, Node: node}
	vms := vmm.New(vmm.Config{RunDir: t.TempDir(), ResolveVolume: host.Resolve})
	deps := &vzdumpapi.Deps{Config: ae.Root, Privs: ae.Auth, Storage: host, Tasks: tm, DefaultsFile: defaults,
		Engine: &vzdump.Engine{Config: ae.Root, VMs: vms, Storage: host, Node: node, Now: clock()}}
	return &env{Client: ae.Serve(api.NewRegistry(vzdumpapi.Methods(deps))), tasks: tm, store: store}
}

// run starts a backup as user and waits for its task.
func (e *env) run(t *testing.T, user string, q url.Values) (upid, status, log string) {
	t.Helper()
	if err := json.Unmarshal(e.Must(user, "POST", "/nodes/"+node+"/vzdump", q), &upid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.tasks.Wait(ctx, upid); err != nil {
		t.Fatal(err)
	}
	status, _ = e.tasks.ExitStatus(upid)
	lines, _, _ := e.tasks.ReadLog(upid, 0, 1000)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.T + "\n")
	}
	return upid, status, b.String()
}

func TestBackupJobs(t *testing.T) {
	e := newEnv(t, "# defaults\ncompress: zstd\nmode: stop\n")
	upid, st, log := e.run(t, "admin", url.Values{"vmid": {"100"}, "storage": {"store"}})
	if st != "OK" || !strings.Contains(upid, ":vzdump:100:admin@pve:") {
		t.Fatalf("%s %s\n%s", upid, st, log)
	}
	for _, line := range []string{
		"INFO: starting new backup job: vzdump 100 --node n1 --storage store\n",
		"INFO: backup mode: stop\n",
		"INFO: prune older backups with retention: keep-daily=1, keep-last=3\n",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
	if !strings.Contains(log, ".vma.zst'") {
		t.Errorf("vzdump.conf compress not applied:\n%s", log)
	}

	// all with exclude: the VMs but 101, the container skipped; one
	// guest, so the task id is its vmid.
	upid, st, log = e.run(t, "admin", url.Values{"all": {"1"}, "exclude": {"101"}, "storage": {"store"}, "compress": {"0"}, "mailto": {"root@example.com"}})
	if st != "OK" || !strings.Contains(upid, ":vzdump:100:admin@pve:") {
		t.Fatalf("%s %s\n%s", upid, st, log)
	}
	if !strings.Contains(log, "Starting Backup of VM 100 ") || strings.Contains(log, "VM 101") ||
		!strings.Contains(log, "skip CT 200") || !strings.Contains(log, "option 'mailto' is not implemented") {
		t.Errorf("all/exclude log:\n%s", log)
	}

	// A failing guest fails the job; the others are still backed up.
	upid, st, log = e.run(t, "admin", url.Values{"vmid": {"101,105"}, "storage": {"store"}})
	if st != "job errors" || !strings.Contains(upid, ":vzdump::admin@pve:") || !strings.Contains(log, "Finished Backup of VM 101") || !strings.Contains(log, "ERROR: Backup of VM 105 failed") {
		t.Errorf("%s %s\n%s", upid, st, log)
	}

	// extractconfig of the first backup.
	ents, _ := os.ReadDir(filepath.Join(e.store, "dump"))
	var archive string
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), "vzdump-qemu-100-") && strings.HasSuffix(en.Name(), ".vma.zst") {
			archive = en.Name()
		}
	}
	var conf string
	if code, _, body := e.Call("alice", "GET", "/nodes/"+node+"/vzdump/extractconfig", url.Values{"volume": {"store:backup/" + archive}}); code != 403 {
		t.Errorf("alice without Datastore.AllocateSpace: %d %s", code, body)
	}
	if err := json.Unmarshal(e.Must("admin", "GET", "/nodes/"+node+"/vzdump/extractconfig", url.Values{"volume": {"store:backup/" + archive}}), &conf); err != nil {
		t.Fatal(err)
	}
	if conf != "name: vm100\nmemory: 128\nscsi0: store:100/vm-100-disk-0.raw,size=1M\n#qmdump#map:scsi0:drive-scsi0:store:raw:\n" {
		t.Errorf("extractconfig: %q", conf)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct {
		user string
		q    url.Values
		code int
		want string
	}{
		{"admin", url.Values{"vmid": {"100"}, "stdout": {"1"}}, 400, `"stdout"`},
		{"admin", url.Values{"vmid": {"100"}, "compress": {"lzo"}}, 501, "lzo"},
		{"admin", url.Values{"vmid": {"200"}}, 501, "CT 200"},
		{"admin", url.Values{"vmid": {"100"}, "node": {"other"}}, 400, `"node"`},
		{"alice", url.Values{"vmid": {"101"}, "storage": {"store"}}, 403, ""},
		{"alice", url.Values{"vmid": {"100"}, "dumpdir": {"/tmp"}}, 400, `"dumpdir"`},
		{"alice", url.Values{"vmid": {"100"}, "storage": {"store"}}, 403, "/storage/store"},
		{"admin", url.Values{"vmid": {"100"}, "prune-backups": {"keep-last=x"}}, 400, `"prune-backups"`},
		{"admin", url.Values{"vmid": {"100"}, "all": {"1"}}, 400, `"all"`},
		{"admin", url.Values{"vmid": {"100"}, "exclude": {"101"}}, 400, `"exclude"`},
		{"admin", url.Values{"storage": {"store"}}, 400, `"vmid"`},
	} {
		code, _, body := e.Call(tc.user, "POST", "/nodes/"+node+"/vzdump", tc.q)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %v: %d %s; want %d with %s", tc.user, tc.q, code, body, tc.code, tc.want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.store, "dump")); len(ents) != 0 {
		t.Errorf("refused calls wrote %v", ents)
	}
}

func TestDefaults(t *testing.T) {
	e := newEnv(t, "compress: zstd\nbwlimit: 1000\nmailto: a@example.com\nbogus: 1\n")
	var got map[string]any
	if err := json.Unmarshal(e.Must("admin", "GET", "/nodes/"+node+"/vzdump/defaults", url.Values{"storage": {"store"}}), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"compress": "zstd", "bwlimit": float64(1000), "mailto": "a@example.com", "storage": "store",
		"dumpdir": filepath.Join(e.store, "dump"), "prune-backups": "keep-daily=1,keep-last=3"}
	if len(got) != len(want) {
		t.Errorf("defaults %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("defaults[%s] = %#v, want %#v", k, got[k], v)
		}
	}
	// Without Sys.Audit and storage rights: refused for the storage.
	if code, _, body := e.Call("alice", "GET", "/nodes/"+node+"/vzdump/defaults", url.Values{"storage": {"store"}}); code != 403 {
		t.Errorf("alice defaults: %d %s", code, body)
	}
}

// clock returns a clock starting now that advances a minute per call, so
// that the archive names of consecutive backups differ.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Now()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Minute)
		return t
	}
}
