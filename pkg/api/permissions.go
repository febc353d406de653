package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
)

// RootUser is the superuser that bypasses permission checks.
const RootUser = "root@pam"

// checkPermissions evaluates m's permission declaration for id.
func (s *Server) checkPermissions(m *Method, id Identity, params Params) error {
	p := m.Permissions
	switch {
	case id.AuthID == RootUser:
		// PVE: root@pam passes every declaration, before any check runs.
		return nil
	case p.User == "all":
		return nil
	case p.Check != nil:
		ok, denied := s.evalCheck(p.Check, id, params)
		if ok {
			return nil
		}
		return denied
	default:
		// No declaration: root only, as PVE.
		if id.AuthID == RootUser {
			return nil
		}
		return &Error{Status: http.StatusForbidden, Message: "Permission check failed (user != root@pam)\n"}
	}
}

// evalCheck evaluates a PVE check expression. It returns the error to answer
// with when the check fails.
func (s *Server) evalCheck(check []any, id Identity, params Params) (bool, *Error) {
	if len(check) == 0 {
		return false, Errorf(http.StatusForbidden, "Permission check failed (empty check)")
	}
	kind, _ := check[0].(string)
	switch kind {
	case "perm":
		if len(check) < 3 {
			return false, Errorf(http.StatusForbidden, "Permission check failed (malformed check)")
		}
		tmpl, _ := check[1].(string)
		privs := toStrings(check[2])
		anyOf := false
		for i := 3; i+1 < len(check); i += 2 {
			switch k, _ := check[i].(string); k {
			case "any":
				anyOf = truthy(check[i+1])
			case "require_param":
				// PVE: the check fails when the named parameter is absent.
				if name, _ := check[i+1].(string); name != "" && !params.Has(name) {
					return false, Errorf(http.StatusForbidden, "Permission check failed")
				}
			}
		}
		path := expandPath(tmpl, params)
		if norm, ok := access.NormalizePath(path); ok {
			path = norm
		}
		if id.AuthID == RootUser || s.cfg.Auth.CheckPrivs(id.AuthID, path, privs, anyOf) {
			return true, nil
		}
		return false, PermissionDenied(path, privs...)
	case "userid-param":
		return s.checkUseridParam(check, id, params)
	case "userid-group":
		return s.checkUseridGroup(check, id, params)
	case "perm-modify":
		tmpl, _ := check[1].(string)
		path, ok := access.NormalizePath(expandPath(tmpl, params))
		if !ok {
			return false, Errorf(http.StatusForbidden, "Permission check failed")
		}
		return s.checkPermModify(id, path)
	case "and", "or":
		var last *Error
		for _, sub := range check[1:] {
			c, ok := sub.([]any)
			if !ok {
				return false, Errorf(http.StatusForbidden, "Permission check failed (malformed check)")
			}
			ok, denied := s.evalCheck(c, id, params)
			if kind == "or" && ok {
				return true, nil
			}
			if kind == "and" && !ok {
				return false, denied
			}
			last = denied
		}
		if kind == "and" {
			return true, nil
		}
		return false, last
	default:
		return false, Errorf(http.StatusForbidden, "Permission check failed (unknown check '%s')", kind)
	}
}

// Directory answers the user and group questions of PVE's userid-param and
// userid-group checks; the Authenticator implements it when it can.
type Directory interface {
	// UserExists reports whether userid is in user.cfg.
	UserExists(userid string) bool
	// GroupMembers returns every group with its member user ids.
	GroupMembers() map[string][]string
}

func (s *Server) directory() Directory {
	d, _ := s.cfg.Auth.(Directory)
	return d
}

// noSuchUser is PVE's answer when a check names a user that does not exist.
func noSuchUser(userid string) *Error {
	return Errorf(http.StatusInternalServerError, "no such user ('%s')", userid)
}

// checkUseridParam is PVE's ["userid-param", "self"] (the caller is the
// user named by the userid parameter) and ["userid-param",
// "Realm.AllocateUser"] (the caller may allocate users in that user's
// realm).
func (s *Server) checkUseridParam(check []any, id Identity, params Params) (bool, *Error) {
	if len(check) < 2 {
		return false, Errorf(http.StatusForbidden, "Permission check failed (malformed check)")
	}
	userid := params.Get("userid")
	_, realm, _ := strings.Cut(userid, "@")
	switch sub, _ := check[1].(string); sub {
	case "self":
		if d := s.directory(); d == nil || !d.UserExists(userid) {
			return false, noSuchUser(userid)
		}
		if id.AuthID == userid {
			return true, nil
		}
		return false, Errorf(http.StatusForbidden, "Permission check failed")
	case "Realm.AllocateUser":
		path := "/access/realm/" + realm
		if s.cfg.Auth.CheckPrivs(id.AuthID, path, []string{"Realm.AllocateUser"}, false) {
			return true, nil
		}
		return false, PermissionDenied(path, "Realm.AllocateUser")
	}
	return false, Errorf(http.StatusForbidden, "Permission check failed (unknown userid-param test)")
}

