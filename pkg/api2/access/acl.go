package access

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/ticket"
)

func (d Deps) aclMethods() []api.Method {
	return []api.Method{
		{
			Name: "read_acl", Path: "/access/acl", HTTP: "GET",
			Description: "Get Access Control List (ACLs).",
			Permissions: api.Permissions{
				Description: "Lists the entries of the paths whose permissions the caller may modify (all of them with Sys.Audit on /access).",
				User:        "all",
			},
			Params: map[string]*api.Schema{},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"path":      api.Str(),
				"propagate": api.Bool().Def(1).Opt(),
				"roleid":    api.Str(),
				"type":      api.Str().Enums("user", "group", "token"),
				"ugid":      api.Str(),
			}).Additional(false)),
			Handle: d.readACL,
		},
		{
			Name: "update_acl", Path: "/access/acl", HTTP: "PUT",
			Description: "Update Access Control List (add or remove permissions).",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm-modify", "{path}"}},
			Params: map[string]*api.Schema{
				"delete":    api.Bool().Opt().TT("<boolean>"),
				"groups":    api.Str().Fmt("pve-groupid-list").Opt().TT("<string>"),
				"path":      api.Str().TT("<string>"),
				"propagate": api.Bool().Def(1).Opt().TT("<boolean>"),
				"roles":     api.Str().Fmt("pve-roleid-list").TT("<string>"),
				"tokens":    api.Str().Fmt("pve-tokenid-list").Opt().TT("<string>"),
				"users":     api.Str().Fmt("pve-userid-list").Opt().TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.updateACL,
		},
	}
}

// aclEntry is an item of GET /access/acl.
type aclEntry struct {
	Path      string `json:"path"`
	Type      string `json:"type"`
	UGID      string `json:"ugid"`
	RoleID    string `json:"roleid"`
	Propagate int    `json:"propagate"`
}

func (d Deps) readACL(ctx context.Context, r *api.Request) (any, error) {
	caller := r.Identity.AuthID
	cfg := d.Access.UserCfg()
	audit := d.Access.CheckPrivs(caller, "/access", []string{"Sys.Audit"}, false)
	res := []aclEntry{}
	cfg.WalkACL(func(path string, n *access.ACLNode) {
		for _, kind := range []struct {
			name    string
			entries map[string]map[string]bool
		}{{"user", n.Users}, {"group", n.Groups}, {"token", n.Tokens}} {
			if kind.entries == nil || !(audit || d.mayModifyPerms(caller, path)) {
				continue
			}
			for _, id := range sortedNames(kind.entries) {
				for _, role := range sortedNames(kind.entries[id]) {
					e := aclEntry{Path: path, Type: kind.name, UGID: id, RoleID: role}
					if kind.entries[id][role] {
						e.Propagate = 1
					}
					res = append(res, e)
				}
			}
		}
	})
	return res, nil
}

// mayModifyPerms is PVE's check_perm_modify: Permissions.Modify on the
// path, or the allocate privilege of the object kind below /storage,
// /vms and /pool.
func (d Deps) mayModifyPerms(authid, path string) bool {
	privs := []string{"Permissions.Modify"}
	switch {
	case strings.HasPrefix(path, "/storage/"):
		privs = append(privs, "Datastore.Allocate")
	case strings.HasPrefix(path, "/vms/"):
		privs = append(privs, "VM.Allocate")
	case strings.HasPrefix(path, "/pool/"):
		privs = append(privs, "Pool.Allocate")
	}
	return d.Access.CheckPrivs(authid, path, privs, true)
}

// aclPathRe is PVE's check_path: the ACL paths that name something.
var aclPathRe = regexp.MustCompile(`^(?:/` +
	`|/access|/access/groups|/access/groups/[[:alnum:]._-]+|/access/realm|/access/realm/[[:alnum:]._-]+` +
	`|/nodes|/nodes/[[:alnum:]._-]+` +
	`|/pool|/pool/[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+){0,2}` +
	`|/sdn|/sdn/controllers|/sdn/controllers/[[:alnum:]_-]+|/sdn/dns|/sdn/dns/[[:alnum:]]+` +
	`|/sdn/fabrics|/sdn/fabrics/[[:alnum:]]+|/sdn/ipams|/sdn/ipams/[[:alnum:]]+` +
	`|/sdn/prefix-lists|/sdn/prefix-lists/[[:alnum:]]+|/sdn/route-maps|/sdn/route-maps/[[:alnum:]]+` +
	`|/sdn/zones|/sdn/zones/[[:alnum:]._-]+|/sdn/zones/[[:alnum:]._-]+/[[:alnum:]._-]+` +
	`|/sdn/zones/[[:alnum:]._-]+/[[:alnum:]._-]+/[1-9][0-9]{0,3}` +
	`|/storage|/storage/[[:alnum:]._-]+` +
	`|/vms|/vms/[1-9][0-9]{2,}` +
	`|/mapping|/mapping/[[:alnum:]._-]+|/mapping/[[:alnum:]._-]+/[[:alnum:]._-]+)$`)

