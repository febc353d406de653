package access

import (
	"context"
	"regexp"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

func (d Deps) roleMethods() []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/access/roles", HTTP: "GET",
			Description: "Role index.",
			Permissions: api.Permissions{User: "all"},
			Params:      map[string]*api.Schema{},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"privs":   api.Str().Fmt("pve-priv-list").Opt(),
				"roleid":  api.Str().Fmt("pve-roleid"),
				"special": api.Bool().Def(0).Opt(),
			})).WithLinks(api.Link{Href: "{roleid}", Rel: "child"}),
			Handle: d.roleIndex,
		},
		{
			Name: "create_role", Path: "/access/roles", HTTP: "POST",
			Description: "Create new role.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access", []any{"Sys.Modify"}}},
			Params: map[string]*api.Schema{
				"privs":  api.Str().Fmt("pve-priv-list").Opt().TT("<string>"),
				"roleid": api.Str().Fmt("pve-roleid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.createRole,
		},
		{
			Name: "delete_role", Path: "/access/roles/{roleid}", HTTP: "DELETE",
			Description: "Delete role.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access", []any{"Sys.Modify"}}},
			Params: map[string]*api.Schema{
				"roleid": api.Str().Fmt("pve-roleid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteRole,
		},
		{
			Name: "read_role", Path: "/access/roles/{roleid}", HTTP: "GET",
			Description: "Get role configuration.",
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"roleid": api.Str().Fmt("pve-roleid").TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"Datastore.Allocate":           api.Bool().Opt(),
				"Datastore.AllocateSpace":      api.Bool().Opt(),
				"Datastore.AllocateTemplate":   api.Bool().Opt(),
				"Datastore.Audit":              api.Bool().Opt(),
				"Group.Allocate":               api.Bool().Opt(),
				"Mapping.Audit":                api.Bool().Opt(),
				"Mapping.Modify":               api.Bool().Opt(),
				"Mapping.Use":                  api.Bool().Opt(),
				"Permissions.Modify":           api.Bool().Opt(),
				"Pool.Allocate":                api.Bool().Opt(),
				"Pool.Audit":                   api.Bool().Opt(),
				"Realm.Allocate":               api.Bool().Opt(),
				"Realm.AllocateUser":           api.Bool().Opt(),
				"SDN.Allocate":                 api.Bool().Opt(),
				"SDN.Audit":                    api.Bool().Opt(),
				"SDN.Use":                      api.Bool().Opt(),
				"Sys.AccessNetwork":            api.Bool().Opt(),
				"Sys.Audit":                    api.Bool().Opt(),
				"Sys.Console":                  api.Bool().Opt(),
				"Sys.Incoming":                 api.Bool().Opt(),
				"Sys.Modify":                   api.Bool().Opt(),
				"Sys.PowerMgmt":                api.Bool().Opt(),
				"Sys.Syslog":                   api.Bool().Opt(),
				"User.Modify":                  api.Bool().Opt(),
				"VM.Allocate":                  api.Bool().Opt(),
				"VM.Audit":                     api.Bool().Opt(),
				"VM.Backup":                    api.Bool().Opt(),
				"VM.Clone":                     api.Bool().Opt(),
				"VM.Config.CDROM":              api.Bool().Opt(),
				"VM.Config.CPU":                api.Bool().Opt(),
				"VM.Config.Cloudinit":          api.Bool().Opt(),
				"VM.Config.Disk":               api.Bool().Opt(),
				"VM.Config.HWType":             api.Bool().Opt(),
				"VM.Config.Memory":             api.Bool().Opt(),
				"VM.Config.Network":            api.Bool().Opt(),
				"VM.Config.Options":            api.Bool().Opt(),
				"VM.Console":                   api.Bool().Opt(),
				"VM.GuestAgent.Audit":          api.Bool().Opt(),
				"VM.GuestAgent.FileRead":       api.Bool().Opt(),
				"VM.GuestAgent.FileSystemMgmt": api.Bool().Opt(),
				"VM.GuestAgent.FileWrite":      api.Bool().Opt(),
				"VM.GuestAgent.Unrestricted":   api.Bool().Opt(),
				"VM.Migrate":                   api.Bool().Opt(),
				"VM.PowerMgmt":                 api.Bool().Opt(),
				"VM.Replicate":                 api.Bool().Opt(),
				"VM.Snapshot":                  api.Bool().Opt(),
				"VM.Snapshot.Rollback":         api.Bool().Opt(),
			}).Additional(false),
			Handle: d.readRole,
		},
		{
			Name: "update_role", Path: "/access/roles/{roleid}", HTTP: "PUT",
			Description: "Update an existing role.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access", []any{"Sys.Modify"}}},
			Params: map[string]*api.Schema{
				"append": api.Bool().Opt().Req("privs").TT("<boolean>"),
				"privs":  api.Str().Fmt("pve-priv-list").Opt().TT("<string>"),
				"roleid": api.Str().Fmt("pve-roleid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.updateRole,
		},
	}
}

