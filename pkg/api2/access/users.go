package access

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/tfa"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

// userMethods are /access/users and /access/users/{userid} (PVE's
// API2/User.pm), without the token sub-paths.
func (d Deps) userMethods() []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/access/users", HTTP: "GET",
			Description: "User index.",
			Protected:   true,
			Permissions: api.Permissions{User: "all"},
			Params: map[string]*api.Schema{
				"enabled": api.Bool().Opt().TT("<boolean>"),
				"full":    api.Bool().Def(0).Opt().TT("<boolean>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"comment":          api.Str().MaxLen(2048).Opt(),
				"email":            api.Str().Fmt("email-opt").MaxLen(254).Opt(),
				"enable":           api.Bool().Def(1).Opt(),
				"expire":           api.Int().Min(0).Opt(),
				"firstname":        api.Str().MaxLen(1024).Opt(),
				"groups":           api.Str().Fmt("pve-groupid-list").Opt(),
				"keys":             api.Str().Pat("[0-9a-zA-Z!=]{0,4096}").Opt(),
				"lastname":         api.Str().MaxLen(1024).Opt(),
				"realm-type":       api.Str().Fmt("pve-realm").Opt(),
				"tfa-locked-until": api.Int().Opt(),
				"tokens": api.Arr(api.Obj(map[string]*api.Schema{
					"comment": api.Str().Opt(),
					"expire":  api.Int().Min(0).Def("same as user").Opt(),
					"privsep": api.Bool().Def(1).Opt(),
					"tokenid": api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
				})).Opt(),
				"totp-locked": api.Bool().Opt(),
				"userid":      api.Str().Fmt("pve-userid").MaxLen(64),
			})).WithLinks(api.Link{Href: "{userid}", Rel: "child"}),
			Handle: d.userIndex,
		},
		{
			Name: "create_user", Path: "/access/users", HTTP: "POST",
			Description: "Create new user.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"and", []any{"userid-param", "Realm.AllocateUser"}, []any{"userid-group", []any{"User.Modify"}, "groups_param", "create"}}},
			Params: map[string]*api.Schema{
				"comment":   api.Str().MaxLen(2048).Opt().TT("<string>"),
				"email":     api.Str().Fmt("email-opt").MaxLen(254).Opt().TT("<string>"),
				"enable":    api.Bool().Def(1).Opt().TT("<boolean>"),
				"expire":    api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
				"firstname": api.Str().MaxLen(1024).Opt().TT("<string>"),
				"groups":    api.Str().Fmt("pve-groupid-list").Opt().TT("<string>"),
				"keys":      api.Str().Pat("[0-9a-zA-Z!=]{0,4096}").Opt(),
				"lastname":  api.Str().MaxLen(1024).Opt().TT("<string>"),
				"password":  api.Str().MinLen(8).MaxLen(64).Opt().TT("<string>"),
				"userid":    api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.createUser,
		},
		{
			Name: "delete_user", Path: "/access/users/{userid}", HTTP: "DELETE",
			Description: "Delete user.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"and", []any{"userid-param", "Realm.AllocateUser"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteUser,
		},
		{
			Name: "read_user", Path: "/access/users/{userid}", HTTP: "GET",
			Description: "Get user configuration.",
			Permissions: api.Permissions{Check: []any{"userid-group", []any{"User.Modify", "Sys.Audit"}}},
			Params: map[string]*api.Schema{
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"comment":   api.Str().MaxLen(2048).Opt(),
				"email":     api.Str().Fmt("email-opt").MaxLen(254).Opt(),
				"enable":    api.Bool().Def(1).Opt(),
				"expire":    api.Int().Min(0).Opt(),
				"firstname": api.Str().MaxLen(1024).Opt(),
				"groups":    api.Arr(api.Str().Fmt("pve-groupid")).Opt(),
				"keys":      api.Str().Pat("[0-9a-zA-Z!=]{0,4096}").Opt(),
				"lastname":  api.Str().MaxLen(1024).Opt(),
				"tokens": (&api.Schema{Type: "object"}).Opt().AdditionalOf(api.Obj(map[string]*api.Schema{
					"comment": api.Str().Opt(),
					"expire":  api.Int().Opt(),
					"privsep": api.Bool().Opt(),
				})),
			}).Additional(false),
			Handle: d.readUser,
		},
		{
			Name: "update_user", Path: "/access/users/{userid}", HTTP: "PUT",
			Description: "Update user configuration.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"userid-group", []any{"User.Modify"}, "groups_param", "update"}},
			Params: map[string]*api.Schema{
				"append":    api.Bool().Opt().Req("groups").TT("<boolean>"),
				"comment":   api.Str().MaxLen(2048).Opt().TT("<string>"),
				"email":     api.Str().Fmt("email-opt").MaxLen(254).Opt().TT("<string>"),
				"enable":    api.Bool().Def(1).Opt().TT("<boolean>"),
				"expire":    api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
				"firstname": api.Str().MaxLen(1024).Opt().TT("<string>"),
				"groups":    api.Str().Fmt("pve-groupid-list").Opt().TT("<string>"),
				"keys":      api.Str().Pat("[0-9a-zA-Z!=]{0,4096}").Opt(),
				"lastname":  api.Str().MaxLen(1024).Opt().TT("<string>"),
				"userid":    api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.updateUser,
		},
		{
			Name: "read_user_tfa_type", Path: "/access/users/{userid}/tfa", HTTP: "GET",
			Description: "Get user TFA types (Personal and Realm).",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify", "Sys.Audit"}}}},
			Params: map[string]*api.Schema{
				"multiple": api.Bool().Def(0).Opt().TT("<boolean>"),
				"userid":   api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"realm": api.Str().Enums("oath", "yubico").Opt(),
				"types": api.Arr(api.Str().Enums("totp", "u2f", "yubico", "webauthn", "recovedry")).Opt(),
				"user":  api.Str().Enums("oath", "u2f").Opt(),
			}).Additional(false),
			Handle: d.readUserTFAType,
		},
		{
			Name: "unlock_tfa", Path: "/access/users/{userid}/unlock-tfa", HTTP: "PUT",
			Description: "Unlock a user's TFA authentication.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"userid-group", []any{"User.Modify"}}},
			Params: map[string]*api.Schema{
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Bool(),
			Handle:  d.unlockTFA,
		},
	}
}

