package access

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

func (d Deps) domainMethods() []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/access/domains", HTTP: "GET",
			Description: "Authentication domain index.",
			Permissions: api.Permissions{User: "world"},
			Params:      map[string]*api.Schema{},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"realm":   api.Str(),
				"tfa":     api.Str().Enums("yubico", "oath").Opt(),
				"type":    api.Str(),
			})).WithLinks(api.Link{Href: "{realm}", Rel: "child"}),
			Handle: d.domainIndex,
		},
		{
			Name: "create", Path: "/access/domains", HTTP: "POST",
			Description: "Add an authentication server.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/realm", []any{"Realm.Allocate"}}},
			Params: map[string]*api.Schema{
				"acr-values":            api.Str().Pat("^[^\\x00-\\x1F\\x7F <>#\"]*$").Opt(),
				"autocreate":            api.Bool().Def(0).Opt().TT("<boolean>"),
				"base_dn":               api.Str().MaxLen(256).Opt().TT("<string>"),
				"bind_dn":               api.Str().MaxLen(256).Opt().TT("<string>"),
				"capath":                api.Str().Def("/etc/ssl/certs").Opt().TT("<string>"),
				"case-sensitive":        api.Bool().Def(1).Opt().TT("<boolean>"),
				"cert":                  api.Str().Opt().TT("<string>"),
				"certkey":               api.Str().Opt().TT("<string>"),
				"check-connection":      api.Bool().Def(0).Opt().TT("<boolean>"),
				"client-id":             api.Str().MaxLen(256).Opt().TT("<string>"),
				"client-key":            api.Str().MaxLen(256).Opt().TT("<string>"),
				"comment":               api.Str().MaxLen(4096).Opt().TT("<string>"),
				"default":               api.Bool().Opt().TT("<boolean>"),
				"domain":                api.Str().Pat("\\S+").MaxLen(256).Opt(),
				"filter":                api.Str().MaxLen(2048).Opt().TT("<string>"),
				"group_classes":         api.Str().Fmt("ldap-simple-attr-list").Def("groupOfNames, group, univentionGroup, ipausergroup").Opt().TT("<string>"),
				"group_dn":              api.Str().MaxLen(256).Opt().TT("<string>"),
				"group_filter":          api.Str().MaxLen(2048).Opt().TT("<string>"),
				"group_name_attr":       api.Str().Fmt("ldap-simple-attr").MaxLen(256).Opt().TT("<string>"),
				"groups-autocreate":     api.Bool().Def(0).Opt().TT("<boolean>"),
				"groups-claim":          api.Str().Pat("(?^:[A-Za-z0-9\\.\\-_]+)").MaxLen(256).Opt(),
				"groups-overwrite":      api.Bool().Def(0).Opt().TT("<boolean>"),
				"issuer-url":            api.Str().MaxLen(256).Opt().TT("<string>"),
				"mode":                  api.Str().Enums("ldap", "ldaps", "ldap+starttls").Def("ldap").Opt(),
				"password":              api.Str().Opt().TT("<string>"),
				"port":                  api.Int().Range(1, 65535).Opt().TT("<integer> (1 - 65535)"),
				"prompt":                api.Str().Pat("(?:none|login|consent|select_account|\\S+)").Opt(),
				"query-userinfo":        api.Bool().Def(1).Opt().TT("<boolean>"),
				"realm":                 api.Str().Fmt("pve-realm").MaxLen(32).TT("<string>"),
				"scopes":                api.Str().Def("email profile").Opt().TT("<string>"),
				"secure":                api.Bool().Opt().TT("<boolean>"),
				"server1":               api.Str().Fmt("address").MaxLen(256).Opt().TT("<string>"),
				"server2":               api.Str().Fmt("address").MaxLen(256).Opt().TT("<string>"),
				"sslversion":            api.Str().Enums("tlsv1", "tlsv1_1", "tlsv1_2", "tlsv1_3").Opt(),
				"sync-defaults-options": api.Str().Fmt("realm-sync-options").Opt().TT("[enable-new=<1|0>] [,full=<1|0>] [,purge=<1|0>] [,remove-vanished=([acl];[properties];[entry])|none] [,scope=<users|groups|both>]"),
				"sync_attributes":       api.Str().Pat("\\w+=[^,]+(,\\s*\\w+=[^,]+)*").Opt(),
				"tfa":                   api.Str().Fmt("pve-tfa-config").MaxLen(128).Opt().TT("type=<TFATYPE> [,digits=<COUNT>] [,id=<ID>] [,key=<KEY>] [,step=<SECONDS>] [,url=<URL>]"),
				"type":                  api.Str().Enums("ad", "ldap", "openid", "pam", "pve"),
				"user_attr":             api.Str().Pat("\\S{2,}").MaxLen(256).Opt(),
				"user_classes":          api.Str().Fmt("ldap-simple-attr-list").Def("inetorgperson, posixaccount, person, user").Opt().TT("<string>"),
				"username-claim":        api.Str().Opt().TT("<string>"),
				"verify":                api.Bool().Def(0).Opt().TT("<boolean>"),
			},
			Returns: api.Null(),
			Handle:  d.createDomain,
		},
		{
			Name: "delete", Path: "/access/domains/{realm}", HTTP: "DELETE",
			Description: "Delete an authentication server.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/realm", []any{"Realm.Allocate"}}},
			Params: map[string]*api.Schema{
				"realm": api.Str().Fmt("pve-realm").MaxLen(32).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteDomain,
		},
		{
			Name: "read", Path: "/access/domains/{realm}", HTTP: "GET",
			Description: "Get auth server configuration.",
			Permissions: api.Permissions{Check: []any{"perm", "/access/realm", []any{"Realm.Allocate", "Sys.Audit"}, "any", 1}},
			Params: map[string]*api.Schema{
				"realm": api.Str().Fmt("pve-realm").MaxLen(32).TT("<string>"),
			},
			Returns: (&api.Schema{Type: ""}),
			Handle:  d.readDomain,
		},
		{
			Name: "update", Path: "/access/domains/{realm}", HTTP: "PUT",
			Description: "Update authentication server settings.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/realm", []any{"Realm.Allocate"}}},
			Params: map[string]*api.Schema{
				"acr-values":            api.Str().Pat("^[^\\x00-\\x1F\\x7F <>#\"]*$").Opt(),
				"autocreate":            api.Bool().Def(0).Opt().TT("<boolean>"),
				"base_dn":               api.Str().MaxLen(256).Opt().TT("<string>"),
				"bind_dn":               api.Str().MaxLen(256).Opt().TT("<string>"),
				"capath":                api.Str().Def("/etc/ssl/certs").Opt().TT("<string>"),
				"case-sensitive":        api.Bool().Def(1).Opt().TT("<boolean>"),
				"cert":                  api.Str().Opt().TT("<string>"),
				"certkey":               api.Str().Opt().TT("<string>"),
				"check-connection":      api.Bool().Def(0).Opt().TT("<boolean>"),
				"client-id":             api.Str().MaxLen(256).Opt().TT("<string>"),
				"client-key":            api.Str().MaxLen(256).Opt().TT("<string>"),
				"comment":               api.Str().MaxLen(4096).Opt().TT("<string>"),
				"default":               api.Bool().Opt().TT("<boolean>"),
				"delete":                api.Str().Fmt("pve-configid-list").MaxLen(4096).Opt().TT("<string>"),
				"digest":                api.Str().MaxLen(64).Opt().TT("<string>"),
				"domain":                api.Str().Pat("\\S+").MaxLen(256).Opt(),
				"filter":                api.Str().MaxLen(2048).Opt().TT("<string>"),
				"group_classes":         api.Str().Fmt("ldap-simple-attr-list").Def("groupOfNames, group, univentionGroup, ipausergroup").Opt().TT("<string>"),
				"group_dn":              api.Str().MaxLen(256).Opt().TT("<string>"),
				"group_filter":          api.Str().MaxLen(2048).Opt().TT("<string>"),
				"group_name_attr":       api.Str().Fmt("ldap-simple-attr").MaxLen(256).Opt().TT("<string>"),
				"groups-autocreate":     api.Bool().Def(0).Opt().TT("<boolean>"),
				"groups-claim":          api.Str().Pat("(?^:[A-Za-z0-9\\.\\-_]+)").MaxLen(256).Opt(),
				"groups-overwrite":      api.Bool().Def(0).Opt().TT("<boolean>"),
				"issuer-url":            api.Str().MaxLen(256).Opt().TT("<string>"),
				"mode":                  api.Str().Enums("ldap", "ldaps", "ldap+starttls").Def("ldap").Opt(),
				"password":              api.Str().Opt().TT("<string>"),
				"port":                  api.Int().Range(1, 65535).Opt().TT("<integer> (1 - 65535)"),
				"prompt":                api.Str().Pat("(?:none|login|consent|select_account|\\S+)").Opt(),
				"query-userinfo":        api.Bool().Def(1).Opt().TT("<boolean>"),
				"realm":                 api.Str().Fmt("pve-realm").MaxLen(32).TT("<string>"),
				"scopes":                api.Str().Def("email profile").Opt().TT("<string>"),
				"secure":                api.Bool().Opt().TT("<boolean>"),
				"server1":               api.Str().Fmt("address").MaxLen(256).Opt().TT("<string>"),
				"server2":               api.Str().Fmt("address").MaxLen(256).Opt().TT("<string>"),
				"sslversion":            api.Str().Enums("tlsv1", "tlsv1_1", "tlsv1_2", "tlsv1_3").Opt(),
				"sync-defaults-options": api.Str().Fmt("realm-sync-options").Opt().TT("[enable-new=<1|0>] [,full=<1|0>] [,purge=<1|0>] [,remove-vanished=([acl];[properties];[entry])|none] [,scope=<users|groups|both>]"),
				"sync_attributes":       api.Str().Pat("\\w+=[^,]+(,\\s*\\w+=[^,]+)*").Opt(),
				"tfa":                   api.Str().Fmt("pve-tfa-config").MaxLen(128).Opt().TT("type=<TFATYPE> [,digits=<COUNT>] [,id=<ID>] [,key=<KEY>] [,step=<SECONDS>] [,url=<URL>]"),
				"user_attr":             api.Str().Pat("\\S{2,}").MaxLen(256).Opt(),
				"user_classes":          api.Str().Fmt("ldap-simple-attr-list").Def("inetorgperson, posixaccount, person, user").Opt().TT("<string>"),
				"verify":                api.Bool().Def(0).Opt().TT("<boolean>"),
			},
			Returns: api.Null(),
			Handle:  d.updateDomain,
		},
		{
			Name: "sync", Path: "/access/domains/{realm}/sync", HTTP: "POST",
			Description: "Syncs users and/or groups from the configured LDAP to user.cfg. NOTE: Synced groups will have the name 'name-$realm', so make sure those groups do not exist to prevent overwriting.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"and", []any{"perm", "/access/realm/{realm}", []any{"Realm.AllocateUser"}}, []any{"perm", "/access/groups", []any{"User.Modify"}}}},
			Params: map[string]*api.Schema{
				"dry-run":         api.Bool().Def(0).Opt().TT("<boolean>"),
				"enable-new":      api.Bool().Def("1").Opt().TT("<boolean>"),
				"full":            api.Bool().Opt().TT("<boolean>"),
				"purge":           api.Bool().Opt().TT("<boolean>"),
				"realm":           api.Str().Fmt("pve-realm").MaxLen(32).TT("<string>"),
				"remove-vanished": api.Str().Pat("(?:(?:(?:acl|properties|entry);)*(?:acl|properties|entry))|none").Def("none").Opt().TT("([acl];[properties];[entry])|none"),
				"scope":           api.Str().Enums("users", "groups", "both").Opt(),
			},
			Returns: api.Str(),
			Handle:  d.syncDomain,
		},
	}
}

