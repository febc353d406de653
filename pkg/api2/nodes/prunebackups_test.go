package nodes_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// pruneEnv is pvedaemon's API server over a config root whose dir storage
// "store" (prune-backups keep-last=2) holds real backup files, with a real
// task manager.
type pruneEnv struct {
	*apitest.Client
	tasks *tasks.Manager
	dump  string // the dump directory of "store"
}

// pruneArchives are the backups placed in store: VM 100 on five days (the
// 2nd protected), CT 200 on two, and a copy of VM 100's under another name.
var pruneArchives = []string{
	"vzdump-lxc-200-2025_03_01-12_00_00.tar.zst",
	"vzdump-lxc-200-2025_03_02-12_00_00.tar.zst",
	"vzdump-qemu-100-2025_03_01-12_00_00.vma.zst",
	"vzdump-qemu-100-2025_03_02-12_00_00.vma.zst",
	"vzdump-qemu-100-2025_03_03-12_00_00.vma.zst",
	"vzdump-qemu-100-2025_03_04-12_00_00.vma.zst",
	"vzdump-qemu-100-2025_03_05-12_00_00.vma.zst",
	"vzdump-qemu-100-copy.vma.zst",
}

const pruneProtected = "vzdump-qemu-100-2025_03_02-12_00_00.vma.zst"

// logName is the .log file of a standard archive name: the name up to its
// first dot.
func logName(archive string) string {
	base, _, _ := strings.Cut(archive, ".")
	return base + ".log"
}

func newPruneEnv(t *testing.T) *pruneEnv {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := "dir: store\n\tpath " + store + "\n\tcontent backup,iso\n\tprune-backups keep-last=2\n\n" +
		"dir: noprune\n\tpath " + filepath.Join(dir, "noprune") + "\n\tcontent backup\n\n" +
		"dir: isoonly\n\tpath " + filepath.Join(dir, "isoonly") + "\n\tcontent iso\n\n" +
		"dir: off\n\tpath " + filepath.Join(dir, "off") + "\n\tcontent backup\n\tdisable\n\n" +
		"dir: elsewhere\n\tpath " + filepath.Join(dir, "elsewhere") + "\n\tcontent backup\n\tnodes n2\n\n"
	env := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"storage.cfg": cfg,
		"user.cfg": "user:alice@pve:1:0:::::\nuser:bob@pve:1:0:::::\nuser:carol@pve:1:0:::::\n" +
			"acl:1:/storage/store:alice@pve:PVEDatastoreUser:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMAdmin:\n" +
			"acl:1:/storage:carol@pve:PVEDatastoreAdmin:\n",
	}})
	m, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: apitest.Node, Logger: env.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c := env.Serve(api.NewRegistry(nodes.Methods(nodes.Deps{Privs: env.Auth, Tasks: m,
		Storage: &nodes.StorageDeps{Config: env.Root}})))
	dump := filepath.Join(store, "dump")
	if err := os.MkdirAll(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dump, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range pruneArchives {
		put(a, "archive")
		put(a+".notes", "notes of "+a)
		if !strings.Contains(a, "copy") {
			put(logName(a), "log of "+a)
		}
	}
	put(pruneProtected+".protected", "")
	return &pruneEnv{Client: c, tasks: m, dump: dump}
}

// files lists the dump directory.
func (e *pruneEnv) files(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e.dump)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

// dryRun calls GET .../prunebackups and returns the marks by file name.
func (e *pruneEnv) dryRun(t *testing.T, user, sid string, kv ...string) map[string]storage.PruneEntry {
	t.Helper()
	r := e.Do(user, "GET", "/nodes/n1/storage/"+sid+"/prunebackups", apitest.Values(kv...))
	if r.Status != 200 {
		t.Fatalf("dry run %v as %s: %d %s", kv, user, r.Status, r.Body)
	}
	var list []storage.PruneEntry
	r.Decode(t, &list)
	out := map[string]storage.PruneEntry{}
	for _, en := range list {
		out[strings.TrimPrefix(en.VolID, sid+":backup/")] = en
	}
	return out
}

func markOf(l map[string]storage.PruneEntry) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[k] = v.Mark
	}
	return out
}

func equalMarks(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// runTask waits for the task of a DELETE answer and returns its exit status
// and log.
func (e *pruneEnv) runTask(t *testing.T, r apitest.Reply, wantID, wantUser string) (string, []string) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("prune: %d %s", r.Status, r.Body)
	}
	var upid string
	r.Decode(t, &upid)
	u, err := tasks.Parse(upid)
	if err != nil || u.Type != "prunebackups" || u.ID != wantID || u.User != wantUser {
		t.Fatalf("UPID %q (%v); want a prunebackups task %q of %s", upid, err, wantID, wantUser)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.tasks.Wait(ctx, upid); err != nil {
		t.Fatal(err)
	}
	status, err := e.tasks.ExitStatus(upid)
	if err != nil {
		t.Fatal(err)
	}
	lines, _, err := e.tasks.ReadLog(upid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.T)
	}
	return status, out
}

