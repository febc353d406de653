package access

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/pvetext"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// UserCfgFile is the name of user.cfg under the config root.
const UserCfgFile = "user.cfg"

// UserCfg is the content of user.cfg: users with their API tokens, groups,
// pools, roles and the ACL tree. Roles always include the built-in roles.
//
// A UserCfg handed out by an Authenticator is shared and must not be
// modified; to change user.cfg, parse a private copy inside
// pvefs.Root.Update, modify it and Marshal it.
type UserCfg struct {
	Users  map[string]*User  // by user id ("alice@pve")
	Groups map[string]*Group // by group name
	Pools  map[string]*Pool  // by pool id ("lab", "lab/sub")
	// Roles maps role names to their sorted privileges; it includes the
	// built-in roles, which Marshal never writes.
	Roles map[string][]string
	// ACL is the root ("/") of the ACL tree.
	ACL *ACLNode
}

// User is a user.cfg "user:" record together with its "token:" records.
type User struct {
	Enable    bool
	Expire    int64 // Unix seconds, 0 = never
	Firstname string
	Lastname  string
	Email     string
	Comment   string
	// Keys is the legacy realm-TFA key list, or "x" when the user has
	// entries in priv/tfa.cfg.
	Keys   string
	Tokens map[string]*Token // by token name (the part after '!')
}

// Token is a user.cfg "token:" record.
type Token struct {
	Expire  int64 // Unix seconds, 0 = never
	Privsep bool
	Comment string
}

// Group is a user.cfg "group:" record. Members may name users that do not
// exist (PVE keeps them, with a warning).
type Group struct {
	Members map[string]bool // user ids
	Comment string
}

// Pool is a user.cfg "pool:" record. Parent is set for nested pools
// ("a/b" has parent "a"); parents are created implicitly.
type Pool struct {
	Comment string
	VMs     map[int]bool
	Storage map[string]bool
	Parent  string
}

// ACLNode is one path of the ACL tree. Each entry map goes from member to
// role to the propagate flag.
type ACLNode struct {
	Users    map[string]map[string]bool // user id -> role -> propagate
	Groups   map[string]map[string]bool // group name -> role -> propagate
	Tokens   map[string]map[string]bool // token id -> role -> propagate
	Children map[string]*ACLNode
}

// Warning is a problem found in a config file. The offending line or item
// was skipped.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg) }

