//go:build !cgo

package access

import "errors"

// PAMAuthenticate is unavailable in a build without cgo.
func PAMAuthenticate(service, user, password, rhost string) error {
	return errors.New("pam: not available (built without cgo)")
}