// tokenMethods are /access/users/{userid}/token/... (PVE's API2/User.pm).
func (d Deps) tokenMethods() []api.Method {
	return []api.Method{
		{
			Name: "token_index", Path: "/access/users/{userid}/token", HTTP: "GET",
			Description: "Get user API tokens.",
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"expire":  api.Int().Min(0).Def("same as user").Opt(),
				"privsep": api.Bool().Def(1).Opt(),
				"tokenid": api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
			})).WithLinks(api.Link{Href: "{tokenid}", Rel: "child"}),
			Handle: d.tokenIndex,
		},
		{
			Name: "remove_token", Path: "/access/users/{userid}/token/{tokenid}", HTTP: "DELETE",
			Description: "Remove API token for a specific user.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"tokenid": api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
				"userid":  api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.removeToken,
		},
		{
			Name: "read_token", Path: "/access/users/{userid}/token/{tokenid}", HTTP: "GET",
			Description: "Get specific API token information.",
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"tokenid": api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
				"userid":  api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"expire":  api.Int().Min(0).Def("same as user").Opt(),
				"privsep": api.Bool().Def(1).Opt(),
			}),
			Handle: d.readToken,
		},
		{
			Name: "generate_token", Path: "/access/users/{userid}/token/{tokenid}", HTTP: "POST",
			Description: "Generate a new API token for a specific user. NOTE: returns API token value, which needs to be stored as it cannot be retrieved afterwards!",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"comment":                  api.Str().Opt().TT("<string>"),
				"expire":                   api.Int().Min(0).Def("same as user").Opt().TT("<integer> (0 - N)"),
				"pvenode-allowed-networks": api.Str().MaxLen(4096).Opt().TT("<string>"),
				"privsep":                  api.Bool().Def(1).Opt().TT("<boolean>"),
				"tokenid":                  api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
				"userid":                   api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"full-tokenid": api.Str(),
				"info": api.Obj(map[string]*api.Schema{
					"comment": api.Str().Opt(),
					"expire":  api.Int().Min(0).Def("same as user").Opt(),
					"privsep": api.Bool().Def(1).Opt(),
				}),
				"value": api.Str(),
			}).Additional(false),
			Handle: d.generateToken,
		},
		{
			Name: "update_token_info", Path: "/access/users/{userid}/token/{tokenid}", HTTP: "PUT",
			Description: "Update API token for a specific user.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"comment":                  api.Str().Opt().TT("<string>"),
				"delete":                   api.Str().Fmt("pve-configid-list").Opt().TT("<string>"),
				"expire":                   api.Int().Min(0).Def("same as user").Opt().TT("<integer> (0 - N)"),
				"pvenode-allowed-networks": api.Str().MaxLen(4096).Opt().TT("<string>"),
				"privsep":                  api.Bool().Def(1).Opt().TT("<boolean>"),
				"tokenid":                  api.Str().Pat("(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"),
				"userid":                   api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"expire":  api.Int().Min(0).Def("same as user").Opt(),
				"privsep": api.Bool().Def(1).Opt(),
			}),
			Handle: d.updateTokenInfo,
		},
	}
}

