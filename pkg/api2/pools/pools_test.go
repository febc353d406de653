package pools_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/api/apitest"
)

// fixtureUserCfg has pools at three levels and users with different rights:
// alice administers every pool, guest and storage; bob audits lab and its
// sub-pools; dave administers lab only; erin administers lab and every
// guest; carol has nothing.
const fixtureUserCfg = `user:alice@pve:1:0::::::
user:bob@pve:1:0::::::
user:carol@pve:1:0::::::
user:dave@pve:1:0::::::
user:erin@pve:1:0::::::

pool:empty::::
pool:lab:Lab pool:100,101,999:local,nfs1:
pool:lab/sub::::
pool:prod:Production:200::

acl:1:/pool:alice@pve:PVEPoolAdmin:
acl:1:/pool/empty:bob@pve:PVEPoolUser:
acl:1:/pool/lab:bob@pve:PVEPoolUser:
acl:1:/pool/lab:dave@pve,erin@pve:PVEPoolAdmin:
acl:1:/storage:alice@pve:PVEDatastoreAdmin:
acl:1:/vms:alice@pve,erin@pve:PVEVMAdmin:
`

const fixtureStorageCfg = `dir: local
	path /var/lib/vz
	content iso,vztmpl,backup

# a shared storage on two other nodes
nfs: nfs1
	server 10.0.0.1
	export /srv
	path /mnt/pve/nfs1
	content images,iso
	nodes n3,n2

lvmthin: local-lvm
	thinpool data
	vgname pve
`

// fixtureFiles: guest 100 (qemu on n1), 101 (lxc on n2) and 200 (qemu on
// n1) exist; 999, in pool lab, does not.
func fixtureFiles() map[string]string {
	return map[string]string{
		"storage.cfg":                   fixtureStorageCfg,
		"nodes/n1/qemu-server/100.conf": "memory: 512\n",
		"nodes/n2/lxc/101.conf":         "memory: 512\n",
		"nodes/n1/qemu-server/200.conf": "memory: 512\n",
	}
}

func newFixture(t *testing.T) *harness {
	return newHarness(t, fixtureUserCfg, fixtureFiles())
}

const fixturePoolLines = `pool:empty::::
pool:lab:Lab pool:100,101,999:local,nfs1:
pool:lab/sub::::
pool:prod:Production:200::`

// jsonEqual fails unless got and want are the same JSON value.
func jsonEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("decode want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("data = %s\nwant %s", got, want)
	}
}

// expect checks an answer's status and, for errors, its message.
func expect(t *testing.T, r apitest.Reply, status int, msg string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d (%q %v); want %d", r.Status, r.Message, r.Errors, status)
	}
	if status >= 400 && msg != "" && r.Message != msg {
		t.Errorf("message %q; want %q", r.Message, msg)
	}
}

const (
	vm100   = `{"id":"qemu/100","vmid":100,"node":"n1","type":"qemu","status":"unknown"}`
	ct101   = `{"id":"lxc/101","vmid":101,"node":"n2","type":"lxc","status":"unknown"}`
	stLocal = `{"id":"storage/n1/local","storage":"local","node":"n1","type":"storage","plugintype":"dir","status":"unknown","shared":0,"content":"backup,iso,vztmpl"}`
	stNFS   = `{"id":"storage/n2/nfs1","storage":"nfs1","node":"n2","type":"storage","plugintype":"nfs","status":"unknown","shared":1,"content":"images,iso"}`
)

