package access

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

// updateUserCfg changes user.cfg under its lock (PVE's lock_user_config):
// fn's error, or a failed write, is answered as PVE does, "<what>: <error>"
// with status 500; parameter errors (400) pass through unchanged. Nothing is
// written when fn fails.
func (d Deps) updateUserCfg(ctx context.Context, what string, fn func(*access.UserCfg) error) error {
	if d.Root == nil {
		return api.Errorf(http.StatusNotImplemented, "not implemented: writes to user.cfg in this daemon")
	}
	err := access.UpdateUserCfg(ctx, d.Root, fn)
	d.Access.Invalidate()
	return wrapLocked(what, err)
}

// wrapLocked is PVE's "$errmsg: $err" for errors raised under a config lock.
func wrapLocked(what string, err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		return ae
	}
	msg := err.Error()
	if ae != nil {
		msg = ae.Message
	}
	return api.Errorf(http.StatusInternalServerError, "%s: %s", what, strings.TrimSuffix(msg, "\n"))
}

// die is a plain PVE die: status 500 with the message.
func die(format string, args ...any) error {
	return api.Errorf(http.StatusInternalServerError, format, args...)
}

// noSuchUser is PVE's check_user_exist failure.
func noSuchUser(userid string) error {
	return die("no such user ('%s')", userid)
}

// boolParam returns a boolean parameter as PVE stores it (0/1) and whether
// it was given.
func boolParam(p api.Params, name string) (bool, bool) {
	if !p.Has(name) {
		return false, false
	}
	return p.Bool(name, false), true
}