// userData is a user as PVE's API returns it (extract_user_data): enable
// and expire always, the text fields when set. PVE splits user.cfg lines on
// ':' dropping trailing empty fields, so email is present (maybe empty)
// whenever a later field (comment, keys) is set.
func userData(u *access.User) map[string]any {
	out := map[string]any{"enable": b01(u.Enable), "expire": u.Expire}
	if u.Firstname != "" {
		out["firstname"] = u.Firstname
	}
	if u.Lastname != "" {
		out["lastname"] = u.Lastname
	}
	if u.Email != "" || u.Comment != "" || u.Keys != "" {
		out["email"] = u.Email
	}
	if u.Comment != "" {
		out["comment"] = u.Comment
	}
	if u.Keys != "" {
		out["keys"] = u.Keys
	}
	return out
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tokenData is a token's info as PVE returns it.
func tokenData(t *access.Token) map[string]any {
	out := map[string]any{"privsep": b01(t.Privsep), "expire": t.Expire}
	if t.Comment != "" {
		out["comment"] = t.Comment
	}
	return out
}

// userIndex is GET /access/users: the users the caller may see (User.Modify
// or Sys.Audit on /access/groups or on a group they belong to, and always
// the caller), optionally with groups and tokens.
func (d Deps) userIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg := d.Access.UserCfg()
	caller := r.Identity.AuthID
	privs := []string{"User.Modify", "Sys.Audit"}
	all := d.Access.CheckPrivs(caller, "/access/groups", privs, true)
	allowed := map[string]bool{}
	if !all {
		for name, g := range cfg.Groups {
			if d.Access.CheckPrivs(caller, "/access/groups/"+name, privs, true) {
				for m := range g.Members {
					allowed[m] = true
				}
			}
		}
	}
	realms := d.realms()
	full := r.Params.Bool("full", false)
	enabled, filter := boolParam(r.Params, "enabled")
	ids := make([]string, 0, len(cfg.Users))
	for id := range cfg.Users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		if !all && id != caller && !allowed[id] {
			continue
		}
		u := cfg.Users[id]
		if filter && u.Enable != enabled {
			continue
		}
		e := userData(u)
		if full {
			e["groups"] = strings.Join(cfg.UserGroups(id), ",")
			if len(u.Tokens) > 0 {
				e["tokens"] = tokenList(u)
			}
		}
		if _, realm, ok := strings.Cut(id, "@"); ok {
			if rc, ok := realms[realm]; ok {
				e["realm-type"] = rc.Type
			}
		}
		e["userid"] = id
		if ls, ok := d.Access.TFALockStatus(id); ok { // as PVE's tfa_lock_status
			e["totp-locked"] = ls.TOTPLocked
			if ls.TFALockedUntil != nil {
				e["tfa-locked-until"] = *ls.TFALockedUntil
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// realms is domains.cfg (empty when it cannot be read).
func (d Deps) realms() map[string]access.Realm { return d.Access.Realms() }

// readUser is GET /access/users/{userid}: the user with its groups and
// tokens.
func (d Deps) readUser(ctx context.Context, r *api.Request) (any, error) {
	id := r.Params.Get("userid")
	cfg := d.Access.UserCfg()
	u := cfg.Users[id]
	if u == nil {
		return nil, noSuchUser(id)
	}
	out := userData(u)
	groups := cfg.UserGroups(id)
	if groups == nil {
		groups = []string{}
	}
	out["groups"] = groups
	var tokens map[string]any // PVE answers null for a user without tokens
	if len(u.Tokens) > 0 {
		tokens = map[string]any{}
		for n, t := range u.Tokens {
			tokens[n] = tokenData(t)
		}
	}
	out["tokens"] = tokens
	return out, nil
}

// setPassword stores a password for a user of realm (PVE's
// domain_set_password): the pve realm's priv/shadow.cfg.
func (d Deps) setPassword(ctx context.Context, realm, name, password string) error {
	rc, ok := d.realms()[realm]
	if !ok {
		return die("auth domain '%s' does not exist", realm)
	}
	switch rc.Type {
	case "pve":
		return access.SetPassword(ctx, d.Root, name, password)
	case "pam":
		return api.Errorf(http.StatusNotImplemented, "not implemented: setting passwords of the pam realm (use passwd on the node)")
	}
	return die("realm '%s' does not allow setting passwords", realm)
}

// createUser is POST /access/users.
func (d Deps) createUser(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	id := p.Get("userid")
	name, realm, _ := strings.Cut(id, "@")
	cur := d.Access.UserCfg()
	if cur.Users[id] != nil { // checked again under the lock
		return nil, wrapLocked("create user failed", die("user '%s' already exists", id))
	}
	for _, g := range access.SplitList(p.Get("groups")) {
		if cur.Groups[g] == nil {
			return nil, wrapLocked("create user failed", die("no such group '%s'", g))
		}
	}
	if pw, ok := p.String("password"); ok {
		if err := d.setPassword(ctx, realm, name, pw); err != nil {
			return nil, wrapLocked("create user failed", err)
		}
	}
	return nil, d.updateUserCfg(ctx, "create user failed", func(cfg *access.UserCfg) error {
		if cfg.Users[id] != nil {
			return die("user '%s' already exists", id)
		}
		u := &access.User{Enable: p.Bool("enable", true), Expire: p.Int("expire", 0),
			Firstname: p.Get("firstname"), Lastname: p.Get("lastname"), Email: p.Get("email"),
			Comment: p.Get("comment"), Keys: p.Get("keys")}
		for _, g := range access.SplitList(p.Get("groups")) {
			grp := cfg.Groups[g]
			if grp == nil {
				return die("no such group '%s'", g)
			}
			grp.Members[id] = true
		}
		cfg.Users[id] = u
		return nil
	})
}

// updateUser is PUT /access/users/{userid}.
func (d Deps) updateUser(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	id := p.Get("userid")
	return nil, d.updateUserCfg(ctx, "update user failed", func(cfg *access.UserCfg) error {
		u := cfg.Users[id]
		if u == nil {
			return noSuchUser(id)
		}
		if v, ok := boolParam(p, "enable"); ok {
			u.Enable = v
		}
		if p.Has("expire") {
			u.Expire = p.Int("expire", 0)
		}
		if p.Has("groups") && !p.Bool("append", false) {
			for _, g := range cfg.Groups {
				delete(g.Members, id)
			}
		}
		for _, g := range access.SplitList(p.Get("groups")) {
			grp := cfg.Groups[g]
			if grp == nil {
				return die("no such group '%s'", g)
			}
			grp.Members[id] = true
		}
		for name, field := range map[string]*string{
			"firstname": &u.Firstname, "lastname": &u.Lastname, "email": &u.Email,
			"comment": &u.Comment, "keys": &u.Keys,
		} {
			if v, ok := p.String(name); ok {
				*field = v
			}
		}
		return nil
	})
}

// deleteUser is DELETE /access/users/{userid}: the user, its password (pve
// realm), its group memberships, its ACL entries and its tokens with their
// secrets and ACL entries.
func (d Deps) deleteUser(ctx context.Context, r *api.Request) (any, error) {
	id := r.Params.Get("userid")
	name, realm, _ := strings.Cut(id, "@")
	var tokens []string
	err := d.updateUserCfg(ctx, "delete user failed", func(cfg *access.UserCfg) error {
		u := cfg.Users[id]
		if u == nil {
			return noSuchUser(id)
		}
		for n := range u.Tokens {
			tokens = append(tokens, id+"!"+n)
		}
		delete(cfg.Users, id)
		for _, g := range cfg.Groups {
			delete(g.Members, id)
		}
		cfg.WalkACL(func(_ string, n *access.ACLNode) {
			delete(n.Users, id)
			for _, t := range tokens {
				delete(n.Tokens, t)
			}
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(tokens) > 0 {
		if err := access.UpdateTokenSecrets(ctx, d.Root, func(s access.TokenSecrets) error {
			for _, t := range tokens {
				delete(s, t)
			}
			return nil
		}); err != nil {
			return nil, die("delete user failed: %v - but deleted the user", err)
		}
	}
	if err := access.ClearTokenNetworks(ctx, d.Root, id); err != nil {
		return nil, die("delete user failed: %v - but deleted the user", err)
	}
	if err := access.UpdateTFACfg(ctx, d.Root, time.Now(), func(c *tfa.Config) (bool, error) {
		return c.RemoveUser(id), nil
	}); err != nil {
		return nil, die("delete user failed: %v - but deleted the user", err)
	}
	if d.realms()[realm].Type == "pve" {
		if err := access.RemovePassword(ctx, d.Root, name); err != nil {
			return nil, die("delete user failed: %v - but deleted the user", err)
		}
	}
	d.Access.Invalidate()
	return nil, nil
}

// token returns the user's token or PVE's errors.
func token(cfg *access.UserCfg, userid, name string) (*access.Token, error) {
	u := cfg.Users[userid]
	if u == nil {
		return nil, noSuchUser(userid)
	}
	t := u.Tokens[name]
	if t == nil {
		return nil, die("no such token '%s' for user '%s'", name, userid)
	}
	return t, nil
}

// tokenIndex is GET /access/users/{userid}/token.
func (d Deps) tokenIndex(ctx context.Context, r *api.Request) (any, error) {
	id := r.Params.Get("userid")
	u := d.Access.UserCfg().Users[id]
	if u == nil {
		return nil, noSuchUser(id)
	}
	return tokenList(u), nil
}

// tokenList is a user's tokens with their ids, sorted.
func tokenList(u *access.User) []map[string]any {
	out := make([]map[string]any, 0, len(u.Tokens))
	for _, n := range slices.Sorted(maps.Keys(u.Tokens)) {
		t := tokenData(u.Tokens[n])
		t["tokenid"] = n
		out = append(out, t)
	}
	return out
}

// readToken is GET /access/users/{userid}/token/{tokenid}.
func (d Deps) readToken(ctx context.Context, r *api.Request) (any, error) {
	t, err := token(d.Access.UserCfg(), r.Params.Get("userid"), r.Params.Get("tokenid"))
	if err != nil {
		return nil, err
	}
	return tokenData(t), nil
}

// newTokenSecret is a random UUID (version 4), the form of PVE's secrets.
func newTokenSecret() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// generateToken is POST /access/users/{userid}/token/{tokenid}: the
// secret is written to priv/token.cfg and shown once.
func (d Deps) generateToken(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	id, name := p.Get("userid"), p.Get("tokenid")
	u := d.Access.UserCfg().Users[id]
	if u == nil {
		return nil, noSuchUser(id)
	}
	if u.Tokens[name] != nil {
		return nil, api.ParamError(map[string]string{"tokenid": "Token already exists."})
	}
	full := id + "!" + name
	secret, err := newTokenSecret()
	if err != nil {
		return nil, err
	}
	tok := &access.Token{Privsep: p.Bool("privsep", true), Expire: p.Int("expire", 0), Comment: p.Get("comment")}
	nets, setNets := p.String(networksParam)
	if err := checkNetworks(nets, setNets); err != nil {
		return nil, err
	}
	err = d.updateUserCfg(ctx, "generating token failed", func(cfg *access.UserCfg) error {
		u := cfg.Users[id]
		if u == nil {
			return noSuchUser(id)
		}
		if u.Tokens[name] != nil {
			return die("Token already exists.")
		}
		// The secret first: a token in user.cfg without one cannot be
		// used, a secret without a token is never looked at.
		// Networks, then the secret: a token is usable only once both are
		// written, and never without its restriction.
		if err := d.setTokenNetworks(ctx, full, nets); err != nil {
			return err
		}
		if err := access.UpdateTokenSecrets(ctx, d.Root, func(s access.TokenSecrets) error {
			s[full] = secret
			return nil
		}); err != nil {
			return err
		}
		if u.Tokens == nil {
			u.Tokens = map[string]*access.Token{}
		}
		u.Tokens[name] = tok
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"info": tokenData(tok), "value": secret, "full-tokenid": full}, nil
}

// updateTokenInfo is PUT /access/users/{userid}/token/{tokenid}.
func (d Deps) updateTokenInfo(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	id, name := p.Get("userid"), p.Get("tokenid")
	if _, err := token(d.Access.UserCfg(), id, name); err != nil {
		return nil, err
	}
	nets, setNets := p.String(networksParam)
	if err := checkNetworks(nets, setNets); err != nil {
		return nil, err
	}
	for _, k := range access.SplitList(p.Get("delete")) {
		if k != "comment" {
			return nil, api.ParamError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", k)})
		}
	}
	var out map[string]any
	err := d.updateUserCfg(ctx, "updating token info failed", func(cfg *access.UserCfg) error {
		t, err := token(cfg, id, name)
		if err != nil {
			return err
		}
		if v, ok := boolParam(p, "privsep"); ok {
			t.Privsep = v
		}
		if p.Has("expire") {
			t.Expire = p.Int("expire", 0)
		}
		if v, ok := p.String("comment"); ok {
			t.Comment = v
		}
		if slices.Contains(access.SplitList(p.Get("delete")), "comment") {
			t.Comment = ""
		}
		full := id + "!" + name
		if setNets { // "" clears the list
			if err := d.setTokenNetworks(ctx, full, nets); err != nil {
				return err
			}
		}
		out = tokenData(t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// removeToken is DELETE /access/users/{userid}/token/{tokenid}: the token,
// its secret and its ACL entries.
func (d Deps) removeToken(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	id, name := p.Get("userid"), p.Get("tokenid")
	if _, err := token(d.Access.UserCfg(), id, name); err != nil {
		return nil, err
	}
	full := id + "!" + name
	return nil, d.updateUserCfg(ctx, "deleting token failed", func(cfg *access.UserCfg) error {
		if _, err := token(cfg, id, name); err != nil {
			return err
		}
		if err := access.UpdateTokenSecrets(ctx, d.Root, func(s access.TokenSecrets) error {
			delete(s, full)
			return nil
		}); err != nil {
			return err
		}
		if err := access.ClearTokenNetworks(ctx, d.Root, full); err != nil {
			return err
		}
		delete(cfg.Users[id].Tokens, name)
		cfg.WalkACL(func(_ string, n *access.ACLNode) { delete(n.Tokens, full) })
		return nil
	})
}

// networksParam is this build's addition to the token methods: the source
// networks a token may be used from (ALLOW_FROM syntax), kept in
// access.TokenNetworksFile beside PVE's files. docs/audit.md.
const networksParam = "pvenode-allowed-networks"

func checkNetworks(list string, set bool) error {
	if !set || list == "" {
		return nil
	}
	if err := access.ValidateNetworkList(list); err != nil {
		return api.ParamError(map[string]string{networksParam: err.Error()})
	}
	return nil
}

// setTokenNetworks stores (or, for "", clears) a token's networks.
func (d Deps) setTokenNetworks(ctx context.Context, tokenID, list string) error {
	if list == "" {
		return access.ClearTokenNetworks(ctx, d.Root, tokenID)
	}
	return access.UpdateTokenNetworks(ctx, d.Root, func(t access.TokenNetworks) error {
		return t.Set(tokenID, list)
	})
}
