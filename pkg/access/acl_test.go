package access

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func loadPerms(t *testing.T) *UserCfg {
	t.Helper()
	cfg, warns := ParseUserCfg("perms.cfg", readTestdata(t, "perms.cfg"))
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	return cfg
}

// roleSet returns the privileges of roles with one propagate flag.
func roleSet(prop bool, roles ...string) PrivSet {
	s := PrivSet{}
	for _, r := range roles {
		if r == RoleAdministrator {
			for _, p := range Privileges() {
				s[p] = prop
			}
			continue
		}
		for _, p := range BuiltinRolePrivileges(r) {
			s[p] = prop
		}
	}
	return s
}

func union(sets ...PrivSet) PrivSet {
	u := PrivSet{}
	for _, s := range sets {
		for p, v := range s {
			u[p] = u[p] || v
		}
	}
	return u
}

func intersect(a, b PrivSet) PrivSet {
	r := PrivSet{}
	for p, v := range a {
		if w, ok := b[p]; ok {
			r[p] = v && w
		}
	}
	return r
}

func TestPermissions(t *testing.T) {
	cfg := loadPerms(t)
	aliceVM100 := union(roleSet(true, "PVEVMUser"), PrivSet{"VM.Migrate": false})
	for _, tt := range []struct {
		name, authid, path string
		want               PrivSet
	}{
		{"root has everything", "root@pam", "/vms/12345", roleSet(true, RoleAdministrator)},
		{"group entry propagates", "bob@pve", "/vms/5", roleSet(true, "PVEAuditor")},
		{"user entry beats group entry", "alice@pve", "/nodes", roleSet(true, "PVESysAdmin")},
		{"group entry when no user entry", "bob@pve", "/nodes", roleSet(true, "PVEAdmin")},
		{"deeper level replaces", "alice@pve", "/nodes/n1", roleSet(true, "PVESysAdmin")},
		{"non-propagating applies on its path", "alice@pve", "/vms", roleSet(false, "PVEVMAdmin")},
		{"non-propagating skipped below", "alice@pve", "/vms/5", roleSet(true, "PVEAuditor")},
		{"NoAccess cancels", "bob@pve", "/storage/nfs", PrivSet{}},
		{"pool roles added non-propagating", "carol@pve", "/vms/101", roleSet(false, "PVEVMAdmin")},
		{"pool roles on pool storage", "carol@pve", "/storage/local", roleSet(false, "PVEVMAdmin")},
		{"no pool roles outside the pool", "carol@pve", "/vms/102", PrivSet{}},
		{"pool role already set keeps its flag", "alice@pve", "/vms/100", aliceVM100},
		{"normal NoAccess beats pool roles", "bob@pve", "/storage/local", PrivSet{}},
		{"pool NoAccess replaces normal roles", "dave@pve", "/vms/100", PrivSet{}},
		{"pool NoAccess only on members", "dave@pve", "/vms/102", roleSet(true, "PVEAuditor")},
		{"pool path itself", "carol@pve", "/pool/lab", roleSet(true, "PVEVMAdmin")},
		{"token without privsep has owner's privileges", "alice@pve!full", "/vms/100", aliceVM100},
		{"privsep token: own ACL intersected with owner", "alice@pve!sep", "/vms/100",
			intersect(roleSet(true, "PVEVMAdmin"), aliceVM100)},
		{"privsep token: no group entries", "alice@pve!sep", "/", PrivSet{}},
		{"privsep root token is not intersected", "root@pam!sep", "/storage/nfs", roleSet(true, "PVEDatastoreUser")},
		{"unknown token", "alice@pve!nope", "/", PrivSet{}},
		{"malformed id", "alice", "/", PrivSet{}},
		{"unknown user gets nothing here", "zed@pve", "/", PrivSet{}},
		{"path normalised", "alice@pve", "//nodes/", roleSet(true, "PVESysAdmin")},
		{"invalid path", "alice@pve", "/nodes/x y", PrivSet{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := cfg.Permissions(tt.authid, tt.path)
			if !maps.Equal(got, tt.want) {
				t.Errorf("Permissions(%s, %s) =\n%v\nwant\n%v", tt.authid, tt.path, flagList(got), flagList(tt.want))
			}
		})
	}
}

func TestCheckPrivs(t *testing.T) {
	cfg := loadPerms(t)
	for _, tt := range []struct {
		name  string
		privs []string
		anyOf bool
		want  bool
	}{
		{"all held", []string{"VM.Audit", "VM.Console"}, false, true},
		{"one missing", []string{"VM.Audit", "VM.Allocate"}, false, false},
		{"any held", []string{"VM.Allocate", "VM.Console"}, true, true},
		{"none held", []string{"VM.Allocate", "Sys.Modify"}, true, false},
		{"empty all", nil, false, true},
		{"empty any", nil, true, false},
		{"unknown privilege", []string{"VM.Monitor"}, false, false},
	} {
		if got := cfg.CheckPrivs("alice@pve", "/vms/100", tt.privs, tt.anyOf); got != tt.want {
			t.Errorf("%s: CheckPrivs(%v, any=%v) = %v; want %v", tt.name, tt.privs, tt.anyOf, got, tt.want)
		}
	}
}

