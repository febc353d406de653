package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/tfa"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// tfaMethods are /access/tfa (PVE's API2/TFA.pm).
func (d Deps) tfaMethods() []api.Method {
	return []api.Method{
		{
			Name: "list_tfa", Path: "/access/tfa", HTTP: "GET",
			Description: "List TFA configurations of users.",
			Protected:   true,
			Permissions: api.Permissions{User: "all"},
			Params:      map[string]*api.Schema{},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"entries": api.Arr(api.Obj(map[string]*api.Schema{
					"created":     api.Int(),
					"description": api.Str(),
					"enable":      api.Bool().Def(1).Opt(),
					"id":          api.Str(),
					"type":        api.Str().Enums("totp", "u2f", "webauthn", "recovery", "yubico"),
				})),
				"tfa-locked-until": api.Int().Opt(),
				"totp-locked":      api.Bool().Opt(),
				"userid":           api.Str(),
			})).WithLinks(api.Link{Href: "{userid}", Rel: "child"}),
			Handle: d.listTFA,
		},
		{
			Name: "list_user_tfa", Path: "/access/tfa/{userid}", HTTP: "GET",
			Description: "List TFA configurations of users.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify", "Sys.Audit"}}}},
			Params: map[string]*api.Schema{
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"created":     api.Int(),
				"description": api.Str(),
				"enable":      api.Bool().Def(1).Opt(),
				"id":          api.Str(),
				"type":        api.Str().Enums("totp", "u2f", "webauthn", "recovery", "yubico"),
			})).WithLinks(api.Link{Href: "{id}", Rel: "child"}),
			Handle: d.listUserTFA,
		},
		{
			Name: "add_tfa_entry", Path: "/access/tfa/{userid}", HTTP: "POST",
			Description: "Add a TFA entry for a user.",
			Protected:   true,
			NoToken:     true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"challenge":   api.Str().Opt().TT("<string>"),
				"description": api.Str().MaxLen(255).Opt().TT("<string>"),
				"password":    api.Str().MinLen(5).MaxLen(64).Opt().TT("<string>"),
				"totp":        api.Str().Opt().TT("<string>"),
				"type":        api.Str().Enums("totp", "u2f", "webauthn", "recovery", "yubico"),
				"userid":      api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
				"value":       api.Str().Opt().TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"challenge": api.Str().Opt(),
				"id":        api.Str(),
				"recovery":  api.Arr(api.Str()).Opt(),
			}),
			Handle: d.addTFAEntry,
		},
		{
			Name: "delete_tfa", Path: "/access/tfa/{userid}/{id}", HTTP: "DELETE",
			Description: "Delete a TFA entry by ID.",
			Protected:   true,
			NoToken:     true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"id":       api.Str().TT("<string>"),
				"password": api.Str().MinLen(5).MaxLen(64).Opt().TT("<string>"),
				"userid":   api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteTFA,
		},
		{
			Name: "get_tfa_entry", Path: "/access/tfa/{userid}/{id}", HTTP: "GET",
			Description: "Fetch a requested TFA entry if present.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify", "Sys.Audit"}}}},
			Params: map[string]*api.Schema{
				"id":     api.Str().TT("<string>"),
				"userid": api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"created":     api.Int(),
				"description": api.Str(),
				"enable":      api.Bool().Def(1).Opt(),
				"id":          api.Str(),
				"type":        api.Str().Enums("totp", "u2f", "webauthn", "recovery", "yubico"),
			}),
			Handle: d.getTFAEntry,
		},
		{
			Name: "update_tfa_entry", Path: "/access/tfa/{userid}/{id}", HTTP: "PUT",
			Description: "Add a TFA entry for a user.",
			Protected:   true,
			NoToken:     true,
			Permissions: api.Permissions{Check: []any{"or", []any{"userid-param", "self"}, []any{"userid-group", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"description": api.Str().MaxLen(255).Opt().TT("<string>"),
				"enable":      api.Bool().Opt().TT("<boolean>"),
				"id":          api.Str().TT("<string>"),
				"password":    api.Str().MinLen(5).MaxLen(64).Opt().TT("<string>"),
				"userid":      api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.updateTFAEntry,
		},
	}
}

// readTFA reads priv/tfa.cfg (PVE's cfs_read_file, no lock).
func (d Deps) readTFA(now time.Time) (*tfa.Config, error) {
	if d.Root == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: reading priv/tfa.cfg in this daemon")
	}
	cfg, err := access.ReadTFACfg(d.Root, now)
	if err != nil {
		return nil, die("%v", err)
	}
	return cfg, nil
}

