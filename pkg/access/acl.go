package access

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/ticket"
)

// PrivSet is the result of a permission check: the privileges held on a
// path, each mapped to its propagate flag (informational: true when any role
// granting it was set with propagation).
type PrivSet map[string]bool

// Has reports whether priv is in the set.
func (p PrivSet) Has(priv string) bool {
	_, ok := p[priv]
	return ok
}

// Sorted returns the privilege names, sorted.
func (p PrivSet) Sorted() []string { return sortedKeys(p) }

// Permissions evaluates the ACL for authid (a user id or an API token id)
// on path as PVE does:
//
//   - root@pam has every privilege.
//   - The path is walked from "/" down. At each level the member's own
//     entries apply; only when none applies do the entries of all its groups
//     (united). An entry applies at an intermediate level only when it
//     propagates; at the requested level every entry applies. Whatever
//     applies replaces the roles from the levels above.
//   - NoAccess among the resulting roles leaves no privilege.
//   - For /vms/<id> and /storage/<id>, the roles the member has on
//     /pool/<P> of every pool P holding that guest or storage are added, as
//     non-propagating, unless already set; a NoAccess obtained through a pool
//     replaces the normal roles, a normal NoAccess stays.
//   - A token without privilege separation has its owner's privileges; one
//     with privilege separation has its own ACL entries intersected with its
//     owner's privileges on the same path (root@pam's tokens are not
//     intersected).
//
// An unknown token, a malformed id or an invalid path gets an empty set.
// Whether the user is enabled and not expired is not checked here (see
// Active).
func (c *UserCfg) Permissions(authid, path string) PrivSet {
	if authid == RootUser {
		return allPrivileges()
	}
	p, ok := NormalizePath(path)
	if !ok {
		return PrivSet{}
	}
	if owner, _, err := ticket.ParseTokenID(authid); err == nil {
		tok := c.Token(authid)
		if tok == nil {
			return PrivSet{}
		}
		userPerms := c.Permissions(owner, p)
		if !tok.Privsep {
			return userPerms
		}
		privs := c.compile(authid, p)
		if owner != RootUser {
			for priv, prop := range privs {
				up, ok := userPerms[priv]
				if !ok {
					delete(privs, priv)
					continue
				}
				privs[priv] = prop && up
			}
		}
		return privs
	}
	if !ValidUserID(authid) {
		return PrivSet{}
	}
	return c.compile(authid, p)
}

func allPrivileges() PrivSet {
	s := make(PrivSet, len(privileges))
	for _, p := range privileges {
		s[p] = true
	}
	return s
}

// CheckPrivs reports whether authid holds privs on path: all of them, or
// with any set at least one of them (an empty list then fails, as in PVE).
func (c *UserCfg) CheckPrivs(authid, path string, privs []string, anyOf bool) bool {
	return c.Permissions(authid, path).Allows(privs, anyOf)
}

// Allows reports whether the set holds all of privs, or any one of them
// when anyOf is set (an empty list: all yes, any no).
func (p PrivSet) Allows(privs []string, anyOf bool) bool {
	for _, priv := range privs {
		has := p.Has(priv)
		if anyOf && has {
			return true
		}
		if !anyOf && !has {
			return false
		}
	}
	return !anyOf
}

// compile returns the privileges of a user or privilege-separated token on
// a normalised path, including pool-derived roles.
func (c *UserCfg) compile(id, path string) PrivSet {
	roles := c.roles(id, path)
	if _, denied := roles[RoleNoAccess]; !denied {
		if pool := c.poolRoles(id, path); pool != nil {
			if _, poolDenied := pool[RoleNoAccess]; poolDenied {
				roles = map[string]bool{RoleNoAccess: false}
			} else {
				for r := range pool {
					if _, set := roles[r]; !set {
						roles[r] = false
					}
				}
			}
		}
	}
	privs := PrivSet{}
	for role, prop := range roles {
		for _, p := range c.Roles[role] {
			privs[p] = privs[p] || prop
		}
	}
	return privs
}