// checkUseridGroup is PVE's ["userid-group", privs, "groups_param", mode]:
// the caller has one of privs on /access/groups, or on every group named in
// the groups parameter (with groups_param) and on some group the user named
// by userid belongs to (unless mode is "create").
func (s *Server) checkUseridGroup(check []any, id Identity, params Params) (bool, *Error) {
	if len(check) < 2 {
		return false, Errorf(http.StatusForbidden, "Permission check failed (malformed check)")
	}
	privs := toStrings(check[1])
	groupsParam := ""
	for i := 2; i+1 < len(check); i += 2 {
		if k, _ := check[i].(string); k == "groups_param" {
			groupsParam, _ = check[i+1].(string)
		}
	}
	userid := params.Get("userid")
	checkExisting := groupsParam != "create"
	d := s.directory()
	if checkExisting && (d == nil || !d.UserExists(userid)) {
		return false, noSuchUser(userid)
	}
	if s.cfg.Auth.CheckPrivs(id.AuthID, "/access/groups", privs, true) {
		return true, nil
	}
	var members map[string][]string
	if d != nil {
		members = d.GroupMembers()
	}
	allowed := map[string]bool{}
	for g := range members {
		if s.cfg.Auth.CheckPrivs(id.AuthID, "/access/groups/"+g, privs, true) {
			allowed[g] = true
		}
	}
	if groupsParam != "" {
		named := access.SplitList(params.Get("groups"))
		if len(named) == 0 {
			return false, PermissionDenied("/access/groups", privs...)
		}
		for _, g := range named {
			if !allowed[g] {
				return false, PermissionDenied("/access/groups/"+g, privs...)
			}
		}
	}
	if checkExisting {
		for g := range allowed {
			if slices.Contains(members[g], userid) {
				return true, nil
			}
		}
		return false, Errorf(http.StatusForbidden, "Permission check failed")
	}
	return true, nil
}

// checkPermModify is PVE's ["perm-modify", path]: Permissions.Modify on the
// path, or the allocate privilege of its kind (Datastore.Allocate on
// /storage/..., VM.Allocate on /vms/..., Pool.Allocate on /pool/...).
func (s *Server) checkPermModify(id Identity, path string) (bool, *Error) {
	privs := []string{"Permissions.Modify"}
	switch {
	case strings.HasPrefix(path, "/storage/"):
		privs = append(privs, "Datastore.Allocate")
	case strings.HasPrefix(path, "/vms/"):
		privs = append(privs, "VM.Allocate")
	case strings.HasPrefix(path, "/pool/"):
		privs = append(privs, "Pool.Allocate")
	}
	if s.cfg.Auth.CheckPrivs(id.AuthID, path, privs, true) {
		return true, nil
	}
	return false, PermissionDenied(path, privs...)
}

// expandPath fills {name} placeholders of an ACL path from params.
func expandPath(tmpl string, params Params) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			break
		}
		b.WriteString(tmpl[:i])
		b.WriteString(params.Get(tmpl[i+1 : i+j]))
		tmpl = tmpl[i+j+1:]
	}
	return b.String()
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case string:
		return []string{x}
	}
	return nil
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x == "1"
	}
	return false
}

// Perm builds a ["perm", path, [privs...]] check.
func Perm(path string, privs ...string) Permissions {
	return Permissions{Check: []any{"perm", path, privList(privs)}}
}

// PermAny builds a ["perm", path, [privs...], "any", 1] check.
func PermAny(path string, privs ...string) Permissions {
	return Permissions{Check: []any{"perm", path, privList(privs), "any", 1}}
}

func privList(privs []string) []any {
	out := make([]any, len(privs))
	for i, p := range privs {
		out[i] = p
	}
	return out
}

// AllUsers is the declaration of methods open to any authenticated user.
var AllUsers = Permissions{User: "all"}

// World is the declaration of methods that need no authentication.
var World = Permissions{User: "world"}