func TestPruneBackupsDryRun(t *testing.T) {
	e := newPruneEnv(t)
	before := e.files(t)

	// Without options the storage's keep-last=2 applies, per group.
	got := e.dryRun(t, "carol@pve", "store")
	want := map[string]string{
		"vzdump-lxc-200-2025_03_01-12_00_00.tar.zst":  "keep",
		"vzdump-lxc-200-2025_03_02-12_00_00.tar.zst":  "keep",
		"vzdump-qemu-100-2025_03_01-12_00_00.vma.zst": "remove",
		"vzdump-qemu-100-2025_03_02-12_00_00.vma.zst": "protected",
		"vzdump-qemu-100-2025_03_03-12_00_00.vma.zst": "remove",
		"vzdump-qemu-100-2025_03_04-12_00_00.vma.zst": "keep",
		"vzdump-qemu-100-2025_03_05-12_00_00.vma.zst": "keep",
		"vzdump-qemu-100-copy.vma.zst":                "renamed",
	}
	if m := markOf(got); !equalMarks(m, want) {
		t.Errorf("marks %v, want %v", m, want)
	}
	// Fields: ctime from the name in local time, type and vmid.
	e1 := got["vzdump-qemu-100-2025_03_04-12_00_00.vma.zst"]
	if wantCT := time.Date(2025, 3, 4, 12, 0, 0, 0, time.Local).Unix(); e1.CTime != wantCT || e1.Type != "qemu" || e1.VMID != 100 || e1.VolID != "store:backup/vzdump-qemu-100-2025_03_04-12_00_00.vma.zst" {
		t.Errorf("entry %+v", e1)
	}
	if c := got["vzdump-lxc-200-2025_03_01-12_00_00.tar.zst"]; c.Type != "lxc" || c.VMID != 200 {
		t.Errorf("lxc entry %+v", c)
	}
	// The answer's objects have exactly PVE's keys.
	raw := e.Must("carol@pve", "GET", "/nodes/n1/storage/store/prunebackups", nil)
	var objs []map[string]any
	if err := json.Unmarshal(raw, &objs); err != nil || len(objs) != len(pruneArchives) {
		t.Fatalf("answer %s: %v", raw, err)
	}
	for k := range objs[0] {
		if !slices.Contains([]string{"volid", "ctime", "mark", "type", "vmid"}, k) {
			t.Errorf("unexpected key %q in %v", k, objs[0])
		}
	}

	// Options given override the storage's; type and vmid filter.
	got = e.dryRun(t, "carol@pve", "store", "prune-backups", "keep-daily=1", "type", "lxc")
	if m := markOf(got); !equalMarks(m, map[string]string{
		"vzdump-lxc-200-2025_03_01-12_00_00.tar.zst": "remove",
		"vzdump-lxc-200-2025_03_02-12_00_00.tar.zst": "keep",
	}) {
		t.Errorf("keep-daily=1 type=lxc: %v", m)
	}
	got = e.dryRun(t, "alice@pve", "store", "vmid", "100", "prune-backups", "keep-all=1")
	if m := markOf(got); len(m) != 6 || m["vzdump-qemu-100-2025_03_01-12_00_00.vma.zst"] != "keep" || m[pruneProtected] != "protected" || m["vzdump-qemu-100-copy.vma.zst"] != "renamed" {
		t.Errorf("vmid=100 keep-all: %v", m)
	}
	got = e.dryRun(t, "carol@pve", "noprune", "prune-backups", "keep-last=1")
	if len(got) != 0 {
		t.Errorf("empty storage: %v", got)
	}

	// Refusals.
	for _, c := range []struct {
		user, sid string
		q         []string
		code      int
		msg       string
	}{
		{"bob@pve", "store", nil, 403, "Permission check failed"},
		{"carol@pve", "store", []string{"prune-backups", "keep-all=1,keep-last=2"}, 400, ""},
		{"carol@pve", "store", []string{"prune-backups", "keep-lats=2"}, 400, ""},
		{"carol@pve", "store", []string{"prune-backups", "keep-last=-2"}, 400, ""},
		{"carol@pve", "store", []string{"type", "openvz"}, 400, ""},
		{"carol@pve", "noprune", nil, 500, "no prune-backups options configured for storage 'noprune'"},
		{"carol@pve", "isoonly", []string{"prune-backups", "keep-last=1"}, 500, "storage 'isoonly' does not support backups"},
		{"carol@pve", "nope", nil, 500, "storage 'nope' does not exist"},
		{"carol@pve", "off", []string{"prune-backups", "keep-last=1"}, 500, "storage 'off' is disabled"},
		{"carol@pve", "elsewhere", []string{"prune-backups", "keep-last=1"}, 500, "storage 'elsewhere' is not available on node 'n1'"},
	} {
		r := e.Do(c.user, "GET", "/nodes/n1/storage/"+c.sid+"/prunebackups", apitest.Values(c.q...))
		if r.Status != c.code || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s on %s %v: %d %s, want %d %q", c.user, c.sid, c.q, r.Status, r.Body, c.code, c.msg)
		}
		if c.code == 400 && r.Errors[c.q[0]] == "" {
			t.Errorf("%v: no error for parameter %s: %s", c.q, c.q[0], r.Body)
		}
	}

	// Nothing was removed.
	if after := e.files(t); !slices.Equal(after, before) {
		t.Errorf("dry runs changed the storage:\n%v\n%v", before, after)
	}
}

