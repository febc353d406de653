package api

import (
	"fmt"
	"net/http"
	"strings"
)

// RootUser is the superuser that bypasses permission checks.
const RootUser = "root@pam"

// checkPermissions evaluates m's permission declaration for id.
func (s *Server) checkPermissions(m *Method, id Identity, params Params) error {
	p := m.Permissions
	switch {
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
		path := expandPath(tmpl, params)
		privs := toStrings(check[2])
		anyOf := false
		for i := 3; i+1 < len(check); i += 2 {
			if k, _ := check[i].(string); k == "any" {
				anyOf = truthy(check[i+1])
			}
		}
		if id.AuthID == RootUser || s.cfg.Auth.CheckPrivs(id.AuthID, path, privs, anyOf) {
			return true, nil
		}
		return false, PermissionDenied(path, privs...)
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
		// Other check kinds (userid-param, userid-group, perm-modify) arrive
		// with the /access API; until then they deny, and say so.
		return false, Errorf(http.StatusForbidden, "Permission check failed (check '%s' not implemented)", kind)
	}
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
