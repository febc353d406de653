package access_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestReadACL(t *testing.T) {
	h := newHarness(t, aclTestCfg)
	all := `[
{"path":"/","type":"user","ugid":"alice@pve","roleid":"Administrator","propagate":1},
{"path":"/access/groups/ops","type":"user","ugid":"grace@pve","roleid":"PVEUserAdmin","propagate":1},
{"path":"/vms","type":"group","ugid":"ops","roleid":"PVEVMUser","propagate":1},
{"path":"/vms/100","type":"user","ugid":"carl@pve","roleid":"PVEVMAdmin","propagate":1},
{"path":"/vms/100","type":"token","ugid":"bob@pve!ci","roleid":"Watcher","propagate":0}]`
	wantJSON(t, "ACL as root", h.Do("root@pam", "GET", "/access/acl", nil), all)
	wantJSON(t, "ACL as alice", h.Do("alice@pve", "GET", "/access/acl", nil), all)
	// carl may modify the permissions of /vms/100 (VM.Allocate) only
	wantJSON(t, "ACL as carl", h.Do("carl@pve", "GET", "/access/acl", nil), `[
{"path":"/vms/100","type":"user","ugid":"carl@pve","roleid":"PVEVMAdmin","propagate":1},
{"path":"/vms/100","type":"token","ugid":"bob@pve!ci","roleid":"Watcher","propagate":0}]`)
	wantJSON(t, "ACL as bob", h.Do("bob@pve", "GET", "/access/acl", nil), `[]`)
}

