//go:build cgo

package access

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/msteinert/pam/v2"
)

// PAMAuthenticate authenticates user with password through the PAM service
// (PVE uses "proxmox-ve-auth"): pam_authenticate, then pam_acct_mgmt.
// rhost, when not empty, is passed to the modules as PAM_RHOST.
func PAMAuthenticate(service, user, password, rhost string) (err error) {
	if password == "" {
		return errors.New("pam: no password")
	}
	// Some PAM modules keep per-thread state; run the whole transaction on
	// one OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := pam.StartFunc(service, user, func(pam.Style, string) (string, error) {
		// like PVE, answer every prompt with the password
		return password, nil
	})
	if err != nil {
		return fmt.Errorf("pam: start %s: %w", service, err)
	}
	defer func() {
		if e := t.End(); e != nil && err == nil {
			err = fmt.Errorf("pam: end: %w", e)
		}
	}()
	if rhost != "" {
		if err := t.SetItem(pam.Rhost, rhost); err != nil {
			return fmt.Errorf("pam: set rhost: %w", err)
		}
	}
	if err := t.Authenticate(0); err != nil {
		return fmt.Errorf("pam: %w", err)
	}
	if err := t.AcctMgmt(0); err != nil {
		return fmt.Errorf("pam: %w", err)
	}
	return nil
}