// updateTFA changes priv/tfa.cfg under its lock (PVE's lock_tfa_config,
// which passes errors on unchanged: status 500 with the message, other
// API errors as they are).
func (d Deps) updateTFA(ctx context.Context, now time.Time, fn func(*tfa.Config) (bool, error)) error {
	if d.Root == nil {
		return api.Errorf(http.StatusNotImplemented, "not implemented: writes to priv/tfa.cfg in this daemon")
	}
	err := access.UpdateTFACfg(ctx, d.Root, now, fn)
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	return die("%s", strings.TrimSuffix(err.Error(), "\n"))
}

// reauthForTFA is PVE's reauth_user_for_user_modification: the user must
// exist, only root@pam changes root@pam, and everybody but root@pam
// confirms the change with their own password. It returns the user id.
func (d Deps) reauthForTFA(ctx context.Context, r *api.Request) (string, error) {
	userid := r.Params.Get("userid")
	if d.Access.UserCfg().Users[userid] == nil {
		return "", noSuchUser(userid)
	}
	caller := r.Identity.UserID
	if userid == access.RootUser && caller != access.RootUser {
		return "", permissionFailed()
	}
	if caller == access.RootUser {
		return userid, nil
	}
	password, ok := r.Params.String("password")
	if !ok {
		return "", api.ParamError(map[string]string{"password": "password is required to modify user"})
	}
	pc, ok := d.Access.(passwordChecker)
	if !ok {
		return "", api.Errorf(http.StatusNotImplemented, "not implemented: password confirmation in this daemon")
	}
	if err := pc.CheckPassword(ctx, caller, password, r.ClientIP.String()); err != nil {
		if errors.Is(err, access.ErrRealmNotImplemented) {
			return "", api.Errorf(http.StatusNotImplemented, "%v", err)
		}
		return "", die("%v", err)
	}
	return userid, nil
}

