package access

import (
	"slices"
	"sort"
)

// privTier lists the privileges of one category split into PVE's tiers:
// root (only Administrator), admin, user and audit.
type privTier struct {
	category                 string
	root, admin, user, audit []string
}

// privTiers is PVE 9's privilege table. Built-in roles derive from it (see
// buildRoles); Permissions.Modify belongs to no category.
var privTiers = []privTier{
	{category: "VM",
		admin: []string{"VM.Allocate", "VM.Clone", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.HWType",
			"VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.GuestAgent.Unrestricted",
			"VM.Migrate", "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback"},
		user: []string{"VM.Backup", "VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console",
			"VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"},
		audit: []string{"VM.Audit", "VM.GuestAgent.Audit"}},
	{category: "Sys",
		root:  []string{"Sys.AccessNetwork", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt"},
		admin: []string{"Sys.Console", "Sys.Syslog"},
		audit: []string{"Sys.Audit"}},
	{category: "Datastore",
		admin: []string{"Datastore.Allocate", "Datastore.AllocateTemplate"},
		user:  []string{"Datastore.AllocateSpace"},
		audit: []string{"Datastore.Audit"}},
	{category: "SDN",
		admin: []string{"SDN.Allocate", "SDN.Audit"},
		user:  []string{"SDN.Use"},
		audit: []string{"SDN.Audit"}},
	{category: "User",
		root:  []string{"Realm.Allocate"},
		admin: []string{"Group.Allocate", "Realm.AllocateUser", "User.Modify"}},
	{category: "Pool",
		admin: []string{"Pool.Allocate"},
		user:  []string{"Pool.Audit"},
		audit: []string{"Pool.Audit"}},
	{category: "Mapping",
		admin: []string{"Mapping.Modify"},
		user:  []string{"Mapping.Use"},
		audit: []string{"Mapping.Audit"}},
}

// Role names with special meaning.
const (
	// RoleAdministrator holds every privilege.
	RoleAdministrator = "Administrator"
	// RoleNoAccess holds none and, when effective, cancels every other role.
	RoleNoAccess = "NoAccess"
)

// RootUser is the superuser, who always has every privilege.
const RootUser = "root@pam"

// privileges and builtinRoles are immutable after package initialisation.
var (
	privileges   = buildPrivileges()
	privilegeSet = toSet(privileges)
	builtinRoles = buildRoles()
)

func buildPrivileges() []string {
	set := map[string]bool{"Permissions.Modify": true}
	for _, c := range privTiers {
		for _, l := range [][]string{c.root, c.admin, c.user, c.audit} {
			for _, p := range l {
				set[p] = true
			}
		}
	}
	return sortedKeys(set)
}

// buildRoles derives the built-in roles: PVE<Cat>Admin = admin+user+audit,
// PVE<Cat>User = user+audit (when the user tier is not empty), PVEAuditor =
// every audit tier, PVEAdmin = every admin+user+audit tier without
// Mapping.Modify, PVETemplateUser = VM.Audit+VM.Clone, Administrator = all,
// NoAccess = none.
func buildRoles() map[string][]string {
	sets := map[string]map[string]bool{
		RoleNoAccess:      {},
		RoleAdministrator: toSet(privileges),
		"PVEAdmin":        {},
		"PVEAuditor":      {},
		"PVETemplateUser": {"VM.Audit": true, "VM.Clone": true},
	}
	for _, c := range privTiers {
		admin := map[string]bool{}
		for _, l := range [][]string{c.admin, c.user, c.audit} {
			for _, p := range l {
				admin[p] = true
				sets["PVEAdmin"][p] = true
			}
		}
		sets["PVE"+c.category+"Admin"] = admin
		if len(c.user) > 0 {
			user := map[string]bool{}
			for _, l := range [][]string{c.user, c.audit} {
				for _, p := range l {
					user[p] = true
				}
			}
			sets["PVE"+c.category+"User"] = user
		}
		for _, p := range c.audit {
			sets["PVEAuditor"][p] = true
		}
	}
	delete(sets["PVEAdmin"], "Mapping.Modify")
	roles := make(map[string][]string, len(sets))
	for name, s := range sets {
		roles[name] = sortedKeys(s)
	}
	return roles
}

// Privileges returns the names of all known privileges, sorted.
func Privileges() []string { return slices.Clone(privileges) }

// ValidPrivilege reports whether name is a known privilege.
func ValidPrivilege(name string) bool { return privilegeSet[name] }

// BuiltinRoles returns the names of the built-in roles, sorted.
func BuiltinRoles() []string {
	names := make([]string, 0, len(builtinRoles))
	for n := range builtinRoles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsBuiltinRole reports whether name is a built-in role, which cannot be
// changed and is never written to user.cfg.
func IsBuiltinRole(name string) bool {
	_, ok := builtinRoles[name]
	return ok
}

// BuiltinRolePrivileges returns the sorted privileges of a built-in role, or
// nil if name is not one.
func BuiltinRolePrivileges(name string) []string {
	p, ok := builtinRoles[name]
	if !ok {
		return nil
	}
	return slices.Clone(p)
}

func toSet(l []string) map[string]bool {
	s := make(map[string]bool, len(l))
	for _, v := range l {
		s[v] = true
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