// readDomains parses the current domains.cfg; problems are logged, as PVE
// warns about them.
func (d Deps) readDomains() (*access.DomainsCfg, error) {
	if d.Root == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: reading domains.cfg in this daemon")
	}
	data, err := d.Root.ReadFileOrEmpty(access.DomainsFile)
	if err != nil {
		return nil, err
	}
	cfg, warns := access.ParseDomainsCfg(access.DomainsFile, data)
	for _, w := range warns {
		d.Log.Warn("domains config problem", "err", w.String())
	}
	return cfg, nil
}

// updateDomains changes domains.cfg under its lock (PVE's
// lock_domain_config). fn changes the parsed file and may return a hook
// that runs once the new file has been rendered, just before it is
// written (the realm plugins' password hooks). Errors are answered as PVE
// does, "<what>: <error>" with status 500; 501s pass through. Nothing is
// written when fn, rendering or the hook fails.
func (d Deps) updateDomains(ctx context.Context, what string, fn func(*access.DomainsCfg) (func() error, error)) error {
	if d.Root == nil {
		return api.Errorf(http.StatusNotImplemented, "not implemented: writes to domains.cfg in this daemon")
	}
	err := d.Root.Update(ctx, access.DomainsFile, 0o640, func(old []byte) ([]byte, error) {
		cfg, _ := access.ParseDomainsCfg(access.DomainsFile, old)
		hook, err := fn(cfg)
		if err != nil {
			return nil, err
		}
		data, err := cfg.Marshal()
		if err != nil {
			return nil, err
		}
		if hook != nil {
			if err := hook(); err != nil {
				return nil, err
			}
		}
		return data, nil
	})
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotImplemented {
		return ae
	}
	return d.refresh(wrapLocked(what, err))
}

