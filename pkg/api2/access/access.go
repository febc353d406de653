// Package access declares the /access methods: the index, login tickets,
// the permission dump, users and their API tokens, groups, roles, the ACL,
// realms and password changes, with PVE's paths, parameters, answers and
// permission rules. Writes go through the config-root package under the
// user.cfg lock (access.UpdateUserCfg and friends).
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/pvenode/pvenode/pkg/tfa"

	"github.com/pvenode/pvenode/pkg/loginguard"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

// Service is what the access methods need; *access.Authenticator has it.
type Service interface {
	LoginWith(ctx context.Context, p access.LoginParams) (*access.LoginResult, error)
	VerifyLogin(ctx context.Context, username, password, realm, clientIP, path string, privs []string) (string, error)
	PermissionsTree(authid string) map[string]map[string]int
	Permissions(authid, path string) access.PrivSet
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
	// UserCfg is the current user.cfg (shared: read only).
	UserCfg() *access.UserCfg
	// Invalidate drops the cached config files after a write.
	Invalidate()
	// Realms is domains.cfg (cached; read only).
	Realms() map[string]access.Realm
	// TFALockStatus is a user's second-factor lock state (cached tfa.cfg).
	TFALockStatus(userid string) (tfa.LockStatus, bool)
}

// Deps are the collaborators of the access methods. All are required.
type Deps struct {
	Access Service
	// Log receives the login failure lines (syslog style, for fail2ban).
	Log *slog.Logger
	// Root is the config root (/etc/pve) the write methods change.
	Root *pvefs.Root
	// Guard holds back failed logins (PVE's 3 s) and throttles their
	// sources. Optional: nil (pveproxy, which forwards logins) does neither.
	Guard *loginguard.Guard
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	userPat := `(?^:^(?^:[^\s:/]+)\@(?^:[A-Za-z][A-Za-z0-9\.\-_]+)(?:!(?^:[A-Za-z][A-Za-z0-9\.\-_]+))?$)`
	methods := []api.Method{
		{
			Name: "index", Path: "/access", HTTP: "GET",
			Description: "Directory index.",
			Permissions: api.AllUsers,
			Returns: api.Arr(api.Obj(map[string]*api.Schema{"subdir": api.Str()})).
				WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
			// PVE lists its sub-APIs and then ticket and password; openid
			// is not implemented here and left out.
			Handle: api.DirIndex("subdir", "users", "groups", "roles", "acl", "domains", "tfa", "ticket", "password"),
		},
		{
			Name: "get_ticket", Path: "/access/ticket", HTTP: "GET",
			Description: "Dummy. Useful for formatters which want to provide a login page.",
			Permissions: api.World,
			Returns:     api.Null(),
			Handle:      func(context.Context, *api.Request) (any, error) { return nil, nil },
		},
		{
			Name: "create_ticket", Path: "/access/ticket", HTTP: "POST",
			Description: "Create or verify authentication ticket.",
			Protected:   true,
			NoToken:     true,
			Permissions: api.Permissions{Description: "You need to pass valid credientials.", User: "world"},
			Params: map[string]*api.Schema{
				"username":      api.Str().MaxLen(64).TT("<string>"),
				"password":      api.Str().TT("<string>"),
				"realm":         api.Str().Fmt("pve-realm").MaxLen(32).Opt().TT("<string>"),
				"otp":           api.Str().Opt().TT("<string>"),
				"path":          api.Str().MaxLen(64).Opt().Req("privs").TT("<string>"),
				"privs":         api.Str().Fmt("pve-priv-list").MaxLen(64).Opt().Req("path").TT("<string>"),
				"new-format":    api.Bool().Def(1).Opt().TT("<boolean>"),
				"tfa-challenge": api.Str().Opt().TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"username":            api.Str(),
				"ticket":              api.Str().Opt(),
				"CSRFPreventionToken": api.Str().Opt(),
				"clustername":         api.Str().Opt(),
			}),
			Handle: d.guardLogin(d.createTicket),
		},
		{
			Name: "permissions", Path: "/access/permissions", HTTP: "GET",
			Description: "Retrieve effective permissions of given user/token.",
			Permissions: api.Permissions{
				Description: "Each user/token is allowed to dump their own permissions (or that of owned tokens). A user can dump the permissions of another user or their tokens if they have 'Sys.Audit' permission on /access.",
				User:        "all",
			},
			Params: map[string]*api.Schema{
				"userid": api.Str().Pat(userPat).Opt(),
				"path":   api.Str().Opt().TT("<string>"),
			},
			Returns: &api.Schema{Type: "object"},
			Handle:  d.permissions,
		},
	}
	for _, group := range [][]api.Method{
		d.userMethods(), d.tokenMethods(), d.groupMethods(), d.roleMethods(),
		d.aclMethods(), d.domainMethods(), d.passwordMethods(), d.tfaMethods(),
	} {
		methods = append(methods, group...)
	}
	return methods
}

// ticketAnswer is the data of POST /access/ticket in verify mode.
type ticketAnswer struct {
	Username string `json:"username"`
}

