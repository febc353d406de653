// Package access declares the /access methods of this build: the index,
// login tickets and the permission dump.
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

// Service is what the access methods need; *access.Authenticator has it.
type Service interface {
	Login(ctx context.Context, username, password, realm, clientIP string) (*access.LoginResult, error)
	VerifyLogin(ctx context.Context, username, password, realm, clientIP, path string, privs []string) (string, error)
	PermissionsTree(authid string) map[string]map[string]int
	Permissions(authid, path string) access.PrivSet
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
}

// Deps are the collaborators of the access methods. All are required.
type Deps struct {
	Access Service
	// Log receives the login failure lines (syslog style, for fail2ban).
	Log *slog.Logger
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	userPat := `(?^:^(?^:[^\s:/]+)\@(?^:[A-Za-z][A-Za-z0-9\.\-_]+)(?:!(?^:[A-Za-z][A-Za-z0-9\.\-_]+))?$)`
	return []api.Method{
		{
			Name: "index", Path: "/access", HTTP: "GET",
			Description: "Directory index.",
			Permissions: api.AllUsers,
			Returns: api.Arr(api.Obj(map[string]*api.Schema{"subdir": api.Str()})).
				WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
			Handle: api.DirIndex("subdir", "ticket", "permissions"),
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
			Handle: d.createTicket,
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
}

// ticketAnswer is the data of POST /access/ticket in verify mode.
type ticketAnswer struct {
	Username string `json:"username"`
}

func (d Deps) createTicket(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	if p.Get("otp") != "" && p.Get("tfa-challenge") != "" {
		return nil, api.ParamError(map[string]string{"otp": "cannot be combined with tfa-challenge"})
	}
	if p.Get("otp") != "" || p.Get("tfa-challenge") != "" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: two-factor login")
	}
	ip := r.ClientIP.String()
	if path := p.Get("path"); path != "" {
		privs := strings.FieldsFunc(p.Get("privs"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' })
		user, err := d.Access.VerifyLogin(ctx, p.Get("username"), p.Get("password"), p.Get("realm"), ip, path, privs)
		if err != nil {
			return nil, d.loginError(err)
		}
		return ticketAnswer{Username: user}, nil
	}
	res, err := d.Access.Login(ctx, p.Get("username"), p.Get("password"), p.Get("realm"), ip)
	if err != nil {
		return nil, d.loginError(err)
	}
	d.Log.Info(fmt.Sprintf("successful auth for user '%s'", res.Username))
	return res, nil
}

// loginError logs a failed login in PVE's syslog line (the text of an
// access.ErrAuthFailed error) and answers 401 "authentication failure"
// without detail, so that user names cannot be probed.
func (d Deps) loginError(err error) error {
	switch {
	case errors.Is(err, access.ErrAuthFailed):
		d.Log.Warn(err.Error())
		return &api.Error{Status: http.StatusUnauthorized, Message: api.MsgLoginFail + "\n"}
	case errors.Is(err, access.ErrTFANotImplemented):
		return api.Errorf(http.StatusNotImplemented, "not implemented: two-factor login")
	}
	return err
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