func (d Deps) domainIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.readDomains()
	if err != nil {
		return nil, err
	}
	res := make([]map[string]any, 0, len(cfg.Realms))
	for _, id := range cfg.RealmIDs() {
		rc := cfg.Realms[id]
		e := map[string]any{"realm": id, "type": rc.Type}
		if c := rc.Props["comment"]; perlTrue(c) {
			e["comment"] = c
		}
		if perlTrue(rc.Props["default"]) {
			e["default"] = 1
		}
		if t := rc.Props["tfa"]; perlTrue(t) {
			tfa, err := access.ParseRealmTFA(t)
			if err != nil {
				return nil, die("%v", err)
			}
			e["tfa"] = tfa["type"]
		}
		res = append(res, e)
	}
	return res, nil
}

func (d Deps) readDomain(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.readDomains()
	if err != nil {
		return nil, err
	}
	realm := r.Params.Get("realm")
	rc := cfg.Realms[realm]
	if rc == nil {
		return nil, die("domain '%s' does not exist", realm)
	}
	if rc.Type == "ldap" || rc.Type == "ad" {
		if s, ok := rc.Props["sync-defaults-options"]; ok {
			m, err := access.MapSyncDefaults(s, false)
			if err != nil {
				return nil, die("%v", err)
			}
			rc.Props["sync-defaults-options"] = m
		}
	}
	res := map[string]any{"type": rc.Type, "digest": cfg.Digest}
	for k, v := range rc.Props {
		res[k] = realmValue(k, v)
	}
	return res, nil
}