func TestPruneBackupsDelete(t *testing.T) {
	e := newPruneEnv(t)
	path := "/nodes/n1/storage/store/prunebackups"
	before := e.files(t)

	// Permissions: the whole storage needs Datastore.Allocate (alice has
	// only AllocateSpace), one guest AllocateSpace plus VM.Backup (carol
	// lacks VM.Backup on 100).
	for _, c := range []struct {
		user string
		q    []string
	}{
		{"alice@pve", nil},
		{"carol@pve", []string{"vmid", "100"}},
		{"alice@pve", []string{"vmid", "200"}},
		{"bob@pve", []string{"vmid", "100"}},
	} {
		if r := e.Do(c.user, "DELETE", path, apitest.Values(c.q...)); r.Status != 403 {
			t.Errorf("%s %v: %d %s, want 403", c.user, c.q, r.Status, r.Body)
		}
	}
	if r := e.Do("carol@pve", "DELETE", path, apitest.Values("prune-backups", "keep-all=1,keep-daily=1")); r.Status != 400 || r.Errors["prune-backups"] == "" {
		t.Errorf("conflicting options: %d %s", r.Status, r.Body)
	}
	if after := e.files(t); !slices.Equal(after, before) {
		t.Fatalf("refused calls changed the storage")
	}

	// alice prunes VM 100 with keep-last=3: 03-01 goes.
	status, log := e.runTask(t, e.Do("alice@pve", "DELETE", path, apitest.Values("vmid", "100", "prune-backups", "keep-last=3")), "100@store", "alice@pve")
	if status != "OK" || !slices.Contains(log, "removing backup 'store:backup/vzdump-qemu-100-2025_03_01-12_00_00.vma.zst'") ||
		strings.Count(strings.Join(log, "\n"), "removing backup") != 1 {
		t.Errorf("task %s, log %q", status, log)
	}

	// carol prunes everything with the storage's keep-last=2: 03-03 goes,
	// the protected 03-02 and the renamed copy stay.
	status, log = e.runTask(t, e.Do("carol@pve", "DELETE", path, nil), "store", "carol@pve")
	if status != "OK" || !slices.Equal(slices.DeleteFunc(log, func(l string) bool { return !strings.HasPrefix(l, "removing") }),
		[]string{"removing backup 'store:backup/vzdump-qemu-100-2025_03_03-12_00_00.vma.zst'"}) {
		t.Errorf("task %s, log %q", status, log)
	}

	var gone []string
	for _, a := range []string{"vzdump-qemu-100-2025_03_01-12_00_00.vma.zst", "vzdump-qemu-100-2025_03_03-12_00_00.vma.zst"} {
		gone = append(gone, a, a+".notes", logName(a))
	}
	var want []string
	for _, f := range before {
		if !slices.Contains(gone, f) {
			want = append(want, f)
		}
	}
	if after := e.files(t); !slices.Equal(after, want) {
		t.Errorf("left\n%v\nwant\n%v", after, want)
	}
	if !slices.Contains(want, pruneProtected) || !slices.Contains(want, pruneProtected+".protected") || !slices.Contains(want, logName(pruneProtected)) {
		t.Errorf("protected backup or its files not in %v", want)
	}

	// The storage is looked up by the task, as in PVE.
	status, _ = e.runTask(t, e.Do("carol@pve", "DELETE", "/nodes/n1/storage/nope/prunebackups", nil), "nope", "carol@pve")
	if status != "storage 'nope' does not exist" {
		t.Errorf("task on a missing storage: %q", status)
	}
}