// listTFA is GET /access/tfa: everybody's entries for callers with
// User.Modify or Sys.Audit on /access/groups, else the caller's own and
// those of the members of the groups the caller has one of them on.
func (d Deps) listTFA(ctx context.Context, r *api.Request) (any, error) {
	now := time.Now()
	cfg, err := d.readTFA(now)
	if err != nil {
		return nil, err
	}
	entries := cfg.ListAll(now)
	caller := r.Identity.AuthID
	privs := []string{"User.Modify", "Sys.Audit"}
	if caller == access.RootUser || d.Access.CheckPrivs(caller, "/access/groups", privs, true) {
		return entries, nil
	}
	allowed := map[string]bool{}
	for name, g := range d.Access.UserCfg().Groups {
		if d.Access.CheckPrivs(caller, "/access/groups/"+name, privs, true) {
			for m := range g.Members {
				allowed[m] = true
			}
		}
	}
	out := entries[:0]
	for _, e := range entries {
		if e.UserID == caller || allowed[e.UserID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// listUserTFA is GET /access/tfa/{userid}.
func (d Deps) listUserTFA(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.readTFA(time.Now())
	if err != nil {
		return nil, err
	}
	return cfg.ListUser(r.Params.Get("userid")), nil
}

// getTFAEntry is GET /access/tfa/{userid}/{id}.
func (d Deps) getTFAEntry(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.readTFA(time.Now())
	if err != nil {
		return nil, err
	}
	id := r.Params.Get("id")
	e, ok := cfg.Entry(r.Params.Get("userid"), id)
	if !ok {
		return nil, api.Errorf(http.StatusNotFound, "No such tfa entry '%s'", id)
	}
	return e, nil
}

// addTFAEntry is POST /access/tfa/{userid}. Like PVE it converts old
// user.cfg keys into entries and marks the user ("keys" = "x") under the
// tfa.cfg lock; unlike PVE it changes nothing when the new entry is
// refused. u2f and webauthn registrations answer PVE's error when
// datacenter.cfg does not configure them and 501 when it does; Yubico
// entries answer PVE's realm errors, else 501 (no Yubico server check).
func (d Deps) addTFAEntry(ctx context.Context, r *api.Request) (any, error) {
	userid, err := d.reauthForTFA(ctx, r)
	if err != nil {
		return nil, err
	}
	_, realm, _ := ticket.ParseUserID(userid)
	p := r.Params
	opt := func(name string) *string {
		if v, ok := p.String(name); ok {
			return &v
		}
		return nil
	}
	params := tfa.AddParams{
		Type:        tfa.Type(p.Get("type")),
		Description: opt("description"),
		TOTP:        opt("totp"),
		Value:       opt("value"),
		Challenge:   opt("challenge"),
	}
	switch params.Type {
	case tfa.TypeYubico:
		if err := d.checkYubicoRealm(realm); err != nil {
			return nil, err
		}
	case tfa.TypeU2F, tfa.TypeWebAuthn:
		if err := d.checkRegistration(params); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	var info tfa.UpdateInfo
	err = d.updateTFA(ctx, now, func(cfg *tfa.Config) (bool, error) {
		var addErr error
		err := access.UpdateUserCfg(ctx, d.Root, func(uc *access.UserCfg) error {
			u := uc.Users[userid]
			if u == nil {
				return noSuchUser(userid)
			}
			if access.HasOldTFAKeys(u.Keys) {
				if err := d.addOldKeys(cfg, userid, realm, u.Keys, now); err != nil {
					return err
				}
			}
			u.Keys = "x"
			info, addErr = cfg.Add(userid, params, now)
			return addErr
		})
		d.Access.Invalidate()
		if addErr != nil {
			return false, die("%v", addErr)
		}
		if err != nil {
			return false, wrapLocked("enabling TFA for the user failed", err)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// addOldKeys converts a user's old user.cfg keys with the realm's tfa
// option (PVE's set_user_tfa_enabled).
func (d Deps) addOldKeys(cfg *tfa.Config, userid, realm, keys string, now time.Time) error {
	domains, err := d.readDomains()
	if err != nil {
		return err
	}
	rc := domains.Realms[realm]
	if rc == nil {
		return die("auth domain '%s' does not exist", realm)
	}
	var realmTFA map[string]string
	if opt := rc.Props["tfa"]; perlTrue(opt) {
		if realmTFA, err = access.ParseRealmTFA(opt); err != nil {
			return die("%v", err)
		}
	}
	for _, w := range access.AddOldTFAKeys(cfg, userid, keys, realmTFA, now) {
		d.Log.Warn(fmt.Sprintf("%v", w))
	}
	return nil
}

// checkYubicoRealm is the part of PVE's validate_yubico_otp before it asks
// the Yubico server, which is not implemented.
func (d Deps) checkYubicoRealm(realm string) error {
	domains, err := d.readDomains()
	if err != nil {
		return err
	}
	rc := domains.Realms[realm]
	if rc == nil {
		return die("auth domain '%s' does not exist", realm)
	}
	opt := rc.Props["tfa"]
	if !perlTrue(opt) {
		return die("no yubico otp configuration available for realm %s", realm)
	}
	if t, err := access.ParseRealmTFA(opt); err != nil {
		return die("%v", err)
	} else if t["type"] != "yubico" {
		return die("realm is not setup for Yubico OTP")
	}
	return api.Errorf(http.StatusNotImplemented, "not implemented: Yubico OTP verification")
}

// checkRegistration answers a u2f or webauthn registration step with
// proxmox-tfa's parameter errors, then its error for a missing
// configuration (datacenter.cfg's u2f or webauthn option), else 501.
func (d Deps) checkRegistration(p tfa.AddParams) error {
	if p.TOTP != nil {
		return die("'totp' parameter is invalid for '%s' entries", p.Type)
	}
	if p.Challenge == nil && p.Description == nil {
		return die("'description' is required for new entries")
	}
	if p.Challenge != nil && p.Value == nil {
		return die("missing 'value' parameter (%s challenge response missing)", p.Type)
	}
	configured, err := d.datacenterHas(string(p.Type))
	if err != nil {
		return err
	}
	if !configured {
		return die("no %s configuration available", p.Type)
	}
	return api.Errorf(http.StatusNotImplemented, "not implemented: %s registration", p.Type)
}

// datacenterHas reports whether datacenter.cfg sets the option key.
func (d Deps) datacenterHas(key string) (bool, error) {
	data, err := d.Root.ReadFileOrEmpty("datacenter.cfg")
	if err != nil {
		return false, die("%v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") && k == key && strings.TrimSpace(v) != "" {
			return true, nil
		}
	}
	return false, nil
}

// deleteTFA is DELETE /access/tfa/{userid}/{id}. When the user has no
// entry left, its user.cfg "keys" are cleared, as PVE does.
func (d Deps) deleteTFA(ctx context.Context, r *api.Request) (any, error) {
	userid, err := d.reauthForTFA(ctx, r)
	if err != nil {
		return nil, err
	}
	left := true
	err = d.updateTFA(ctx, time.Now(), func(cfg *tfa.Config) (bool, error) {
		var err error
		if left, err = cfg.Delete(userid, r.Params.Get("id")); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if !left {
		err := d.updateUserCfg(ctx, "enabling TFA for the user failed", func(uc *access.UserCfg) error {
			if u := uc.Users[userid]; u != nil {
				u.Keys = ""
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// updateTFAEntry is PUT /access/tfa/{userid}/{id}.
func (d Deps) updateTFAEntry(ctx context.Context, r *api.Request) (any, error) {
	userid, err := d.reauthForTFA(ctx, r)
	if err != nil {
		return nil, err
	}
	var desc *string
	if v, ok := r.Params.String("description"); ok {
		desc = &v
	}
	var enable *bool
	if v, ok := boolParam(r.Params, "enable"); ok {
		enable = &v
	}
	err = d.updateTFA(ctx, time.Now(), func(cfg *tfa.Config) (bool, error) {
		return true, cfg.Update(userid, r.Params.Get("id"), desc, enable)
	})
	return nil, err
}

// tfaChallengeDirer is implemented by a Service that knows the node-local
// directory of the TFA challenge files (*access.Authenticator).
type tfaChallengeDirer interface{ TFAChallengeDir() string }

// readUserTFAType is GET /access/users/{userid}/tfa: the realm's enforced
// factor type and the user's factors. Without "multiple", "user" is the
// single type PVE's legacy view of tfa.cfg reports (u2f, oath or yubico,
// "incompatible" for users with only webauthn or recovery entries); with
// it, "user" is the list of the user's factor types.
func (d Deps) readUserTFAType(ctx context.Context, r *api.Request) (any, error) {
	userid := r.Params.Get("userid")
	_, realm, err := ticket.ParseUserID(userid)
	if err != nil {
		return nil, die("%v", err)
	}
	domains, err := d.readDomains()
	if err != nil {
		return nil, err
	}
	rc := domains.Realms[realm]
	if rc == nil {
		return nil, die("auth domain '%s' does not exist", realm)
	}
	res := map[string]any{}
	if opt := rc.Props["tfa"]; perlTrue(opt) {
		t, err := access.ParseRealmTFA(opt)
		if err != nil {
			return nil, die("%v", err)
		}
		if perlTrue(t["type"]) {
			res["realm"] = t["type"]
		}
	}
	cfg, err := d.readTFA(time.Now())
	if err != nil {
		return nil, err
	}
	u := cfg.Users[userid]
	if r.Params.Bool("multiple", false) {
		types := []string{}
		if u != nil {
			for _, t := range []struct {
				name string
				has  bool
			}{
				{"totp", len(u.TOTP) > 0},
				{"u2f", len(u.U2F) > 0},
				{"webauthn", len(u.WebAuthn) > 0},
				{"recovery", u.Recovery != nil},
				{"yubico", len(u.Yubico) > 0},
			} {
				if t.has {
					types = append(types, t.name)
				}
			}
		}
		res["user"] = types
	} else if u != nil {
		switch {
		case len(u.U2F) > 0:
			res["user"] = "u2f"
		case len(u.TOTP) > 0:
			res["user"] = "oath"
		case len(u.Yubico) > 0:
			res["user"] = "yubico"
		case len(u.WebAuthn) > 0 || u.Recovery != nil:
			res["user"] = "incompatible"
		}
	}
	return res, nil
}

// unlockTFA is PUT /access/users/{userid}/unlock-tfa: it resets the
// node-local failure counters and clears the user's TOTP and TFA locks,
// answering whether the user was locked; tfa.cfg is only written then.
func (d Deps) unlockTFA(ctx context.Context, r *api.Request) (any, error) {
	userid := r.Params.Get("userid")
	now := time.Now()
	var wasLocked bool
	err := d.updateTFA(ctx, now, func(cfg *tfa.Config) (bool, error) {
		if cd, ok := d.Access.(tfaChallengeDirer); ok {
			if err := access.ResetTFAFailures(cd.TFAChallengeDir(), userid); err != nil {
				return false, err
			}
		}
		var err error
		wasLocked, err = cfg.Unlock(userid, nil, now)
		return wasLocked, err
	})
	if err != nil {
		return nil, err
	}
	return wasLocked, nil
}
