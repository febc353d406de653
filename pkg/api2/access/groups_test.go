package access_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/pvenode/pvenode/pkg/api/apitest"
)

// aclTestCfg is the user.cfg the group, role, ACL and password tests
// start from (the harness adds root@pam).
const aclTestCfg = `user:alice@pve:1:0::::::
user:bob@pve:1:0::::::
user:carl@pve:1:0::::::
user:grace@pve:1:0::::::
token:bob@pve!ci:0:1::
group:empty:::
group:ops:alice@pve,bob@pve:Operations:
role:Watcher:VM.Audit:
acl:1:/:alice@pve:Administrator:
acl:1:/access/groups/ops:grace@pve:PVEUserAdmin:
acl:1:/vms:@ops:PVEVMUser:
acl:1:/vms/100:carl@pve:PVEVMAdmin:
acl:0:/vms/100:bob@pve!ci:Watcher:
`

// asJSON decodes a reply's data into generic JSON values.
func asJSON(t *testing.T, r apitest.Reply) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
	return v
}

// wantJSON compares a reply's data with the JSON text want.
func wantJSON(t *testing.T, what string, r apitest.Reply, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if got := asJSON(t, r); !reflect.DeepEqual(got, w) {
		t.Errorf("%s = %s; want %s", what, r.Data, want)
	}
}

// callCase is one refused call.
type callCase struct {
	name, user, method, path string
	params                   []string
	status                   int
	msg                      string
	errs                     map[string]string
}

func runCases(t *testing.T, h *harness, cases []callCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Do(tc.user, tc.method, tc.path, vals(tc.params...))
			if r.Status != tc.status || r.Message != tc.msg {
				t.Errorf("%s %s: got %d %q %v; want %d %q", tc.method, tc.path, r.Status, r.Message, r.Errors, tc.status, tc.msg)
			}
			if tc.errs != nil && !reflect.DeepEqual(r.Errors, tc.errs) {
				t.Errorf("%s %s: errors %q; want %q", tc.method, tc.path, r.Errors, tc.errs)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	h := newHarness(t, aclTestCfg)
	if r := h.Do("root@pam", "POST", "/access/groups", vals("groupid", "dev", "comment", "dev team: 100%")); r.Status != http.StatusOK {
		t.Fatalf("create: %d %q %v", r.Status, r.Message, r.Errors)
	}
	if r := h.Do("alice@pve", "PUT", "/access/groups/ops", vals("comment", "")); r.Status != http.StatusOK {
		t.Fatalf("update: %d %q %v", r.Status, r.Message, r.Errors)
	}
	want := `user:alice@pve:1:0::::::
user:bob@pve:1:0::::::
token:bob@pve!ci:0:1::
user:carl@pve:1:0::::::
user:grace@pve:1:0::::::
user:root@pam:1:0:::root@localhost:::

group:dev::dev team%3A 100%25:
group:empty:::
group:ops:alice@pve,bob@pve::


role:Watcher:VM.Audit:

acl:1:/:alice@pve:Administrator:
acl:1:/access/groups/ops:grace@pve:PVEUserAdmin:
acl:1:/vms:@ops:PVEVMUser:
acl:0:/vms/100:bob@pve!ci:Watcher:
acl:1:/vms/100:carl@pve:PVEVMAdmin:
`
	if got := h.File("user.cfg"); got != want {
		t.Errorf("user.cfg after create and update:\n%s\nwant:\n%s", got, want)
	}

	wantJSON(t, "read dev", h.Do("root@pam", "GET", "/access/groups/dev", nil), `{"comment":"dev team: 100%","members":[]}`)
	wantJSON(t, "read ops", h.Do("root@pam", "GET", "/access/groups/ops", nil), `{"members":["alice@pve","bob@pve"]}`)
	wantJSON(t, "index as root", h.Do("root@pam", "GET", "/access/groups", nil),
		`[{"groupid":"dev","comment":"dev team: 100%","users":""},{"groupid":"empty","users":""},{"groupid":"ops","users":"alice@pve,bob@pve"}]`)
	// grace may administer ops users only, so she sees that group alone
	wantJSON(t, "index as grace", h.Do("grace@pve", "GET", "/access/groups", nil), `[{"groupid":"ops","users":"alice@pve,bob@pve"}]`)
	wantJSON(t, "index as bob", h.Do("bob@pve", "GET", "/access/groups", nil), `[]`)

	runCases(t, h, []callCase{
		{name: "duplicate", user: "root@pam", method: "POST", path: "/access/groups", params: []string{"groupid", "dev"},
			status: 500, msg: "create group failed: group 'dev' already exists\n"},
		{name: "bad id", user: "root@pam", method: "POST", path: "/access/groups", params: []string{"groupid", "a b"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"groupid": "invalid format - group name 'a b' contains invalid characters"}},
		{name: "create without privilege", user: "grace@pve", method: "POST", path: "/access/groups", params: []string{"groupid", "x"},
			status: 403, msg: "Permission check failed (/access/groups, Group.Allocate)\n"},
		{name: "update missing", user: "root@pam", method: "PUT", path: "/access/groups/nope", params: []string{"comment", "x"},
			status: 500, msg: "update group failed: group 'nope' does not exist\n"},
		{name: "read missing", user: "root@pam", method: "GET", path: "/access/groups/nope",
			status: 500, msg: "group 'nope' does not exist\n"},
		{name: "read without privilege", user: "bob@pve", method: "GET", path: "/access/groups/ops",
			status: 403, msg: "Permission check failed (/access/groups, Sys.Audit|Group.Allocate)\n"},
		{name: "delete missing", user: "root@pam", method: "DELETE", path: "/access/groups/nope",
			status: 500, msg: "delete group failed: group 'nope' does not exist\n"},
		{name: "delete without privilege", user: "bob@pve", method: "DELETE", path: "/access/groups/ops",
			status: 403, msg: "Permission check failed (/access/groups, Group.Allocate)\n"},
	})

	// Delete takes the group's ACL entries along.
	if r := h.Do("root@pam", "DELETE", "/access/groups/ops", nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %q", r.Status, r.Message)
	}
	cfg := h.userCfg()
	if cfg.Groups["ops"] != nil {
		t.Error("ops still exists")
	}
	if n := cfg.ACLNode("/vms", false); n != nil && len(n.Groups) > 0 {
		t.Errorf("ACL of /vms still has groups: %v", n.Groups)
	}
	if r := h.Do("root@pam", "GET", "/access/groups/ops", nil); r.Status != 500 {
		t.Errorf("read after delete: %d %q", r.Status, r.Message)
	}
}
