package qemuapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/vmm"
)

const (
	node = "n1"
	pw   = "qemu api test password"
)

// env is pvedaemon's API server for the VM methods over real parts: a
// config root in a temporary directory, a real Authenticator, task
// manager, qemu-img and QEMU (TCG), and a dir storage "store".
type env struct {
	t     testing.TB
	srv   *api.Server
	auth  *access.Authenticator
	root  *pvefs.Root
	tasks *tasks.Manager
	vms   *vmm.Manager
	store string
	login map[string]*access.LoginResult
}

func newEnv(t testing.TB) *env {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	files := map[string]string{
		"storage.cfg": "dir: store\n\tpath " + store + "\n\tcontent images,iso\n\n" +
			"dir: isos\n\tpath " + filepath.Join(dir, "isos") + "\n\tcontent iso\n\n",
		"user.cfg": "user:admin@pve:1:0:::::\nuser:alice@pve:1:0:::::\n" +
			"acl:1:/:admin@pve:Administrator:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMUser:\n",
		"domains.cfg": "pve: pve\n\tcomment x\n\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := access.NewAuthenticator(access.Deps{FS: root, Clock: time.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := auth.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"admin", "alice"} {
		if err := access.SetPassword(ctx, root, u, pw); err != nil {
			t.Fatal(err)
		}
	}
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: node, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close(context.Background()) })
	run, err := os.MkdirTemp("", "qa") // QMP socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	host := &storage.Host{Root: root, Node: node}
	vms := vmm.New(vmm.Config{RunDir: run, Upstream: true, NetBackend: "user",
		KVM: func() bool { return false }, ResolveVolume: host.Resolve})
	deps := &qemuapi.Deps{Config: root, Privs: auth, Tasks: tm, VMs: vms, Storage: host,
		QEMUVersion: func() string { return "7.2.0" }, HostCPUs: 2, Log: log}
	srv, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(qemuapi.Methods(deps)),
		Auth:     auth, Mode: api.ModeDaemon, NodeName: node, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, auth: auth, root: root, tasks: tm, vms: vms, store: store, login: map[string]*access.LoginResult{}}
	t.Cleanup(e.killAll)
	return e
}

// killAll kills every QEMU the test left running.
func (e *env) killAll() {
	for vmid := 100; vmid < 120; vmid++ {
		if pid, ok := e.vms.Running(vmid); ok {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// call sends one request as user (query for GET/DELETE, form body
// otherwise) and returns the status, the data and the whole body.
func (e *env) call(user, method, path string, q url.Values) (int, json.RawMessage, string) {
	e.t.Helper()
	res, ok := e.login[user]
	if !ok {
		var err error
		res, err = e.auth.Login(context.Background(), user, pw, "pve", "127.0.0.1")
		if err != nil {
			e.t.Fatal(err)
		}
		e.login[user] = res
	}
	target := "/api2/json" + path
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader(q.Encode())
	} else if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("Cookie", ticket.CookieHeader(res.Ticket))
	if method != "GET" {
		req.Header.Set("CSRFPreventionToken", res.CSRFPreventionToken)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	var envl struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &envl)
	return w.Code, envl.Data, w.Body.String()
}

// must is call that fails the test unless the answer is 200.
func (e *env) must(method, path string, q url.Values) json.RawMessage {
	e.t.Helper()
	code, data, body := e.call("admin", method, path, q)
	if code != 200 {
		e.t.Fatalf("%s %s %v: %d %s", method, path, q, code, body)
	}
	return data
}

// task runs a call that answers a UPID and waits for the task's end; it
// returns the exit status.
func (e *env) task(method, path string, q url.Values) string {
	e.t.Helper()
	var upid string
	if err := json.Unmarshal(e.must(method, path, q), &upid); err != nil || !strings.HasPrefix(upid, "UPID:"+node+":") {
		e.t.Fatalf("%s %s: not a UPID: %q (%v)", method, path, upid, err)
	}
	return e.wait(upid)
}

func (e *env) wait(upid string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.tasks.Wait(ctx, upid); err != nil {
		e.t.Fatalf("wait %s: %v", upid, err)
	}
	st, err := e.tasks.ExitStatus(upid)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) configFile(vmid string) string {
	return filepath.Join(e.root.Dir(), "nodes", node, "qemu-server", vmid+".conf")
}

func (e *env) readConfig(vmid string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.configFile(vmid))
	if err != nil {
		e.t.Fatal(err)
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
	e.t.Helper()
	q := url.Values{"vmid": {vmid}, "name": {"vm" + vmid}, "memory": {"128"}, "cores": {"1"},
		"scsi0": {"store:1,format=qcow2"}, "net0": {"virtio"}, "scsihw": {"virtio-scsi-pci"}, "vga": {"none"}}
	for k, v := range extra {
		q[k] = v
	}
	if st := e.task("POST", "/nodes/"+node+"/qemu", q); st != "OK" {
		e.t.Fatalf("create %s: task %s", vmid, st)
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
	e.t.Helper()
	var s status
	if err := json.Unmarshal(e.must("GET", "/nodes/"+node+"/qemu/"+vmid+"/status/current", nil), &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}