func TestIndex(t *testing.T) {
	h := newFixture(t)
	all := `[{"poolid":"empty"},{"poolid":"lab","comment":"Lab pool"},{"poolid":"lab/sub"},{"poolid":"prod","comment":"Production"}]`
	for _, tc := range []struct {
		name, user string
		params     url.Values
		status     int
		msg, want  string
	}{
		{"root lists all", "root@pam", nil, 200, "", all},
		{"pool admin lists all", "alice@pve", nil, 200, "", all},
		{"auditor lists audited", "bob@pve", nil, 200, "", `[{"poolid":"empty"},{"poolid":"lab","comment":"Lab pool"},{"poolid":"lab/sub"}]`},
		{"no rights lists none", "carol@pve", nil, 200, "", `[]`},
		{"poolid 0 is Perl-false", "root@pam", vals("poolid", "0"), 200, "", all},
		{"one pool", "root@pam", vals("poolid", "lab"), 200, "",
			`[{"poolid":"lab","comment":"Lab pool","members":[` + vm100 + `,` + ct101 + `,` + stLocal + `,` + stNFS + `]}]`},
		{"audited pool", "bob@pve", vals("poolid", "lab"), 200, "",
			`[{"poolid":"lab","comment":"Lab pool","members":[` + vm100 + `,` + ct101 + `,` + stLocal + `,` + stNFS + `]}]`},
		{"nested pool", "bob@pve", vals("poolid", "lab/sub"), 200, "", `[{"poolid":"lab/sub","members":[]}]`},
		{"type qemu", "root@pam", vals("poolid", "lab", "type", "qemu"), 200, "", `[{"poolid":"lab","comment":"Lab pool","members":[` + vm100 + `]}]`},
		{"type lxc", "root@pam", vals("poolid", "lab", "type", "lxc"), 200, "", `[{"poolid":"lab","comment":"Lab pool","members":[` + ct101 + `]}]`},
		{"type storage", "root@pam", vals("poolid", "lab", "type", "storage"), 200, "",
			`[{"poolid":"lab","comment":"Lab pool","members":[` + stLocal + `,` + stNFS + `]}]`},
		{"unknown pool", "root@pam", vals("poolid", "nope"), 500, "pool 'nope' does not exist\n", ""},
		{"not audited", "bob@pve", vals("poolid", "prod"), 403, "Permission check failed (/pool/prod, Pool.Audit)\n", ""},
		{"no rights", "carol@pve", vals("poolid", "lab"), 403, "Permission check failed (/pool/lab, Pool.Audit)\n", ""},
		{"type needs poolid", "root@pam", vals("type", "qemu"), 400, "Parameter verification failed.\n", ""},
		{"bad type", "root@pam", vals("poolid", "lab", "type", "openvz"), 400, "Parameter verification failed.\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Do(tc.user, http.MethodGet, "/pools", tc.params)
			expect(t, r, tc.status, tc.msg)
			if tc.want != "" {
				jsonEqual(t, r.Data, tc.want)
			}
		})
	}
	r := h.Do("root@pam", http.MethodGet, "/pools", vals("type", "qemu"))
	if want := "missing property - 'type' requires this property"; r.Errors["poolid"] != want {
		t.Errorf("errors %v; want poolid: %q", r.Errors, want)
	}
}

func TestReadPoolDeprecated(t *testing.T) {
	h := newFixture(t)
	r := h.Do("bob@pve", http.MethodGet, "/pools/lab", vals("type", "lxc"))
	expect(t, r, 200, "")
	// PVE answers the index entry, poolid included
	jsonEqual(t, r.Data, `{"poolid":"lab","comment":"Lab pool","members":[`+ct101+`]}`)

	r = h.Do("root@pam", http.MethodGet, "/pools/empty", nil)
	expect(t, r, 200, "")
	jsonEqual(t, r.Data, `{"poolid":"empty","members":[]}`)

	expect(t, h.Do("carol@pve", http.MethodGet, "/pools/lab", nil), 403, "Permission check failed (/pool/lab, Pool.Audit)\n")
	expect(t, h.Do("root@pam", http.MethodGet, "/pools/nope", nil), 500, "pool 'nope' does not exist\n")
}

func TestMembersWithoutStorageCfg(t *testing.T) {
	// without storage.cfg PVE still has its implicit "local" dir storage,
	// with every node and its full content list
	h := newHarness(t, "pool:p::100:local,other:\n", map[string]string{
		"nodes/n1/qemu-server/100.conf":  "",
		"nodes/n1/qemu-server/0100.conf": "", // not a config name
	})
	r := h.Do("root@pam", http.MethodGet, "/pools", vals("poolid", "p"))
	expect(t, r, 200, "")
	jsonEqual(t, r.Data, `[{"poolid":"p","members":[`+vm100+`,{"id":"storage/n1/local","storage":"local","node":"n1","type":"storage","plugintype":"dir","status":"unknown","shared":0,"content":"backup,images,iso,rootdir,snippets,vztmpl"}]}]`)
}