func (d Deps) updateACL(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	users, groups, tokens := p.Get("users"), p.Get("groups"), p.Get("tokens")
	if !perlTrue(users) && !perlTrue(groups) && !perlTrue(tokens) {
		const msg = "either 'users', 'groups' or 'tokens' is required."
		return nil, api.ParamError(map[string]string{"users": msg, "groups": msg, "tokens": msg})
	}
	del := p.Bool("delete", false)
	path, ok := access.NormalizePath(p.Get("path"))
	if !ok || (!del && !aclPathRe.MatchString(path)) {
		return nil, api.ParamError(map[string]string{"path": fmt.Sprintf("invalid ACL path '%s'", p.Get("path"))})
	}
	propagate := p.Bool("propagate", true)
	caller := r.Identity.AuthID
	return nil, d.refresh(d.updateUserCfg(ctx, "ACL update failed", func(cfg *access.UserCfg) error {
		callerPrivs := d.Access.Permissions(caller, path)
		node := cfg.ACLNode(path, true)
		for _, role := range access.SplitList(p.Get("roles")) {
			privs, ok := cfg.Roles[role]
			if !ok {
				return die("role '%s' does not exist", role)
			}
			if !callerPrivs.Has("Permissions.Modify") {
				if err := checkRoleSubset(role, privs, callerPrivs, propagate, del); err != nil {
					return err
				}
			}
			for _, g := range access.SplitList(groups) {
				if cfg.Groups[g] == nil {
					return die("group '%s' does not exist", g)
				}
				setACL(&node.Groups, g, role, propagate, del)
			}
			for _, u := range access.SplitList(users) {
				if cfg.Users[u] == nil {
					return die("user '%s' does not exist", u)
				}
				setACL(&node.Users, u, role, propagate, del)
			}
			for _, t := range access.SplitList(tokens) {
				owner, name, err := ticket.ParseTokenID(t)
				if err != nil {
					return die("%v", err)
				}
				u := cfg.Users[owner]
				if u == nil {
					return noSuchUser(owner)
				}
				if u.Tokens[name] == nil {
					return die("no such token '%s' for user '%s'", name, owner)
				}
				setACL(&node.Tokens, t, role, propagate, del)
			}
		}
		return nil
	}))
}

// checkRoleSubset is what PVE asks of a caller who may modify permissions
// on the path only through an allocate privilege: the role's privileges
// must be a subset of the caller's there, propagated ones when the entry
// propagates, and NoAccess is out of reach. Failures are parameter errors
// raised under the lock, which PVE reports as a 500 with the exception
// text.
func checkRoleSubset(role string, privs []string, have access.PrivSet, propagate, del bool) error {
	verb := "add"
	if del {
		verb = "remove"
	}
	fail := func(msg string) error {
		return die("400 Parameter verification failed.\nrole: %s", msg)
	}
	sorted := append([]string(nil), privs...)
	sort.Strings(sorted)
	for _, priv := range sorted {
		prop, ok := have[priv]
		if !ok {
			return fail(fmt.Sprintf("Cannot %s role '%s' - requires 'Permissions.Modify' or superset of privileges.", verb, role))
		}
		if propagate && !prop && !del {
			return fail(fmt.Sprintf("Cannot %s role '%s' with propagation - requires 'Permissions.Modify' or propagated superset of privileges.", verb, role))
		}
	}
	if role == access.RoleNoAccess {
		return fail(fmt.Sprintf("Cannot %s role '%s' - requires 'Permissions.Modify'", verb, role))
	}
	return nil
}

// setACL adds (or with del removes) role for member in one entry map of
// an ACL node.
func setACL(m *map[string]map[string]bool, member, role string, propagate, del bool) {
	if del {
		if roles := (*m)[member]; roles != nil {
			delete(roles, role)
			if len(roles) == 0 {
				delete(*m, member)
			}
		}
		return
	}
	if *m == nil {
		*m = map[string]map[string]bool{}
	}
	if (*m)[member] == nil {
		(*m)[member] = map[string]bool{}
	}
	(*m)[member][role] = propagate
}

// perlTrue reports whether a parameter is true in Perl's sense.
func perlTrue(s string) bool { return s != "" && s != "0" }

// invalidator is implemented by an Access that caches the config files
// (*access.Authenticator).
type invalidator interface{ Invalidate() }

// refresh makes the next request see what a successful write changed, as
// PVE's config filesystem does, instead of a cached copy up to a second
// old.
func (d Deps) refresh(err error) error {
	if inv, ok := d.Access.(invalidator); ok && err == nil {
		inv.Invalidate()
	}
	return err
}
