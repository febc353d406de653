//go:build cgo

package access

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// pamService writes a throwaway service file to /etc/pam.d and returns its
// name; the test is skipped where that is not possible.
func pamService(t *testing.T, module string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /etc/pam.d")
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "pvenode-test-" + hex.EncodeToString(b)
	path := filepath.Join("/etc/pam.d", name)
	conf := "auth required " + module + "\naccount required " + module + "\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Skipf("cannot write PAM service: %v", err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return name
}

func TestPAMAuthenticate(t *testing.T) {
	permit := pamService(t, "pam_permit.so")
	deny := pamService(t, "pam_deny.so")
	if err := PAMAuthenticate(permit, "someone", "pw", "192.0.2.1"); err != nil {
		t.Errorf("PAMAuthenticate(pam_permit) = %v; want nil", err)
	}
	if err := PAMAuthenticate(deny, "someone", "pw", ""); err == nil {
		t.Error("PAMAuthenticate(pam_deny) succeeded")
	}
	if err := PAMAuthenticate(permit, "someone", "", ""); err == nil {
		t.Error("PAMAuthenticate accepted an empty password")
	}
}