func (d Deps) createTicket(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	ip := r.ClientIP.String()
	if path := p.Get("path"); path != "" {
		privs := access.SplitList(p.Get("privs"))
		user, err := d.Access.VerifyLogin(ctx, p.Get("username"), p.Get("password"), p.Get("realm"), ip, path, privs)
		if err != nil {
			return nil, d.loginError(err)
		}
		return ticketAnswer{Username: user}, nil
	}
	res, err := d.Access.LoginWith(ctx, access.LoginParams{
		Username: p.Get("username"), Password: p.Get("password"), Realm: p.Get("realm"),
		OTP: p.Get("otp"), TFAChallenge: p.Get("tfa-challenge"), ClientIP: ip,
	})
	if err != nil {
		return nil, d.loginError(err)
	}
	d.Log.Info(fmt.Sprintf("successful auth for user '%s'", res.Username))
	return res, nil
}

// loginError logs a failed login in PVE's syslog line and answers 401
// "authentication failure" without detail, so that user names cannot be
// probed.
func (d Deps) loginError(err error) error {
	switch {
	case errors.Is(err, access.ErrAuthFailed):
		var ae *access.AuthError
		if errors.As(err, &ae) {
			d.logFailure(ae.ClientIP, ae.User, pveReason(ae.User, ae.Reason))
		} else {
			d.logFailure("", "", err.Error())
		}
		return loginFailed()
	case errors.Is(err, access.ErrTFANotImplemented):
		return api.Errorf(http.StatusNotImplemented, "not implemented: two-factor login")
	}
	return err
}

// loginFailed is the answer to every failed login.
func loginFailed() error {
	return &api.Error{Status: http.StatusUnauthorized, Message: api.MsgLoginFail + "\n"}
}

// logFailure writes PVE's line for a failed login: pvedaemon's
// syslog('err', "authentication failure; rhost=... user=... msg=...")
// (PVE::API2::AccessControl), which fail2ban's "proxmox" filter matches.
// PVE writes "rhost=" with nothing after it when the client address is
// unknown.
func (d Deps) logFailure(rhost, user, msg string) {
	if rhost == "invalid IP" { // netip.Addr{}.String()
		rhost = ""
	}
	d.Log.Error(loginguard.FailureLine(rhost, user, msg), loginguard.LineKey, true)
}

// pveReason turns the reason of an access.AuthError into PVE's msg= text
// where the two differ: an invalid user id fails with verify_username's
// words (PVE checks it first), and PAM errors are pam_strerror's text
// without our "pam: " prefix.
func pveReason(user, reason string) string {
	if _, _, err := ticket.ParseUserID(user); err != nil {
		switch n := utf8.RuneCountInString(user); {
		case n < 3:
			return fmt.Sprintf("user name '%s' is too short", user)
		case n > 64:
			return fmt.Sprintf("user name '%s' is too long (%d > 64)", user, n)
		default:
			return fmt.Sprintf("value '%s' does not look like a valid user name", user)
		}
	}
	rest, ok := strings.CutPrefix(reason, "pam: ")
	if !ok {
		return reason
	}
	if init, ok := strings.CutPrefix(rest, "start "); ok {
		if _, e, ok := strings.Cut(init, ": "); ok {
			return "error during PAM init: " + e
		}
	}
	return rest
}

// guardLogin runs the login handler h under d.Guard: an attempt from a
// source with many recent failures waits before its credentials are even
// checked (or fails unchecked when its source has too many queued), and a
// failed attempt is answered 3 s after it arrived, as PVE does; the waits
// happen on the request's own goroutine and end with its context.
func (d Deps) guardLogin(h api.HandlerFunc) api.HandlerFunc {
	if d.Guard == nil {
		return h
	}
	return func(ctx context.Context, r *api.Request) (any, error) {
		a, err := d.Guard.Admit(ctx, r.ClientIP)
		switch {
		case errors.Is(err, loginguard.ErrThrottled):
			user := r.Params.Get("username")
			if realm := r.Params.Get("realm"); realm != "" {
				user += "@" + realm
			}
			d.logFailure(r.ClientIP.String(), user, err.Error())
			a.Failed(ctx)
			return nil, loginFailed()
		case err != nil: // the client went away
			return nil, loginFailed()
		}
		res, err := h(ctx, r)
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			a.Failed(ctx)
		} else {
			a.Succeeded()
		}
		return res, err
	}
}

func (d Deps) permissions(ctx context.Context, r *api.Request) (any, error) {
	caller := r.Identity.AuthID
	target := r.Params.Get("userid")
	if target == "" {
		target = caller
	}
	if target != caller {
		owner, _, isToken := strings.Cut(target, "!")
		ownToken := isToken && owner == r.Identity.UserID && !r.Identity.IsToken()
		if !ownToken && caller != api.RootUser && !d.Access.CheckPrivs(caller, "/access", []string{"Sys.Audit"}, false) {
			return nil, api.PermissionDenied("/access", "Sys.Audit")
		}
	}
	if path := r.Params.Get("path"); path != "" {
		return map[string]map[string]int{path: d.Access.Permissions(target, path).Flags()}, nil
	}
	return d.Access.PermissionsTree(target), nil
}
