package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/ticket"
)

func (d Deps) passwordMethods() []api.Method {
	return []api.Method{
		{
			Name: "change_password", Path: "/access/password", HTTP: "PUT",
			Description: "Change user password.",
			Protected:   true,
			NoToken:     true,
			Permissions: api.Permissions{
				Description: "Users change their own password; changing another user's needs Realm.AllocateUser on its realm and User.Modify on one of its groups.",
				Check:       []any{"or", []any{"userid-param", "self"}, []any{"and", []any{"userid-param", "Realm.AllocateUser"}, []any{"userid-group", []any{"User.Modify"}}}},
			},
			Params: map[string]*api.Schema{
				"confirmation-password": api.Str().MinLen(5).MaxLen(64).Opt().TT("<string>"),
				"password":              api.Str().MinLen(8).MaxLen(64).TT("<string>"),
				"userid":                api.Str().Fmt("pve-userid").MaxLen(64).TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.changePassword,
		},
	}
}

// passwordChecker verifies a user's own password against its realm
// (*access.Authenticator has it).
type passwordChecker interface {
	CheckPassword(ctx context.Context, userid, password, clientIP string) error
}

// permissionFailed is PVE's raise_perm_exc without detail.
func permissionFailed() error {
	return api.Errorf(http.StatusForbidden, "Permission check failed")
}

func (d Deps) changePassword(ctx context.Context, r *api.Request) (any, error) {
	caller := r.Identity.AuthID
	userid := r.Params.Get("userid")
	ruid, realm, err := ticket.ParseUserID(userid)
	if err != nil {
		return nil, die("%v", err)
	}
	cfg := d.Access.UserCfg()
	if cfg.Users[userid] == nil {
		return nil, noSuchUser(userid)
	}
	// Only root changes root's password; everybody else confirms the
	// change with their own password.
	if userid == access.RootUser && caller != access.RootUser {
		return nil, permissionFailed()
	}
	if caller != access.RootUser {
		confirm, ok := r.Params.String("confirmation-password")
		if !ok {
			return nil, api.ParamError(map[string]string{"confirmation-password": "password is required to modify user"})
		}
		pc, ok := d.Access.(passwordChecker)
		if !ok {
			return nil, api.Errorf(http.StatusNotImplemented, "not implemented: password confirmation in this daemon")
		}
		if err := pc.CheckPassword(ctx, caller, confirm, r.ClientIP.String()); err != nil {
			if errors.Is(err, access.ErrRealmNotImplemented) {
				return nil, api.Errorf(http.StatusNotImplemented, "%v", err)
			}
			return nil, die("%v", err)
		}
		if caller == userid {
			if err := cfg.Active(userid, time.Now().Unix()); err != nil {
				return nil, die("%v", err)
			}
		} else if realm == "pam" {
			// system users' passwords are not changed by others
			return nil, permissionFailed()
		}
	}
	if err := d.setRealmPassword(ctx, realm, ruid, r.Params.Get("password")); err != nil {
		return nil, err
	}
	d.Log.Info(fmt.Sprintf("changed password for user '%s'", userid))
	return nil, nil
}

// setRealmPassword is PVE's domain_set_password: the realm's plugin
// stores the password. The pve realm keeps it in priv/shadow.cfg; for the
// pam realm PVE runs usermod on the node, which is not implemented here.
func (d Deps) setRealmPassword(ctx context.Context, realm, ruid, password string) error {
	cfg, err := d.readDomains()
	if err != nil {
		return err
	}
	rc := cfg.Realms[realm]
	if rc == nil {
		return die("auth domain '%s' does not exist", realm)
	}
	switch rc.Type {
	case "pve":
		if err := access.SetPassword(ctx, d.Root, ruid, password); err != nil {
			return die("%v", err)
		}
		return nil
	case "pam":
		return api.Errorf(http.StatusNotImplemented, "not implemented: setting the system password of pam realm users")
	}
	return die("can't set password on auth type '%s'", rc.Type)
}
