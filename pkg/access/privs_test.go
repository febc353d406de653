package access

import (
	"slices"
	"strings"
	"testing"
)

// The tables below are copied from the reference (PVE 9 privileges and
// built-in roles), independently of the tier table the code derives them
// from.
const wantPrivileges = `Datastore.Allocate Datastore.AllocateSpace Datastore.AllocateTemplate
Datastore.Audit Group.Allocate Mapping.Audit Mapping.Modify Mapping.Use
Permissions.Modify Pool.Allocate Pool.Audit Realm.Allocate
Realm.AllocateUser SDN.Allocate SDN.Audit SDN.Use Sys.AccessNetwork
Sys.Audit Sys.Console Sys.Incoming Sys.Modify Sys.PowerMgmt
Sys.Syslog User.Modify VM.Allocate VM.Audit VM.Backup VM.Clone
VM.Config.CDROM VM.Config.CPU VM.Config.Cloudinit VM.Config.Disk
VM.Config.HWType VM.Config.Memory VM.Config.Network VM.Config.Options
VM.Console VM.GuestAgent.Audit VM.GuestAgent.FileRead
VM.GuestAgent.FileSystemMgmt VM.GuestAgent.FileWrite
VM.GuestAgent.Unrestricted VM.Migrate VM.PowerMgmt VM.Replicate
VM.Snapshot VM.Snapshot.Rollback`

var wantRoles = map[string]string{
	"NoAccess":          "",
	"PVEAuditor":        "Datastore.Audit Mapping.Audit Pool.Audit SDN.Audit Sys.Audit VM.Audit VM.GuestAgent.Audit",
	"PVEVMAdmin":        "VM.Allocate VM.Audit VM.Backup VM.Clone VM.Config.CDROM VM.Config.CPU VM.Config.Cloudinit VM.Config.Disk VM.Config.HWType VM.Config.Memory VM.Config.Network VM.Config.Options VM.Console VM.GuestAgent.Audit VM.GuestAgent.FileRead VM.GuestAgent.FileSystemMgmt VM.GuestAgent.FileWrite VM.GuestAgent.Unrestricted VM.Migrate VM.PowerMgmt VM.Replicate VM.Snapshot VM.Snapshot.Rollback",
	"PVEVMUser":         "VM.Audit VM.Backup VM.Config.CDROM VM.Config.Cloudinit VM.Console VM.GuestAgent.Audit VM.GuestAgent.FileRead VM.GuestAgent.FileSystemMgmt VM.GuestAgent.FileWrite VM.PowerMgmt",
	"PVETemplateUser":   "VM.Audit VM.Clone",
	"PVEDatastoreAdmin": "Datastore.Allocate Datastore.AllocateSpace Datastore.AllocateTemplate Datastore.Audit",
	"PVEDatastoreUser":  "Datastore.AllocateSpace Datastore.Audit",
	"PVESysAdmin":       "Sys.Audit Sys.Console Sys.Syslog",
	"PVEUserAdmin":      "Group.Allocate Realm.AllocateUser User.Modify",
	"PVEPoolAdmin":      "Pool.Allocate Pool.Audit",
	"PVEPoolUser":       "Pool.Audit",
	"PVESDNAdmin":       "SDN.Allocate SDN.Audit SDN.Use",
	"PVESDNUser":        "SDN.Audit SDN.Use",
	"PVEMappingAdmin":   "Mapping.Audit Mapping.Modify Mapping.Use",
	"PVEMappingUser":    "Mapping.Audit Mapping.Use",
}

func TestPrivileges(t *testing.T) {
	want := strings.Fields(wantPrivileges)
	if got := Privileges(); !slices.Equal(got, want) {
		t.Errorf("Privileges() = %v\nwant %v", got, want)
	}
	if len(want) != 47 {
		t.Fatalf("reference list has %d names; want 47", len(want))
	}
	if ValidPrivilege("VM.Monitor") || !ValidPrivilege("VM.Replicate") {
		t.Error("ValidPrivilege disagrees with PVE 9")
	}
}

func TestBuiltinRoles(t *testing.T) {
	all := strings.Fields(wantPrivileges)
	want := map[string][]string{"Administrator": all}
	for name, privs := range wantRoles {
		want[name] = strings.Fields(privs)
	}
	// PVEAdmin: everything except the root-only privileges,
	// Permissions.Modify and Mapping.Modify
	excluded := []string{"Permissions.Modify", "Realm.Allocate", "Sys.AccessNetwork", "Sys.Incoming",
		"Sys.Modify", "Sys.PowerMgmt", "Mapping.Modify"}
	for _, p := range all {
		if !slices.Contains(excluded, p) {
			want["PVEAdmin"] = append(want["PVEAdmin"], p)
		}
	}
	if got := BuiltinRoles(); len(got) != len(want) {
		t.Errorf("BuiltinRoles() = %v; want %d roles", got, len(want))
	}
	for name, privs := range want {
		if got := BuiltinRolePrivileges(name); !slices.Equal(got, privs) && !(len(got) == 0 && len(privs) == 0) {
			t.Errorf("role %s = %v\nwant %v", name, got, privs)
		}
		if !IsBuiltinRole(name) {
			t.Errorf("IsBuiltinRole(%q) = false", name)
		}
	}
	for _, name := range []string{"PVESysUser", "PVEUserUser", "Custom"} {
		if IsBuiltinRole(name) {
			t.Errorf("IsBuiltinRole(%q) = true", name)
		}
	}
	// the tables are immutable from outside
	p := BuiltinRolePrivileges("PVEAuditor")
	p[0] = "X"
	if BuiltinRolePrivileges("PVEAuditor")[0] == "X" {
		t.Error("BuiltinRolePrivileges exposes the table")
	}
}
