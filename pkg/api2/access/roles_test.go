package access_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/access"
)

func TestRoles(t *testing.T) {
	h := newHarness(t, aclTestCfg)

	// The index has every built-in role as special and Watcher as not.
	var index []struct {
		RoleID  string `json:"roleid"`
		Privs   string `json:"privs"`
		Special int    `json:"special"`
	}
	h.Do("bob@pve", "GET", "/access/roles", nil).Decode(t, &index)
	got := map[string]int{}
	for _, e := range index {
		got[e.RoleID] = e.Special
		if e.RoleID == "PVETemplateUser" && e.Privs != "VM.Audit,VM.Clone" {
			t.Errorf("PVETemplateUser privs %q", e.Privs)
		}
		if e.RoleID == "NoAccess" && e.Privs != "" {
			t.Errorf("NoAccess privs %q", e.Privs)
		}
	}
	if len(got) != len(access.BuiltinRoles())+1 || got["Watcher"] != 0 || got["Administrator"] != 1 {
		t.Errorf("role index %v", got)
	}

	for _, step := range []struct {
		method, path string
		params       []string
	}{
		{"POST", "/access/roles", []string{"roleid", "Ops", "privs", "VM.PowerMgmt,VM.Audit;Sys.Audit"}},
		{"POST", "/access/roles", []string{"roleid", "Blank"}},
		{"PUT", "/access/roles/Watcher", []string{"privs", "Datastore.Audit", "append", "1"}},
		{"PUT", "/access/roles/Ops", []string{"privs", "VM.Console"}},
	} {
		if r := h.Do("alice@pve", step.method, step.path, vals(step.params...)); r.Status != http.StatusOK {
			t.Fatalf("%s %s %v: %d %q %v", step.method, step.path, step.params, r.Status, r.Message, r.Errors)
		}
	}
	data := h.File("user.cfg")
	if want := "\n\nrole:Blank::\nrole:Ops:VM.Console:\nrole:Watcher:Datastore.Audit,VM.Audit:\n\nacl:"; !strings.Contains(data, want) {
		t.Errorf("user.cfg lacks %q:\n%s", want, data)
	}
	wantJSON(t, "read Watcher", h.Do("bob@pve", "GET", "/access/roles/Watcher", nil), `{"Datastore.Audit":1,"VM.Audit":1}`)
	wantJSON(t, "read Blank", h.Do("bob@pve", "GET", "/access/roles/Blank", nil), `{}`)
	wantJSON(t, "read PVETemplateUser", h.Do("bob@pve", "GET", "/access/roles/PVETemplateUser", nil), `{"VM.Audit":1,"VM.Clone":1}`)

	runCases(t, h, []callCase{
		{name: "PVE namespace", user: "root@pam", method: "POST", path: "/access/roles", params: []string{"roleid", "pveFoo"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"}},
		{name: "unknown privilege", user: "root@pam", method: "POST", path: "/access/roles", params: []string{"roleid", "X", "privs", "VM.Audit,Foo.Bar"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"privs": "invalid format - invalid privilege 'Foo.Bar'"}},
		{name: "bad role id", user: "root@pam", method: "POST", path: "/access/roles", params: []string{"roleid", "a:b"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"roleid": "invalid format - role name 'a:b' contains invalid characters"}},
		{name: "duplicate", user: "root@pam", method: "POST", path: "/access/roles", params: []string{"roleid", "Ops"},
			status: 500, msg: "create role failed: role 'Ops' already exists\n"},
		{name: "built-in exists", user: "root@pam", method: "POST", path: "/access/roles", params: []string{"roleid", "Administrator"},
			status: 500, msg: "create role failed: role 'Administrator' already exists\n"},
		{name: "create without privilege", user: "bob@pve", method: "POST", path: "/access/roles", params: []string{"roleid", "X"},
			status: 403, msg: "Permission check failed (/access, Sys.Modify)\n"},
		{name: "modify built-in", user: "root@pam", method: "PUT", path: "/access/roles/PVEAdmin", params: []string{"privs", "VM.Audit"},
			status: 500, msg: "auto-generated role 'PVEAdmin' cannot be modified\n"},
		{name: "update missing", user: "root@pam", method: "PUT", path: "/access/roles/Nope", params: []string{"privs", "VM.Audit"},
			status: 500, msg: "update role failed: role 'Nope' does not exist\n"},
		{name: "append needs privs", user: "root@pam", method: "PUT", path: "/access/roles/Ops", params: []string{"append", "1"},
			status: 400, msg: "Parameter verification failed.\n"},
		{name: "update without privilege", user: "grace@pve", method: "PUT", path: "/access/roles/Ops", params: []string{"privs", "VM.Audit"},
			status: 403, msg: "Permission check failed (/access, Sys.Modify)\n"},
		{name: "read missing", user: "bob@pve", method: "GET", path: "/access/roles/Nope",
			status: 500, msg: "role 'Nope' does not exist\n"},
		{name: "delete built-in", user: "root@pam", method: "DELETE", path: "/access/roles/NoAccess",
			status: 500, msg: "auto-generated role 'NoAccess' cannot be deleted\n"},
		{name: "delete missing", user: "root@pam", method: "DELETE", path: "/access/roles/Nope",
			status: 500, msg: "delete role failed: role 'Nope' does not exist\n"},
		{name: "delete without privilege", user: "bob@pve", method: "DELETE", path: "/access/roles/Ops",
			status: 403, msg: "Permission check failed (/access, Sys.Modify)\n"},
	})
	if data2 := h.File("user.cfg"); data2 != data {
		t.Errorf("refused calls changed user.cfg:\n%s", data2)
	}

	// Deleting a role leaves the ACL lines naming it, as PVE does.
	if r := h.Do("root@pam", "DELETE", "/access/roles/Watcher", nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %q", r.Status, r.Message)
	}
	data = h.File("user.cfg")
	if strings.Contains(data, "role:Watcher:") || !strings.Contains(data, "acl:0:/vms/100:bob@pve!ci:Watcher:\n") {
		t.Errorf("user.cfg after deleting Watcher:\n%s", data)
	}
	if r := h.Do("bob@pve", "GET", "/access/roles/Watcher", nil); r.Status != 500 {
		t.Errorf("read after delete: %d %q", r.Status, r.Message)
	}
}