// realmValue renders a realm option in its JSON type: booleans and
// integers as numbers, as PVE's section config parser leaves them.
func realmValue(key, v string) any {
	switch access.RealmPropKind(key) {
	case access.PropBool, access.PropInt:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

// realmParams returns the realm options among the parameters, without
// those the handlers take out first.
func realmParams(p api.Params, skip ...string) map[string]string {
	out := map[string]string{}
	for k := range p {
		out[k] = p.Get(k)
	}
	for _, k := range skip {
		delete(out, k)
	}
	return out
}

// isLDAP reports whether a realm type is LDAP or Active Directory.
func isLDAP(typ string) bool { return typ == "ldap" || typ == "ad" }

// mapSyncParam rewrites a sync-defaults-options parameter of an LDAP or
// AD realm without the deprecated flags (PVE's map_sync_default_options).
func mapSyncParam(typ string, params map[string]string) error {
	s, ok := params["sync-defaults-options"]
	if !isLDAP(typ) || !ok {
		return nil
	}
	m, err := access.MapSyncDefaults(s, true)
	if err != nil {
		return die("%v", err)
	}
	params["sync-defaults-options"] = m
	return nil
}

// notImplementedCheck is the answer to check-connection: binding to an
// LDAP server is not implemented.
func notImplementedCheck() error {
	return api.Errorf(http.StatusNotImplemented, "not implemented: LDAP/AD connection check")
}

func clearDefault(cfg *access.DomainsCfg) {
	for _, rc := range cfg.Realms {
		delete(rc.Props, "default")
	}
}

func (d Deps) createDomain(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	password, hasPassword := p.String("password")
	realm, typ := p.Get("realm"), p.Get("type")
	checkConn, hasCheckConn := p.String("check-connection")
	params := realmParams(p, "password", "realm", "check-connection")
	return nil, d.updateDomains(ctx, "add auth server failed", func(cfg *access.DomainsCfg) (func() error, error) {
		switch {
		case cfg.Realms[realm] != nil:
			return nil, die("domain '%s' already exists", realm)
		case realm == "pam" || realm == "pve":
			return nil, die("unable to use reserved name '%s'", realm)
		case typ == "pam" || typ == "pve":
			return nil, die("unable to create builtin type '%s'", typ)
		case hasCheckConn && !isLDAP(typ):
			return nil, die("'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'")
		}
		if err := mapSyncParam(typ, params); err != nil {
			return nil, err
		}
		props, err := access.CheckRealmConfig(typ, params, true)
		if err != nil {
			return nil, die("%v", err)
		}
		if perlTrue(props["default"]) {
			clearDefault(cfg)
		}
		cfg.Realms[realm] = &access.RealmConfig{Type: typ, Props: props}
		cfg.Order = append(cfg.Order, realm)
		if hasPassword {
			if _, ok := access.RealmTypeOptions(typ)["password"]; !ok {
				d.Log.Warn("ignoring password parameter", "realm", realm)
				hasPassword = false
			}
		}
		if perlTrue(checkConn) {
			return nil, notImplementedCheck()
		}
		if !isLDAP(typ) {
			return nil, nil
		}
		return func() error {
			if hasPassword {
				return access.SetRealmPassword(d.Root, realm, password)
			}
			return access.DeleteRealmPassword(d.Root, realm)
		}, nil
	})
}

func (d Deps) updateDomain(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	password, hasPassword := p.String("password")
	realm := p.Get("realm")
	checkConn, hasCheckConn := p.String("check-connection")
	digest := p.Get("digest")
	toDelete := p.Get("delete")
	params := realmParams(p, "password", "digest", "realm", "check-connection", "delete")
	return nil, d.updateDomains(ctx, "update auth server failed", func(cfg *access.DomainsCfg) (func() error, error) {
		if perlTrue(digest) && cfg.Digest != digest {
			return nil, die("detected modified configuration - file changed by other user? Try again.")
		}
		rc := cfg.Realms[realm]
		if rc == nil {
			return nil, die("domain '%s' does not exist", realm)
		}
		typ := rc.Type
		if hasCheckConn && !isLDAP(typ) {
			return nil, die("'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'")
		}
		if !perlTrue(toDelete) && len(params) == 0 && !hasPassword {
			return nil, die("no options specified")
		}
		deletePassword := false
		for _, opt := range access.SplitList(toDelete) {
			delete(rc.Props, opt)
			switch opt {
			case "password":
				deletePassword = true
			case "type":
				rc.Type = ""
			}
		}
		if err := mapSyncParam(typ, params); err != nil {
			return nil, err
		}
		props, err := access.CheckRealmConfig(typ, params, false)
		if err != nil {
			return nil, die("%v", err)
		}
		if perlTrue(props["default"]) {
			clearDefault(cfg)
		}
		for k, v := range props {
			rc.Props[k] = v
		}
		if perlTrue(checkConn) {
			return nil, notImplementedCheck()
		}
		if !isLDAP(typ) || !(deletePassword || hasPassword) {
			return nil, nil
		}
		return func() error {
			if hasPassword {
				return access.SetRealmPassword(d.Root, realm, password)
			}
			return access.DeleteRealmPassword(d.Root, realm)
		}, nil
	})
}

func (d Deps) deleteDomain(ctx context.Context, r *api.Request) (any, error) {
	realm := r.Params.Get("realm")
	// As in PVE, pam and pve can be deleted too: their sections go, and
	// the realms come back with their defaults when the file is next read.
	return nil, d.updateDomains(ctx, "delete auth server failed", func(cfg *access.DomainsCfg) (func() error, error) {
		rc := cfg.Realms[realm]
		if rc == nil {
			return nil, die("authentication domain '%s' does not exist", realm)
		}
		typ := rc.Type
		delete(cfg.Realms, realm)
		if !isLDAP(typ) {
			return nil, nil
		}
		return func() error { return access.DeleteRealmPassword(d.Root, realm) }, nil
	})
}

func (d Deps) syncDomain(ctx context.Context, r *api.Request) (any, error) {
	cfg, err := d.readDomains()
	if err != nil {
		return nil, err
	}
	realm := r.Params.Get("realm")
	rc := cfg.Realms[realm]
	if rc == nil {
		return nil, api.ParamError(map[string]string{"realm": "Realm does not exist."})
	}
	if !isLDAP(rc.Type) {
		return nil, die("Cannot sync realm type '%s'! Only LDAP/AD realms can be synced.", rc.Type)
	}
	scope := r.Params.Get("scope")
	if scope == "" {
		if s, ok := rc.Props["sync-defaults-options"]; ok {
			opts, err := access.ParseSyncOptions(s)
			if err != nil {
				return nil, die("%v", err)
			}
			scope = opts["scope"]
		}
	}
	if scope == "" {
		return nil, api.ParamError(map[string]string{
			"scope": "Not passed as parameter and not defined in realm default sync options.",
		})
	}
	return nil, api.Errorf(http.StatusNotImplemented, "not implemented: LDAP/AD realm sync")
}
