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

	"github.com/pvenode/pvenode/pkg/api"
)

// LoginResult is a successful first-factor login.
type LoginResult struct {
	Username string
	Ticket   string
	CSRF     string
	Cap      map[string]map[string]int
}

// Service is what the access methods need from the access package.
type Service interface {
	// Login checks a password (or a valid ticket, for renewal) and issues a
	// new ticket. A failed login returns an error wrapping ErrAuthFailed
	// whose text is the reason, for the log only.
	Login(ctx context.Context, username, password, realm string) (*LoginResult, error)
	// IsAuthFailure reports whether err is a failed login (answered 401).
	IsAuthFailure(err error) bool
	// PermissionsTree lists authid's privileges per ACL path (or for one
	// path), as GET /access/permissions answers.
	PermissionsTree(authid, path string) map[string]map[string]int
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
			Handle: index,
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

// accessSubdirs are the children of /access this build implements.
var accessSubdirs = []string{"ticket", "permissions"}

func index(context.Context, *api.Request) (any, error) {
	out := make([]map[string]string, 0, len(accessSubdirs))
	for _, s := range accessSubdirs {
		out = append(out, map[string]string{"subdir": s})
	}
	return out, nil
}

// ticketAnswer is POST /access/ticket's data.
type ticketAnswer struct {
	Username string                    `json:"username"`
	Ticket   string                    `json:"ticket,omitempty"`
	CSRF     string                    `json:"CSRFPreventionToken,omitempty"`
	Cap      map[string]map[string]int `json:"cap,omitempty"`
}

func (d Deps) createTicket(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	username := p.Get("username")
	if p.Get("otp") != "" || p.Get("tfa-challenge") != "" {
		if p.Get("otp") != "" && p.Get("tfa-challenge") != "" {
			return nil, api.ParamError(map[string]string{"otp": "cannot be combined with tfa-challenge"})
		}
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: two-factor login")
	}
	res, err := d.Access.Login(ctx, username, p.Get("password"), p.Get("realm"))
	if err != nil {
		if d.Access.IsAuthFailure(err) {
			user := username
			if realm := p.Get("realm"); realm != "" && !strings.Contains(user, "@") {
				user += "@" + realm
			}
			d.Log.Warn(fmt.Sprintf("authentication failure; rhost=%s user=%s msg=%s", r.ClientIP, user, reason(err)))
			return nil, &api.Error{Status: http.StatusUnauthorized, Message: api.MsgLoginFail + "\n"}
		}
		return nil, err
	}
	if path := p.Get("path"); path != "" {
		privs := strings.FieldsFunc(p.Get("privs"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' })
		if !d.Access.CheckPrivs(res.Username, path, privs, false) {
			d.Log.Warn(fmt.Sprintf("authentication failure; rhost=%s user=%s msg=no permission (%s, %s)",
				r.ClientIP, res.Username, path, strings.Join(privs, ",")))
			return nil, &api.Error{Status: http.StatusUnauthorized, Message: api.MsgLoginFail + "\n"}
		}
		return ticketAnswer{Username: res.Username}, nil
	}
	d.Log.Info(fmt.Sprintf("successful auth for user '%s'", res.Username))
	return ticketAnswer{Username: res.Username, Ticket: res.Ticket, CSRF: res.CSRF, Cap: res.Cap}, nil
}

// reason is the log text of a failed login: the innermost message.
func reason(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
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
	return d.Access.PermissionsTree(target, r.Params.Get("path")), nil
}