func TestPermissionsTree(t *testing.T) {
	cfg := loadPerms(t)
	tree := cfg.PermissionsTree("bob@pve")
	wantPaths := []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/pool/lab", "/sdn", "/vms", "/vms/100", "/vms/101"}
	if got := slices.Sorted(maps.Keys(tree)); !slices.Equal(got, wantPaths) {
		t.Errorf("paths = %v; want %v (NoAccess paths left out)", got, wantPaths)
	}
	if got := tree["/vms/101"]; got["Datastore.AllocateSpace"] != 0 || got["VM.Audit"] != 1 {
		t.Errorf("/vms/101 = %v; want pool role with flag 0 and propagated role with flag 1", got)
	}
	if got := tree["/nodes"]; len(got) != len(roleSet(true, "PVEAdmin")) || got["Sys.Console"] != 1 {
		t.Errorf("/nodes = %v", got)
	}
	// the token's propagating role meets the owner's non-propagating one
	if got, want := cfg.PermissionsTree("alice@pve!sep")["/vms"], roleSet(false, "PVEVMAdmin").Flags(); !maps.Equal(got, want) {
		t.Errorf("token tree /vms = %v; want %v", got, want)
	}
}

func TestCaps(t *testing.T) {
	cfg, _ := ParseUserCfg("user.cfg", []byte(strings.Join([]string{
		"user:u@pve:1:0::::::",
		"acl:1:/:u@pve:PVEAuditor:",
		"acl:1:/access:u@pve:PVEUserAdmin:",
		"acl:1:/pool/p:u@pve:PVEDatastoreAdmin:",
	}, "\n")))
	set := func(privs ...string) map[string]int {
		m := map[string]int{}
		for _, p := range privs {
			m[p] = 1
		}
		return m
	}
	want := map[string]map[string]int{
		"access":  set("Group.Allocate", "User.Modify"),
		"dc":      set("Sys.Audit", "SDN.Audit"),
		"mapping": set("Mapping.Audit"),
		"nodes":   set("Sys.Audit"),
		"sdn":     set("SDN.Audit"),
		"storage": set("Datastore.Audit", "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate"),
		"vms":     set("VM.Audit", "VM.GuestAgent.Audit"),
	}
	got := cfg.Caps("u@pve")
	for g := range want {
		if !maps.Equal(got[g], want[g]) {
			t.Errorf("cap %s = %v; want %v", g, slices.Sorted(maps.Keys(got[g])), slices.Sorted(maps.Keys(want[g])))
		}
	}
	if len(got) != len(want) {
		t.Errorf("cap groups = %v", slices.Sorted(maps.Keys(got)))
	}
	root := cfg.Caps("root@pam")
	for g, p := range map[string]string{"vms": "Permissions.Modify", "access": "Permissions.Modify", "dc": "Sys.Modify",
		"nodes": "Sys.PowerMgmt", "storage": "Datastore.Allocate", "sdn": "SDN.Use", "mapping": "Mapping.Modify"} {
		if root[g][p] != 1 {
			t.Errorf("root cap %s lacks %s", g, p)
		}
	}
	if root["dc"]["Sys.Console"] == 1 {
		t.Error("cap dc holds Sys.Console; only Sys.Audit, Sys.Modify and SDN.* belong there")
	}
}

func TestActive(t *testing.T) {
	cfg, _ := ParseUserCfg("user.cfg", []byte(strings.Join([]string{
		"user:on@pve:1:0::::::",
		"token:on@pve!ok:0:1::",
		"token:on@pve!old:1000:1::",
		"token:on@pve!later:3000:1::",
		"user:off@pve:0:0::::::",
		"token:off@pve!tk:0:1::",
		"user:gone@pve:1:1000::::::",
	}, "\n")))
	now := int64(2000)
	for _, tt := range []struct {
		id   string
		want string
	}{
		{"on@pve", ""},
		{"on@pve!ok", ""},
		{"on@pve!later", ""},
		{"on@pve!old", "token 'old' access expired"},
		{"on@pve!none", "no such token 'none' for user 'on@pve'"},
		{"off@pve", "user 'off@pve' is disabled"},
		{"off@pve!tk", "user 'off@pve' is disabled"},
		{"gone@pve", "user 'gone@pve' access expired"},
		{"who@pve", "no such user ('who@pve')"},
		{"x", "invalid user id"},
		{"root@pam", ""},
	} {
		err := cfg.Active(tt.id, now)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Active(%s) = %q; want %q", tt.id, got, tt.want)
		}
	}
}

func flagList(s PrivSet) string {
	var b strings.Builder
	for _, p := range s.Sorted() {
		b.WriteString(p)
		if s[p] {
			b.WriteString("=1 ")
		} else {
			b.WriteString("=0 ")
		}
	}
	return b.String()
}