// roleEntry is an item of GET /access/roles.
type roleEntry struct {
	RoleID  string `json:"roleid"`
	Privs   string `json:"privs"`
	Special int    `json:"special"`
}

func (d Deps) roleIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg := d.Access.UserCfg()
	res := make([]roleEntry, 0, len(cfg.Roles))
	for _, name := range sortedNames(cfg.Roles) {
		res = append(res, roleEntry{RoleID: name, Privs: strings.Join(cfg.Roles[name], ","), Special: roleSpecial(name)})
	}
	return res, nil
}

// reservedRoleRe matches role ids in the namespace of the built-in roles.
var reservedRoleRe = regexp.MustCompile(`(?i)^PVE`)

func (d Deps) createRole(ctx context.Context, r *api.Request) (any, error) {
	role := r.Params.Get("roleid")
	if reservedRoleRe.MatchString(role) {
		return nil, api.ParamError(map[string]string{
			"roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace",
		})
	}
	return nil, d.refresh(d.updateUserCfg(ctx, "create role failed", func(cfg *access.UserCfg) error {
		if _, ok := cfg.Roles[role]; ok {
			return die("role '%s' already exists", role)
		}
		cfg.Roles[role] = []string{}
		return addRolePrivs(cfg, role, r.Params.Get("privs"))
	}))
}

func (d Deps) updateRole(ctx context.Context, r *api.Request) (any, error) {
	role := r.Params.Get("roleid")
	if access.IsBuiltinRole(role) {
		return nil, die("auto-generated role '%s' cannot be modified", role)
	}
	return nil, d.refresh(d.updateUserCfg(ctx, "update role failed", func(cfg *access.UserCfg) error {
		if _, ok := cfg.Roles[role]; !ok {
			return die("role '%s' does not exist", role)
		}
		if !r.Params.Bool("append", false) {
			cfg.Roles[role] = []string{}
		}
		return addRolePrivs(cfg, role, r.Params.Get("privs"))
	}))
}

// addRolePrivs is PVE's add_role_privs: the privileges of the list are
// added to the role; an unknown one fails.
func addRolePrivs(cfg *access.UserCfg, role, privs string) error {
	if privs == "" || privs == "0" {
		return nil
	}
	set := map[string]bool{}
	for _, p := range cfg.Roles[role] {
		set[p] = true
	}
	for _, p := range access.SplitList(privs) {
		if !access.ValidPrivilege(p) {
			return die("invalid privilege '%s'", p)
		}
		set[p] = true
	}
	cfg.Roles[role] = sortedNames(set)
	return nil
}

func (d Deps) readRole(ctx context.Context, r *api.Request) (any, error) {
	role := r.Params.Get("roleid")
	privs, ok := d.Access.UserCfg().Roles[role]
	if !ok {
		return nil, die("role '%s' does not exist", role)
	}
	// PVE answers the role's privilege set: each name mapped to 1
	res := make(map[string]int, len(privs))
	for _, p := range privs {
		res[p] = 1
	}
	return res, nil
}

func (d Deps) deleteRole(ctx context.Context, r *api.Request) (any, error) {
	role := r.Params.Get("roleid")
	if access.IsBuiltinRole(role) {
		return nil, die("auto-generated role '%s' cannot be deleted", role)
	}
	// As in PVE, ACL entries naming the role stay in the file (they are
	// dropped when it is next read).
	return nil, d.refresh(d.updateUserCfg(ctx, "delete role failed", func(cfg *access.UserCfg) error {
		if _, ok := cfg.Roles[role]; !ok {
			return die("role '%s' does not exist", role)
		}
		delete(cfg.Roles, role)
		return nil
	}))
}

// roleSpecial is PVE's role_is_special: 1 for a built-in role, else 0.
func roleSpecial(name string) int {
	if access.IsBuiltinRole(name) {
		return 1
	}
	return 0
}