// roles returns the roles (with propagate flags) id holds on the normalised
// path from the ACL tree alone, without pools.
func (c *UserCfg) roles(id, path string) map[string]bool {
	segs := []string{""}
	if path != "/" {
		segs = strings.Split(path, "/")
	}
	roles := map[string]bool{}
	n := c.ACL
	for i, seg := range segs {
		final := i == len(segs)-1
		if seg != "" && n != nil {
			n = n.Children[seg]
		}
		if n == nil {
			continue
		}
		if r := applicable(n.Tokens[id], final, nil); r != nil {
			roles = r
			continue
		}
		if r := applicable(n.Users[id], final, nil); r != nil {
			roles = r // the member's own entries beat its groups'
			continue
		}
		var r map[string]bool
		for g, entry := range n.Groups {
			if grp := c.Groups[g]; grp != nil && grp.Members[id] {
				r = applicable(entry, final, r)
			}
		}
		if r != nil {
			roles = r
		}
	}
	if prop, ok := roles[RoleNoAccess]; ok {
		return map[string]bool{RoleNoAccess: prop}
	}
	return roles
}

// applicable adds to into the roles of entry that apply at this level and
// returns it; it stays nil when none applies.
func applicable(entry map[string]bool, final bool, into map[string]bool) map[string]bool {
	for role, prop := range entry {
		if final || prop {
			if into == nil {
				into = map[string]bool{}
			}
			into[role] = into[role] || prop
		}
	}
	return into
}

// poolRoles returns the roles id holds on the pools containing the guest or
// storage of path, or nil.
func (c *UserCfg) poolRoles(id, path string) map[string]bool {
	var in func(*Pool) bool
	if v, ok := strings.CutPrefix(path, "/vms/"); ok {
		vmid, err := strconv.Atoi(v)
		if err != nil || strconv.Itoa(vmid) != v {
			return nil
		}
		in = func(p *Pool) bool { return p.VMs[vmid] }
	} else if s, ok := strings.CutPrefix(path, "/storage/"); ok {
		in = func(p *Pool) bool { return p.Storage[s] }
	} else {
		return nil
	}
	var res map[string]bool
	for name, p := range c.Pools {
		if !in(p) {
			continue
		}
		for r := range c.roles(id, "/pool/"+name) {
			if res == nil {
				res = map[string]bool{}
			}
			res[r] = true
		}
	}
	return res
}

// aclPaths returns every node path of the ACL tree.
func (c *UserCfg) aclPaths() []string {
	var paths []string
	c.WalkACL(func(p string, _ *ACLNode) { paths = append(paths, p) })
	return paths
}

// PermissionsTree returns what GET /access/permissions answers without a
// path: for "/", the top-level paths, every ACL path and every pool
// member's /vms/<id> and /storage/<id>, the privileges of authid (1 when
// propagating, else 0); paths without privileges are left out.
func (c *UserCfg) PermissionsTree(authid string) map[string]map[string]int {
	paths := map[string]bool{}
	for _, p := range []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"} {
		paths[p] = true
	}
	for _, p := range c.aclPaths() {
		paths[p] = true
	}
	for _, pool := range c.Pools {
		for vmid := range pool.VMs {
			paths["/vms/"+strconv.Itoa(vmid)] = true
		}
		for s := range pool.Storage {
			paths["/storage/"+s] = true
		}
	}
	res := map[string]map[string]int{}
	for p := range paths {
		if perms := c.Permissions(authid, p); len(perms) > 0 {
			res[p] = perms.Flags()
		}
	}
	return res
}

// Flags renders the set as GET /access/permissions does: privilege -> 1
// when propagating, else 0.
func (p PrivSet) Flags() map[string]int {
	m := make(map[string]int, len(p))
	for k, v := range p {
		m[k] = 0
		if v {
			m[k] = 1
		}
	}
	return m
}