// Error makes a Warning usable as an error.
func (w Warning) Error() string { return w.String() }

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	poolRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+){0,2}$`)
	storageRe = regexp.MustCompile(`^(?i:[a-z][a-z0-9._-]*[a-z0-9])$`)
	digitsRe  = regexp.MustCompile(`^[0-9]+$`)
	pathRe    = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	slashesRe = regexp.MustCompile(`/+`)
)

// ValidGroupName reports whether s is a valid group name.
func ValidGroupName(s string) bool { return nameRe.MatchString(s) }

// ValidRoleName reports whether s is a valid role name.
func ValidRoleName(s string) bool { return nameRe.MatchString(s) }

// ValidPoolName reports whether s is a valid pool id (up to three levels).
func ValidPoolName(s string) bool { return poolRe.MatchString(s) }

// ValidUserID reports whether s is a well-formed user id.
func ValidUserID(s string) bool {
	_, _, err := ticket.ParseUserID(s)
	return err == nil
}

// NormalizePath normalises an ACL path as PVE does: repeated '/' collapse,
// a trailing '/' goes, a leading '/' is added. ok is false for an empty
// path or one with characters outside A-Z a-z 0-9 . _ - /. As in PVE, a
// path that is "0" once its trailing '/' is gone ("0/") becomes "/".
func NormalizePath(p string) (string, bool) {
	if isNormalPath(p) { // the common case, on every permission check
		return p, true
	}
	if !perlTrue(p) {
		return "", false
	}
	p = slashesRe.ReplaceAllString(p, "/")
	p = strings.TrimSuffix(p, "/")
	if !perlTrue(p) {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !pathRe.MatchString(p) {
		return "", false
	}
	return p, true
}

// isNormalPath reports whether p is already what NormalizePath returns for
// it: "/" or a leading '/' with non-empty components of allowed characters.
func isNormalPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if p[i-1] == '/' {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// NewUserCfg returns an empty configuration with PVE's defaults: the
// built-in roles and an enabled root@pam.
func NewUserCfg() *UserCfg {
	c := &UserCfg{
		Users:  map[string]*User{},
		Groups: map[string]*Group{},
		Pools:  map[string]*Pool{},
		Roles:  map[string][]string{},
		ACL:    &ACLNode{},
	}
	c.forceDefaults()
	return c
}

func (c *UserCfg) forceDefaults() {
	for name, privs := range builtinRoles {
		c.Roles[name] = slices.Clone(privs)
	}
	if c.Users[RootUser] == nil {
		c.Users[RootUser] = &User{Enable: true}
	}
}

// ParseUserCfg parses user.cfg. Like PVE it skips what it cannot use (bad
// lines, invalid names, unknown privileges, references to missing tokens)
// and reports each skipped item as a warning naming name:line; the rest of
// the file still loads. A line naming a built-in role is ignored (built-in
// roles cannot change).
func ParseUserCfg(name string, data []byte) (*UserCfg, []Warning) {
	c := NewUserCfg()
	var warns []Warning
	vmPool := map[int]string{}
	roleSets := map[string]map[string]bool{}
	for n, raw := range strings.Split(string(data), "\n") {
		line := trimSpace(raw)
		if line == "" {
			continue
		}
		warn := func(format string, args ...any) {
			warns = append(warns, Warning{File: name, Line: n + 1, Msg: fmt.Sprintf(format, args...)})
		}
		f := strings.Split(line, ":")
		for i := range f {
			f[i] = trimSpace(f[i])
		}
		field := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		switch f[0] {
		case "user":
			c.parseUser(field, warn)
		case "token":
			c.parseToken(field, warn)
		case "group":
			c.parseGroup(field, warn)
		case "role":
			c.parseRole(field, warn, roleSets)
		case "acl":
			c.parseACL(field, warn)
		case "pool":
			c.parsePool(field, warn, vmPool)
		default:
			warn("ignoring unknown line %q", line)
		}
	}
	for role, set := range roleSets {
		c.Roles[role] = sortedKeys(set)
	}
	c.forceDefaults()
	return c, warns
}

type fieldFunc func(int) string
type warnFunc func(string, ...any)

func parseExpire(s string) (int64, bool) {
	if !perlTrue(s) {
		return 0, true
	}
	if !digitsRe.MatchString(s) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

func (c *UserCfg) parseUser(field fieldFunc, warn warnFunc) {
	id := field(1)
	if !ValidUserID(id) {
		warn("ignoring user %q: invalid user id", id)
		return
	}
	expire, ok := parseExpire(field(3))
	if !ok {
		warn("ignoring user %q: invalid expire %q", id, field(3))
		return
	}
	u := &User{Enable: perlTrue(field(2)), Expire: expire, Email: field(6)}
	if s := field(4); perlTrue(s) {
		u.Firstname = pvetext.Decode(s)
	}
	if s := field(5); perlTrue(s) {
		u.Lastname = pvetext.Decode(s)
	}
	if s := field(7); perlTrue(s) {
		u.Comment = pvetext.Decode(s)
	}
	if s := field(8); perlTrue(s) {
		u.Keys = s
	}
	// a repeated user line replaces the earlier record, tokens included
	c.Users[id] = u
}

func (c *UserCfg) parseToken(field fieldFunc, warn warnFunc) {
	id := field(1)
	owner, name, err := ticket.ParseTokenID(id)
	if err != nil {
		warn("ignoring token %q: invalid token id", id)
		return
	}
	expire, ok := parseExpire(field(2))
	if !ok {
		warn("ignoring token %q: invalid expire %q", id, field(2))
		return
	}
	u := c.Users[owner]
	if u == nil {
		warn("ignoring token %q: user %q does not exist", id, owner)
		return
	}
	if u.Tokens == nil {
		u.Tokens = map[string]*Token{}
	}
	t := u.Tokens[name]
	if t == nil {
		t = &Token{}
		u.Tokens[name] = t
	}
	t.Expire, t.Privsep = expire, perlTrue(field(3))
	if s := field(4); perlTrue(s) {
		t.Comment = pvetext.Decode(s)
	}
}

func (c *UserCfg) parseGroup(field fieldFunc, warn warnFunc) {
	name := field(1)
	if !ValidGroupName(name) {
		warn("ignoring group %q: invalid group name", name)
		return
	}
	g := c.Groups[name]
	if g == nil {
		g = &Group{Members: map[string]bool{}}
		c.Groups[name] = g
	}
	if s := field(3); perlTrue(s) {
		g.Comment = pvetext.Decode(s)
	}
	for _, m := range SplitList(field(2)) {
		if !ValidUserID(m) {
			warn("ignoring invalid member %q of group %q", m, name)
			continue
		}
		if !listable(m) {
			warn("ignoring member %q of group %q: it cannot be written back in a list", m, name)
			continue
		}
		if c.Users[m] == nil {
			// PVE keeps the member all the same
			warn("group %q: member %q does not exist", name, m)
		}
		g.Members[m] = true
	}
}

func (c *UserCfg) parseRole(field fieldFunc, warn warnFunc, sets map[string]map[string]bool) {
	name := field(1)
	if !ValidRoleName(name) {
		warn("ignoring role %q: invalid role name", name)
		return
	}
	if IsBuiltinRole(name) {
		warn("ignoring role %q: built-in roles cannot be changed", name)
		return
	}
	set := sets[name]
	if set == nil {
		set = map[string]bool{}
		sets[name] = set
		// the role exists from here on, for the ACL lines that follow
		c.Roles[name] = nil
	}
	for _, p := range SplitList(field(2)) {
		if !ValidPrivilege(p) {
			warn("role %q: ignoring unknown privilege %q", name, p)
			continue
		}
		set[p] = true
	}
	c.Roles[name] = sortedKeys(set)
}

func (c *UserCfg) parseACL(field fieldFunc, warn warnFunc) {
	propagate := perlTrue(field(1))
	path, ok := NormalizePath(field(2))
	if !ok {
		warn("ignoring acl: invalid path %q", field(2))
		return
	}
	members := SplitList(field(3))
	for _, role := range SplitList(field(4)) {
		if !ValidRoleName(role) {
			warn("acl %s: ignoring invalid role name %q", path, role)
			continue
		}
		if _, ok := c.Roles[role]; !ok {
			warn("acl %s: ignoring unknown role %q", path, role)
			continue
		}
		for _, m := range members {
			if !listable(m) {
				warn("acl %s: ignoring member %q: it cannot be written back in a list", path, m)
				continue
			}
			switch group, isGroup := strings.CutPrefix(m, "@"); {
			case isGroup && perlTrue(group) && ValidGroupName(group):
				if c.Groups[group] == nil {
					warn("acl %s: group %q does not exist", path, group)
				}
				setEntry(&c.aclNode(path).Groups, group, role, propagate)
			case ValidUserID(m):
				if c.Users[m] == nil {
					warn("acl %s: user %q does not exist", path, m)
				}
				setEntry(&c.aclNode(path).Users, m, role, propagate)
			case ticket.IsTokenID(m):
				if !c.tokenExists(m) {
					warn("acl %s: ignoring token %q: token does not exist", path, m)
					continue
				}
				setEntry(&c.aclNode(path).Tokens, m, role, propagate)
			default:
				warn("acl %s: ignoring invalid member %q", path, m)
			}
		}
	}
}

// listable reports whether a member can be written in a user.cfg list: a
// user id may contain ',' and ';', which a list read without NUL bytes
// splits on, so such a member would be read back as other members.
func listable(member string) bool { return !strings.ContainsAny(member, ",;") }

func setEntry(m *map[string]map[string]bool, member, role string, propagate bool) {
	if *m == nil {
		*m = map[string]map[string]bool{}
	}
	if (*m)[member] == nil {
		(*m)[member] = map[string]bool{}
	}
	(*m)[member][role] = propagate
}

func (c *UserCfg) parsePool(field fieldFunc, warn warnFunc, vmPool map[int]string) {
	name := field(1)
	if strings.Count(name, "/") > 2 {
		warn("ignoring pool %q: nested too deeply (max levels = 3)", name)
		return
	}
	if !ValidPoolName(name) {
		warn("ignoring pool %q: invalid pool name", name)
		return
	}
	p := c.ensurePool(name)
	if s := field(2); perlTrue(s) {
		p.Comment = pvetext.Decode(s)
	}
	for _, v := range SplitList(field(3)) {
		if !digitsRe.MatchString(v) {
			warn("pool %q: ignoring invalid vmid %q", name, v)
			continue
		}
		vmid, err := strconv.Atoi(v)
		if err != nil {
			warn("pool %q: ignoring invalid vmid %q", name, v)
			continue
		}
		if _, dup := vmPool[vmid]; dup {
			warn("pool %q: ignoring duplicate vmid %d", name, vmid)
			continue
		}
		p.VMs[vmid] = true
		vmPool[vmid] = name
	}
	for _, s := range SplitList(field(4)) {
		if !storageRe.MatchString(s) {
			warn("pool %q: ignoring invalid storage %q", name, s)
			continue
		}
		p.Storage[s] = true
	}
}

// ensurePool returns pool name, creating it and its missing parents.
func (c *UserCfg) ensurePool(name string) *Pool {
	p := c.Pools[name]
	if p == nil {
		p = &Pool{VMs: map[int]bool{}, Storage: map[string]bool{}}
		c.Pools[name] = p
	}
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		p.Parent = name[:i]
		c.ensurePool(name[:i])
	}
	return p
}

func (c *UserCfg) tokenExists(tokenID string) bool {
	owner, name, err := ticket.ParseTokenID(tokenID)
	if err != nil {
		return false
	}
	u := c.Users[owner]
	return u != nil && u.Tokens[name] != nil
}

// Token returns the token record of tokenID, or nil.
func (c *UserCfg) Token(tokenID string) *Token {
	owner, name, err := ticket.ParseTokenID(tokenID)
	if err != nil {
		return nil
	}
	if u := c.Users[owner]; u != nil {
		return u.Tokens[name]
	}
	return nil
}

// UserGroups returns the sorted names of the groups userid is a member of.
func (c *UserCfg) UserGroups(userid string) []string {
	var gs []string
	for name, g := range c.Groups {
		if g.Members[userid] {
			gs = append(gs, name)
		}
	}
	sort.Strings(gs)
	return gs
}

// PoolOfVM returns the pool vmid belongs to, or "".
func (c *UserCfg) PoolOfVM(vmid int) string {
	for name, p := range c.Pools {
		if p.VMs[vmid] {
			return name
		}
	}
	return ""
}

// aclNode returns the node of the normalised path, creating it and its
// ancestors.
func (c *UserCfg) aclNode(path string) *ACLNode {
	if c.ACL == nil {
		c.ACL = &ACLNode{}
	}
	n := c.ACL
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		if n.Children == nil {
			n.Children = map[string]*ACLNode{}
		}
		child := n.Children[seg]
		if child == nil {
			child = &ACLNode{}
			n.Children[seg] = child
		}
		n = child
	}
	return n
}

// ACLNode returns the ACL node of path (normalised first), creating it and
// its ancestors when create is set; otherwise nil if it does not exist.
func (c *UserCfg) ACLNode(path string, create bool) *ACLNode {
	p, ok := NormalizePath(path)
	if !ok {
		return nil
	}
	if create {
		return c.aclNode(p)
	}
	return c.findACLNode(p)
}

func (c *UserCfg) findACLNode(path string) *ACLNode {
	n := c.ACL
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || n == nil {
			continue
		}
		n = n.Children[seg]
	}
	return n
}

// WalkACL calls fn for every node of the ACL tree, depth first from "/",
// children in sorted order.
func (c *UserCfg) WalkACL(fn func(path string, n *ACLNode)) {
	if c.ACL == nil {
		fn("/", &ACLNode{})
		return
	}
	walkACL("/", c.ACL, fn)
}

func walkACL(path string, n *ACLNode, fn func(string, *ACLNode)) {
	fn(path, n)
	prefix := path
	if prefix == "/" {
		prefix = ""
	}
	for _, name := range sortedKeys(n.Children) {
		walkACL(prefix+"/"+name, n.Children[name], fn)
	}
}

// Marshal renders the configuration the way PVE writes user.cfg: users
// sorted, each followed by its tokens; groups; pools; custom roles; then the
// ACL tree depth first with, per path, members grouped by identical role
// lists, non-propagating lines first. Sections are separated by one empty
// line. root@pam ACL entries are not written (root has every privilege),
// nor are ACL entries of tokens that do not exist or members that cannot be
// written in a list (see listable).
func (c *UserCfg) Marshal() []byte {
	var b strings.Builder
	for _, id := range sortedKeys(c.Users) {
		u := c.Users[id]
		fmt.Fprintf(&b, "user:%s:%s:%d:%s:%s:%s:%s:%s:\n", id, boolDigit(u.Enable), u.Expire,
			encodeField(u.Firstname), encodeField(u.Lastname), perlString(u.Email), encodeField(u.Comment),
			perlString(u.Keys))
		for _, name := range sortedKeys(u.Tokens) {
			t := u.Tokens[name]
			fmt.Fprintf(&b, "token:%s!%s:%d:%s:%s:\n", id, name, t.Expire, boolDigit(t.Privsep), encodeField(t.Comment))
		}
	}
	b.WriteString("\n")
	for _, name := range sortedKeys(c.Groups) {
		g := c.Groups[name]
		members := slices.DeleteFunc(sortedKeys(g.Members), func(m string) bool { return !listable(m) })
		fmt.Fprintf(&b, "group:%s:%s:%s:\n", name, strings.Join(members, ","), encodeField(g.Comment))
	}
	b.WriteString("\n")
	for _, name := range sortedKeys(c.Pools) {
		p := c.Pools[name]
		vms := make([]string, 0, len(p.VMs))
		for v := range p.VMs {
			vms = append(vms, strconv.Itoa(v))
		}
		sort.Strings(vms) // PVE sorts vmids as strings
		fmt.Fprintf(&b, "pool:%s:%s:%s:%s:\n", name, encodeField(p.Comment), strings.Join(vms, ","),
			strings.Join(sortedKeys(p.Storage), ","))
	}
	b.WriteString("\n")
	for _, name := range sortedKeys(c.Roles) {
		if IsBuiltinRole(name) {
			continue
		}
		privs := append([]string(nil), c.Roles[name]...)
		sort.Strings(privs)
		fmt.Fprintf(&b, "role:%s:%s:\n", name, strings.Join(privs, ","))
	}
	b.WriteString("\n")
	c.WalkACL(func(path string, n *ACLNode) {
		// propagate flag -> role list -> members
		lines := [2]map[string][]string{{}, {}}
		collect := func(entries map[string]map[string]bool, prefix string, keep func(string) bool) {
			for member, roles := range entries {
				if !keep(member) || !listable(member) {
					continue
				}
				var l [2][]string
				for role, prop := range roles {
					i := 0
					if prop {
						i = 1
					}
					l[i] = append(l[i], role)
				}
				for i := range l {
					if len(l[i]) == 0 {
						continue
					}
					sort.Strings(l[i])
					key := strings.Join(l[i], ",")
					lines[i][key] = append(lines[i][key], prefix+member)
				}
			}
		}
		collect(n.Groups, "@", func(string) bool { return true })
		collect(n.Users, "", func(m string) bool { return m != RootUser })
		// entries of a token that no longer exists would be dropped on
		// the next read
		collect(n.Tokens, "", c.tokenExists)
		for prop := range lines {
			for _, roles := range sortedKeys(lines[prop]) {
				members := lines[prop][roles]
				sort.Strings(members)
				fmt.Fprintf(&b, "acl:%d:%s:%s:%s:\n", prop, path, strings.Join(members, ","), roles)
			}
		}
	})
	return []byte(b.String())
}

// encodeField is EncodeText for a writer that, like PVE's, treats "" and "0"
// as unset. Unlike PVE's writer it also encodes leading and trailing
// spaces (as %20), which the reader would otherwise trim away.
func encodeField(s string) string {
	e := pvetext.Encode(perlString(s))
	t := strings.TrimLeft(e, " ")
	lead := len(e) - len(t)
	t = strings.TrimRight(t, " ")
	trail := len(e) - lead - len(t)
	return strings.Repeat("%20", lead) + t + strings.Repeat("%20", trail)
}

// perlString returns s, or "" for a value Perl considers false.
func perlString(s string) string {
	if !perlTrue(s) {
		return ""
	}
	return s
}