func TestUpdateACL(t *testing.T) {
	h := newHarness(t, aclTestCfg)
	for _, step := range []struct {
		user   string
		params []string
	}{
		{"root@pam", []string{"path", "//storage//local/", "users", "bob@pve,grace@pve", "groups", "empty", "roles", "PVEDatastoreUser", "propagate", "0"}},
		{"alice@pve", []string{"path", "/storage/local", "tokens", "bob@pve!ci", "roles", "PVEAuditor;Watcher"}},
		{"root@pam", []string{"path", "/storage/local", "users", "grace@pve", "roles", "PVEDatastoreUser", "delete", "1"}},
		// carl holds PVEVMAdmin on /vms/100: he may hand out subsets of it
		{"carl@pve", []string{"path", "/vms/100", "users", "bob@pve", "roles", "PVEVMUser"}},
		// deleting on a path PVE would not accept for adding is allowed
		{"root@pam", []string{"path", "/no/such/thing", "users", "bob@pve", "roles", "Watcher", "delete", "1"}},
	} {
		if r := h.Do(step.user, "PUT", "/access/acl", vals(step.params...)); r.Status != http.StatusOK {
			t.Fatalf("%s %v: %d %q %v", step.user, step.params, r.Status, r.Message, r.Errors)
		}
	}
	data := h.File("user.cfg")
	want := `acl:1:/:alice@pve:Administrator:
acl:1:/access/groups/ops:grace@pve:PVEUserAdmin:
acl:0:/storage/local:@empty,bob@pve:PVEDatastoreUser:
acl:1:/storage/local:bob@pve!ci:PVEAuditor,Watcher:
acl:1:/vms:@ops:PVEVMUser:
acl:0:/vms/100:bob@pve!ci:Watcher:
acl:1:/vms/100:carl@pve:PVEVMAdmin:
acl:1:/vms/100:bob@pve:PVEVMUser:
`
	if !strings.HasSuffix(data, "\n\n"+want) {
		t.Errorf("user.cfg ACL:\n%s\nwant:\n%s", data, want)
	}
	// the new entries take effect at once
	if !h.Auth.CheckPrivs("bob@pve", "/vms/100", []string{"VM.PowerMgmt"}, false) {
		t.Error("bob lacks VM.PowerMgmt on /vms/100 after the update")
	}

	const needMembers = "either 'users', 'groups' or 'tokens' is required."
	runCases(t, h, []callCase{
		{name: "no members", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "roles", "Watcher"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"users": needMembers, "groups": needMembers, "tokens": needMembers}},
		{name: "unknown path", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/foo", "users", "bob@pve", "roles", "Watcher"},
			status: 400, msg: "Parameter verification failed.\n", errs: map[string]string{"path": "invalid ACL path '/foo'"}},
		{name: "unknown role", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "users", "bob@pve", "roles", "Nope"},
			status: 500, msg: "ACL update failed: role 'Nope' does not exist\n"},
		{name: "unknown user", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "users", "nobody@pve", "roles", "Watcher"},
			status: 500, msg: "ACL update failed: user 'nobody@pve' does not exist\n"},
		{name: "unknown group", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "groups", "nope", "roles", "Watcher"},
			status: 500, msg: "ACL update failed: group 'nope' does not exist\n"},
		{name: "unknown token", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "tokens", "bob@pve!nope", "roles", "Watcher"},
			status: 500, msg: "ACL update failed: no such token 'nope' for user 'bob@pve'\n"},
		{name: "token of unknown user", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "tokens", "zed@pve!x1", "roles", "Watcher"},
			status: 500, msg: "ACL update failed: no such user ('zed@pve')\n"},
		{name: "bad role name", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "users", "bob@pve", "roles", "a:b"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"roles": "invalid format - role name 'a:b' contains invalid characters"}},
		{name: "no privilege", user: "bob@pve", method: "PUT", path: "/access/acl", params: []string{"path", "/vms/100", "users", "bob@pve", "roles", "Watcher"},
			status: 403, msg: "Permission check failed (/vms/100, Permissions.Modify|VM.Allocate)\n"},
		{name: "superset", user: "carl@pve", method: "PUT", path: "/access/acl", params: []string{"path", "/vms/100", "users", "bob@pve", "roles", "Administrator"},
			status: 500, msg: "ACL update failed: 400 Parameter verification failed.\nrole: Cannot add role 'Administrator' - requires 'Permissions.Modify' or superset of privileges.\n"},
		{name: "NoAccess", user: "carl@pve", method: "PUT", path: "/access/acl", params: []string{"path", "/vms/100", "users", "bob@pve", "roles", "NoAccess", "delete", "1"},
			status: 500, msg: "ACL update failed: 400 Parameter verification failed.\nrole: Cannot remove role 'NoAccess' - requires 'Permissions.Modify'\n"},
		{name: "second role fails", user: "root@pam", method: "PUT", path: "/access/acl", params: []string{"path", "/", "users", "bob@pve", "roles", "Watcher,Nope"},
			status: 500, msg: "ACL update failed: role 'Nope' does not exist\n"},
	})
	if got := h.File("user.cfg"); got != data {
		t.Errorf("refused updates changed user.cfg:\n%s", got)
	}
}

func TestUpdateACLPropagationSubset(t *testing.T) {
	// dora holds VM.Allocate on /vms/200 without propagation: she may add
	// non-propagating entries of a subset, but not propagating ones.
	h := newHarness(t, "user:dora@pve:1:0::::::\nuser:bob@pve:1:0::::::\nacl:0:/vms/200:dora@pve:PVEVMAdmin:\n")
	r := h.Do("dora@pve", "PUT", "/access/acl", vals("path", "/vms/200", "users", "bob@pve", "roles", "PVEVMUser"))
	if want := "ACL update failed: 400 Parameter verification failed.\nrole: Cannot add role 'PVEVMUser' with propagation - requires 'Permissions.Modify' or propagated superset of privileges.\n"; r.Status != 500 || r.Message != want {
		t.Errorf("propagating add: %d %q", r.Status, r.Message)
	}
	r = h.Do("dora@pve", "PUT", "/access/acl", vals("path", "/vms/200", "users", "bob@pve", "roles", "PVEVMUser", "propagate", "0"))
	if r.Status != http.StatusOK {
		t.Fatalf("non-propagating add: %d %q", r.Status, r.Message)
	}
	if !strings.Contains(h.File("user.cfg"), "acl:0:/vms/200:bob@pve:PVEVMUser:\n") {
		t.Errorf("user.cfg:\n%s", h.File("user.cfg"))
	}
}