// capGroups maps each group of the ticket response's "cap" object to the
// privilege prefixes it collects from the paths of its top-level segment.
var capGroups = map[string]*regexp.Regexp{
	"vms":     regexp.MustCompile(`^(VM\.|Permissions\.Modify)`),
	"access":  regexp.MustCompile(`^((User|Group)\.|Permissions\.Modify)`),
	"storage": regexp.MustCompile(`^(Datastore\.|Permissions\.Modify)`),
	"nodes":   regexp.MustCompile(`^(Sys\.|Permissions\.Modify)`),
	"sdn":     regexp.MustCompile(`^(SDN\.|Permissions\.Modify)`),
	"dc":      regexp.MustCompile(`^(Sys\.Audit|Sys\.Modify|SDN\.)`),
	"mapping": regexp.MustCompile(`^(Mapping\.|Permissions.Modify)`),
}

// emptyCaps returns the cap object with every group empty.
func emptyCaps() map[string]map[string]int {
	res := map[string]map[string]int{}
	for g := range capGroups {
		res[g] = map[string]int{}
	}
	return res
}

var topLevelRe = regexp.MustCompile(`^/([A-Za-z0-9_]+)`)

// Caps computes the "cap" object of the login response: for the paths "/",
// /nodes, /access/groups, /vms, /storage, /sdn, /mapping and every ACL
// path, the privileges authid holds there are sorted into the group named
// by the path's first segment ("/" counts as "dc") when they match that
// group's prefixes; privileges on /pool paths feed "vms" (VM.*), "storage"
// (Datastore.*) and both (Permissions.Modify). Each group maps privilege
// names to 1.
func (c *UserCfg) Caps(authid string) map[string]map[string]int {
	res := emptyCaps()
	seen := map[string]bool{}
	paths := append([]string{"/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping"}, c.aclPaths()...)
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		perms := c.Permissions(authid, p)
		top := "dc"
		if m := topLevelRe.FindStringSubmatch(p); m != nil {
			top = m[1]
		}
		if top == "pool" {
			for priv := range perms {
				switch {
				case strings.HasPrefix(priv, "VM."):
					res["vms"][priv] = 1
				case strings.HasPrefix(priv, "Datastore."):
					res["storage"][priv] = 1
				case priv == "Permissions.Modify":
					res["storage"][priv] = 1
					res["vms"][priv] = 1
				}
			}
			continue
		}
		re, ok := capGroups[top]
		if !ok {
			continue
		}
		for priv := range perms {
			if re.MatchString(priv) {
				res[top][priv] = 1
			}
		}
	}
	return res
}

// Active reports why authid may not act now: nil when the user (for a
// token: its owner) exists, is enabled and has not expired and, for a token,
// the token exists and has not expired. now is Unix seconds.
func (c *UserCfg) Active(authid string, now int64) error {
	userid := authid
	var tokName string
	if !strings.Contains(authid, "!") {
		// A user id: skip the token grammar (and its error value), this
		// runs on every request.
		if !ValidUserID(authid) {
			return &InactiveError{ID: authid, Reason: "invalid user id"}
		}
	} else if owner, name, err := ticket.ParseTokenID(authid); err == nil {
		userid, tokName = owner, name
	} else {
		return &InactiveError{ID: authid, Reason: "invalid user id"}
	}
	u := c.Users[userid]
	switch {
	case u == nil:
		return &InactiveError{ID: authid, Reason: "no such user ('" + userid + "')"}
	case !u.Enable:
		return &InactiveError{ID: authid, Reason: "user '" + userid + "' is disabled"}
	case u.Expire != 0 && u.Expire < now:
		return &InactiveError{ID: authid, Reason: "user '" + userid + "' access expired"}
	}
	if tokName == "" {
		return nil
	}
	t := u.Tokens[tokName]
	switch {
	case t == nil:
		return &InactiveError{ID: authid, Reason: "no such token '" + tokName + "' for user '" + userid + "'"}
	case t.Expire != 0 && t.Expire < now:
		return &InactiveError{ID: authid, Reason: "token '" + tokName + "' access expired"}
	}
	return nil
}

// InactiveError says why a user or token may not act.
type InactiveError struct {
	ID     string
	Reason string
}

func (e *InactiveError) Error() string { return e.Reason }
