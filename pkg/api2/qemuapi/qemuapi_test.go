package qemuapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmm"
)

const node = apitest.Node

// env is pvedaemon's API server for the VM methods over real parts: a
// config root in a temporary directory, a real Authenticator, task
// manager, qemu-img and QEMU (TCG), and a dir storage "store".
type env struct {
	*apitest.Client
	tasks *tasks.Manager
	vms   *vmm.Manager
	store string
}

func newEnv(t testing.TB) *env {
	return newEnvWith(t, func(dir string) string {
		return "dir: store\n\tpath " + filepath.Join(dir, "store") + "\n\tcontent images,iso\n\n" +
			"dir: isos\n\tpath " + filepath.Join(dir, "isos") + "\n\tcontent iso\n\n"
	}, nil)
}

// envParts are what newEnvWith builds, for the methods a test adds.
type envParts struct {
	dir   string
	ae    *apitest.Env
	tasks *tasks.Manager
	vms   *vmm.Manager
	host  *storage.Host
}

// newEnvWith serves the VM methods (and those more returns) over a config
// root with the storage.cfg given (its dir storage "store" holds the
// images) and two users: admin (Administrator) and alice (PVEVMUser on
// VM 100).
func newEnvWith(t testing.TB, storageCfg func(dir string) string, more func(p envParts, deps *qemuapi.Deps) []api.Method) *env {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	ae := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"storage.cfg": storageCfg(dir),
		"user.cfg": "user:admin@pve:1:0:::::\nuser:alice@pve:1:0:::::\n" +
			"acl:1:/:admin@pve:Administrator:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMUser:\n",
	}})
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: node, Logger: ae.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close(context.Background()) })
	run, err := os.MkdirTemp("", "qa") // QMP socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	host := &storage.Host{Root: ae.Root, Node: node}
	vms := vmm.New(vmm.Config{RunDir: run, Upstream: true, NetBackend: "user",
		KVM: func() bool { return false }, ResolveVolume: host.Resolve})
	deps := &qemuapi.Deps{Config: ae.Root, Privs: ae.Auth, Tasks: tm, VMs: vms, Storage: host,
		QEMUVersion: func() string { return "7.2.0" }, HostCPUs: 2, Log: ae.Log, SerialTerminal: serialTerminal}
	methods := [][]api.Method{qemuapi.Methods(deps)}
	if more != nil {
		methods = append(methods, more(envParts{dir: dir, ae: ae, tasks: tm, vms: vms, host: host}, deps))
	}
	e := &env{Client: ae.Serve(api.NewRegistry(methods...)), tasks: tm, vms: vms, store: store}
	t.Cleanup(e.killAll)
	return e
}

func (e *env) killAll() {
	for vmid := 100; vmid < 130; vmid++ {
		if pid, ok := e.vms.Running(vmid); ok {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// must is Must as admin.
func (e *env) must(method, path string, q url.Values) json.RawMessage {
	e.TB.Helper()
	return e.Must("admin", method, path, q)
}

// task runs a call that answers a UPID and waits for the task's end; it
// returns the exit status.
func (e *env) task(method, path string, q url.Values) string {
	e.TB.Helper()
	var upid string
	if err := json.Unmarshal(e.must(method, path, q), &upid); err != nil || !strings.HasPrefix(upid, "UPID:"+node+":") {
		e.TB.Fatalf("%s %s: not a UPID: %q (%v)", method, path, upid, err)
	}
	return e.wait(upid)
}

func (e *env) wait(upid string) string {
	e.TB.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.tasks.Wait(ctx, upid); err != nil {
		e.TB.Fatalf("wait %s: %v", upid, err)
	}
	st, err := e.tasks.ExitStatus(upid)
	if err != nil {
		e.TB.Fatal(err)
	}
	return st
}

func (e *env) configFile(vmid string) string {
	return filepath.Join(e.Dir, "nodes", node, "qemu-server", vmid+".conf")
}

func (e *env) readConfig(vmid string) string {
	e.TB.Helper()
	b, err := os.ReadFile(e.configFile(vmid))
	if err != nil {
		e.TB.Fatal(err)
	}
	return string(b)
}

// storeFiles lists the files below the dir storage.
func (e *env) storeFiles() []string {
	var out []string
	_ = filepath.WalkDir(e.store, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.store, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// createVM creates VM vmid with a 1 GiB qcow2 disk and a NIC.
func (e *env) createVM(vmid string, extra url.Values) {
	e.TB.Helper()
	q := url.Values{"vmid": {vmid}, "name": {"vm" + vmid}, "memory": {"128"}, "cores": {"1"},
		"scsi0": {"store:1,format=qcow2"}, "net0": {"virtio"}, "scsihw": {"virtio-scsi-pci"}, "vga": {"none"}}
	for k, v := range extra {
		q[k] = v
	}
	if st := e.task("POST", "/nodes/"+node+"/qemu", q); st != "OK" {
		e.TB.Fatalf("create %s: task %s", vmid, st)
	}
}

type status struct {
	Status    string  `json:"status"`
	QMPStatus string  `json:"qmpstatus"`
	PID       int     `json:"pid"`
	Uptime    int64   `json:"uptime"`
	CPU       float64 `json:"cpu"`
	CPUs      float64 `json:"cpus"`
	Mem       int64   `json:"mem"`
	MaxMem    int64   `json:"maxmem"`
	MaxDisk   int64   `json:"maxdisk"`
	DiskRead  int64   `json:"diskread"`
	Name      string  `json:"name"`
	VMID      int     `json:"vmid"`
	HA        *struct {
		Managed int `json:"managed"`
	} `json:"ha"`
	BlockStat map[string]json.RawMessage `json:"blockstat"`
}

func (e *env) status(vmid string) status {
	e.TB.Helper()
	var s status
	if err := json.Unmarshal(e.must("GET", "/nodes/"+node+"/qemu/"+vmid+"/status/current", nil), &s); err != nil {
		e.TB.Fatal(err)
	}
	return s
}