func TestCreate(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		params     url.Values
		status     int
		msg        string
		lines      string // pool lines afterwards
	}{
		{"top level", "root@pam", vals("poolid", "new"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:new::::\npool:prod:Production:200::"},
		{"comment encoded", "alice@pve", vals("poolid", "new", "comment", "a: 100% ok"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:new:a%3A 100%25 ok:::\npool:prod:Production:200::"},
		{"comment 0 is unset", "root@pam", vals("poolid", "new", "comment", "0"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:new::::\npool:prod:Production:200::"},
		{"nested", "root@pam", vals("poolid", "lab/x"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:lab/x::::\npool:prod:Production:200::"},
		{"third level", "root@pam", vals("poolid", "lab/sub/deep"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:lab/sub/deep::::\npool:prod:Production:200::"},
		{"sub-pool by a pool's admin", "dave@pve", vals("poolid", "lab/x"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:lab/x::::\npool:prod:Production:200::"},
		{"exists", "root@pam", vals("poolid", "lab"), 500, "create pool failed: pool 'lab' already exists\n", fixturePoolLines},
		{"nested exists", "root@pam", vals("poolid", "lab/sub"), 500, "create pool failed: pool 'lab/sub' already exists\n", fixturePoolLines},
		{"no parent", "root@pam", vals("poolid", "nope/x"), 500, "create pool failed: parent 'nope' of pool 'nope/x' does not exist\n", fixturePoolLines},
		{"no grandparent", "root@pam", vals("poolid", "lab/nope/x"), 500, "create pool failed: parent 'lab/nope' of pool 'lab/nope/x' does not exist\n", fixturePoolLines},
		{"digit first", "root@pam", vals("poolid", "1abc"), 500, "create pool failed: pool name must start with a letter\n", fixturePoolLines},
		{"nested digit first", "root@pam", vals("poolid", "lab/_x"), 500, "create pool failed: pool name must start with a letter\n", fixturePoolLines},
		{"too deep", "root@pam", vals("poolid", "lab/sub/deep/x"), 400, "Parameter verification failed.\n", fixturePoolLines},
		{"bad characters", "root@pam", vals("poolid", "a b"), 400, "Parameter verification failed.\n", fixturePoolLines},
		{"missing poolid", "root@pam", nil, 400, "Parameter verification failed.\n", fixturePoolLines},
		{"no rights", "carol@pve", vals("poolid", "new"), 403, "Permission check failed (/pool/new, Pool.Allocate)\n", fixturePoolLines},
		{"auditor", "bob@pve", vals("poolid", "lab/x"), 403, "Permission check failed (/pool/lab/x, Pool.Allocate)\n", fixturePoolLines},
		{"other pool's admin", "dave@pve", vals("poolid", "new"), 403, "Permission check failed (/pool/new, Pool.Allocate)\n", fixturePoolLines},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFixture(t)
			expect(t, h.Do(tc.user, http.MethodPost, "/pools", tc.params), tc.status, tc.msg)
			if got := h.poolLines(); got != tc.lines {
				t.Errorf("pool lines:\n%s\nwant\n%s", got, tc.lines)
			}
		})
	}
	t.Run("bad name errors", func(t *testing.T) {
		h := newFixture(t)
		r := h.Do("root@pam", http.MethodPost, "/pools", vals("poolid", "a b"))
		if want := "invalid format - pool name 'a b' contains invalid characters"; r.Errors["poolid"] != want {
			t.Errorf("errors %v; want poolid: %q", r.Errors, want)
		}
	})
	t.Run("visible at once", func(t *testing.T) {
		h := newFixture(t)
		h.Do("root@pam", http.MethodGet, "/pools", nil) // load the cache
		expect(t, h.Do("root@pam", http.MethodPost, "/pools", vals("poolid", "new", "comment", "c")), 200, "")
		r := h.Do("root@pam", http.MethodGet, "/pools", vals("poolid", "new"))
		expect(t, r, 200, "")
		jsonEqual(t, r.Data, `[{"poolid":"new","comment":"c","members":[]}]`)
	})
}

func TestUpdate(t *testing.T) {
	const (
		put     = "/pools"
		failed  = "update pools failed: "
		unchged = fixturePoolLines
	)
	for _, tc := range []struct {
		name, user, path string
		params           url.Values
		status           int
		msg              string
		lines            string
	}{
		{"comment", "root@pam", put, vals("poolid", "prod", "comment", "live: yes"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:live%3A yes:200::"},
		{"comment cleared", "root@pam", put, vals("poolid", "prod", "comment", ""), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod::200::"},
		{"add guests, sorted as strings", "root@pam", put, vals("poolid", "prod", "vms", "1000;300 250"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:1000,200,250,300::"},
		{"add a guest that does not exist", "root@pam", put, vals("poolid", "empty", "vms", "4242"), 200, "",
			"pool:empty::4242::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:200::"},
		{"add storage", "alice@pve", put, vals("poolid", "prod", "storage", "local-lvm,local"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:200:local,local-lvm:"},
		{"add storage not in storage.cfg", "root@pam", put, vals("poolid", "prod", "storage", "ghost"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:200:ghost:"},
		{"nested pool", "root@pam", put, vals("poolid", "lab/sub", "vms", "300", "storage", "local-lvm"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::300:local-lvm:\npool:prod:Production:200::"},
		{"remove guest and storage", "root@pam", put, vals("poolid", "lab", "vms", "999,100", "storage", "nfs1", "delete", "1"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:101:local:\npool:lab/sub::::\npool:prod:Production:200::"},
		{"move", "root@pam", put, vals("poolid", "prod", "vms", "100", "allow-move", "1"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:100,200::"},
		{"move by admin of both", "alice@pve", put, vals("poolid", "lab", "vms", "200", "allow-move", "1"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,200,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:::"},
		{"deprecated path", "root@pam", "/pools/prod", vals("vms", "300", "comment", "x"), 200, "",
			"pool:empty::::\npool:lab:Lab pool:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:x:200,300::"},
		{"comment only by a pool's admin", "dave@pve", put, vals("poolid", "lab", "comment", "mine"), 200, "",
			"pool:empty::::\npool:lab:mine:100,101,999:local,nfs1:\npool:lab/sub::::\npool:prod:Production:200::"},

		{"unknown pool", "root@pam", put, vals("poolid", "nope", "comment", "x"), 500, failed + "pool 'nope' does not exist\n", unchged},
		{"in another pool", "root@pam", put, vals("poolid", "prod", "vms", "100"), 500,
			failed + "VM 100 belongs already to pool 'lab' and 'allow-move' is not set\n", unchged},
		{"all or nothing", "root@pam", put, vals("poolid", "prod", "comment", "x", "vms", "300,100"), 500,
			failed + "VM 100 belongs already to pool 'lab' and 'allow-move' is not set\n", unchged},
		{"already a member", "root@pam", put, vals("poolid", "prod", "vms", "200"), 500, failed + "VM 200 is already a pool member\n", unchged},
		{"listed twice", "root@pam", put, vals("poolid", "prod", "vms", "300,300"), 500, failed + "VM 300 is already a pool member\n", unchged},
		{"remove a non-member", "root@pam", put, vals("poolid", "prod", "vms", "100", "delete", "1"), 500, failed + "VM 100 is not a pool member\n", unchged},
		{"storage already a member", "root@pam", put, vals("poolid", "lab", "storage", "local"), 500,
			failed + "Storage 'local' is already a pool member\n", unchged},
		{"remove a non-member storage", "root@pam", put, vals("poolid", "lab", "storage", "local-lvm", "delete", "1"), 500,
			failed + "Storage 'local-lvm' is not a pool member\n", unchged},
		{"no VM.Allocate", "dave@pve", put, vals("poolid", "lab", "vms", "300"), 500,
			failed + "403 Permission check failed (/vms/300, Permissions.Modify|VM.Allocate)\n", unchged},
		{"no Datastore.Allocate", "dave@pve", put, vals("poolid", "lab", "storage", "local-lvm"), 500,
			failed + "403 Permission check failed (/storage/local-lvm, Permissions.Modify|Datastore.Allocate)\n", unchged},
		{"move without Pool.Allocate on the old pool", "erin@pve", put, vals("poolid", "lab", "vms", "200", "allow-move", "1"), 500,
			failed + "403 Permission check failed (/pool/prod, Pool.Allocate)\n", unchged},
		{"not the pool's admin", "dave@pve", put, vals("poolid", "prod", "comment", "x"), 403, "Permission check failed (/pool/prod, Pool.Allocate)\n", unchged},
		{"auditor", "bob@pve", put, vals("poolid", "lab", "comment", "x"), 403, "Permission check failed (/pool/lab, Pool.Allocate)\n", unchged},
		{"deprecated path refused", "carol@pve", "/pools/prod", vals("comment", "x"), 403, "Permission check failed (/pool/prod, Pool.Allocate)\n", unchged},
		{"bad vmid", "root@pam", put, vals("poolid", "prod", "vms", "100,abc"), 400, "Parameter verification failed.\n", unchged},
		{"bad storage id", "root@pam", put, vals("poolid", "prod", "storage", "a b,1x"), 400, "Parameter verification failed.\n", unchged},
		{"bad boolean", "root@pam", put, vals("poolid", "prod", "delete", "yes"), 400, "Parameter verification failed.\n", unchged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFixture(t)
			expect(t, h.Do(tc.user, http.MethodPut, tc.path, tc.params), tc.status, tc.msg)
			if got := h.poolLines(); got != tc.lines {
				t.Errorf("pool lines:\n%s\nwant\n%s", got, tc.lines)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	const failed = "delete pool failed: "
	// extra pools: gone holds only members that no longer exist; strs
	// holds an existing guest sorting after another as a number but
	// before it as a string; loc holds only the implicit local storage.
	userCfg := strings.Replace(fixtureUserCfg, "pool:empty::::\n", "pool:empty::::\npool:gone::4242:ghost:\n", 1)
	userCfg = strings.Replace(userCfg, "pool:prod:Production:200::\n", "pool:prod:Production:200::\npool:strs::1000,300::\n", 1)
	files := fixtureFiles()
	files["nodes/n1/qemu-server/300.conf"] = ""
	files["nodes/n2/lxc/1000.conf"] = ""
	for _, tc := range []struct {
		name, user, path string
		params           url.Values
		status           int
		msg              string
		removed          string // the pool line that goes
	}{
		{"empty", "alice@pve", "/pools", vals("poolid", "empty"), 200, "", "pool:empty::::"},
		{"nested", "root@pam", "/pools", vals("poolid", "lab/sub"), 200, "", "pool:lab/sub::::"},
		{"members that do not exist", "root@pam", "/pools", vals("poolid", "gone"), 200, "", "pool:gone::4242:ghost:"},
		{"deprecated path", "root@pam", "/pools/empty", nil, 200, "", "pool:empty::::"},
		{"sub-pool", "root@pam", "/pools", vals("poolid", "lab"), 500, failed + "pool 'lab' is not empty (contains pool 'lab/sub')\n", ""},
		{"guest", "root@pam", "/pools", vals("poolid", "prod"), 500, failed + "pool 'prod' is not empty (contains VM 200)\n", ""},
		{"guests in string order", "root@pam", "/pools", vals("poolid", "strs"), 500, failed + "pool 'strs' is not empty (contains VM 1000)\n", ""},
		{"unknown pool", "root@pam", "/pools", vals("poolid", "nope"), 500, failed + "pool 'nope' does not exist\n", ""},
		{"auditor", "bob@pve", "/pools", vals("poolid", "empty"), 403, "Permission check failed (/pool/empty, Pool.Allocate)\n", ""},
		{"deprecated path refused", "dave@pve", "/pools/empty", nil, 403, "Permission check failed (/pool/empty, Pool.Allocate)\n", ""},
		{"missing poolid", "root@pam", "/pools", nil, 400, "Parameter verification failed.\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, userCfg, files)
			before := h.poolLines() + "\n"
			expect(t, h.Do(tc.user, http.MethodDelete, tc.path, tc.params), tc.status, tc.msg)
			want := before
			if tc.removed != "" {
				want = strings.Replace(before, tc.removed+"\n", "", 1)
			}
			if got := h.poolLines() + "\n"; got != want {
				t.Errorf("pool lines:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestDeleteStorageMember(t *testing.T) {
	// "local" exists without storage.cfg, so it keeps the pool
	h := newHarness(t, "pool:loc:::local:\n", nil)
	expect(t, h.Do("root@pam", http.MethodDelete, "/pools", vals("poolid", "loc")), 500,
		"delete pool failed: pool 'loc' is not empty (contains storage 'local')\n")
}

// TestDeleteACL checks the whole user.cfg after deletes: the ACL of a
// top-level pool goes with it; that of a nested pool stays, as in PVE.
func TestDeleteACL(t *testing.T) {
	h := newHarness(t, `user:bob@pve:1:0::::::

pool:a::::
pool:a/b::::
pool:c::::

acl:1:/pool/a/b:bob@pve:PVEPoolUser:
acl:1:/pool/c:bob@pve:PVEPoolUser:
acl:0:/pool/c/x:bob@pve:PVEAuditor:
acl:1:/vms:bob@pve:PVEAuditor:
`, nil)
	for _, id := range []string{"c", "a/b"} {
		expect(t, h.Do("root@pam", http.MethodDelete, "/pools", vals("poolid", id)), 200, "")
	}
	want := `user:bob@pve:1:0::::::
user:root@pam:1:0:::root@localhost:::


pool:a::::


acl:1:/pool/a/b:bob@pve:PVEPoolUser:
acl:1:/vms:bob@pve:PVEAuditor:
`
	if got := h.File("user.cfg"); got != want {
		t.Errorf("user.cfg:\n%s\nwant\n%s", got, want)
	}
}
