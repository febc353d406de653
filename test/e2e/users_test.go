package e2e

import (
	"strings"
	"testing"

	"github.com/GehirnInc/crypt/sha256_crypt"
)

// Extra identities of the permission tests.
const (
	tokenID     = "admin@pve!ci"
	tokenSecret = "3f9c2a1e-5b7d-4c8e-9f01-23456789abcd"
	bobUser     = "bob@pve"
	bobPW       = "bob-e2e-password"
)

// userCfg is a user.cfg with the administrator (Administrator on /), its
// privilege-separated token admin@pve!ci without ACL entries, bob@pve
// without ACL entries, root@pam, and the extra ACL lines given.
func userCfg(acls ...string) string {
	var b strings.Builder
	b.WriteString("user:admin@pve:1:0:::::\n")
	b.WriteString("token:admin@pve!ci:0:1::\n")
	b.WriteString("user:bob@pve:1:0:::::\n")
	b.WriteString("user:root@pam:1:0:::::\n")
	b.WriteString("\n\n\n\n")
	b.WriteString("acl:1:/:admin@pve:Administrator:\n")
	for _, a := range acls {
		b.WriteString(a + "\n")
	}
	return b.String()
}

// addUsers writes user.cfg with userCfg(acls...), bob's password and the
// token's secret.
func (n *node) addUsers(t *testing.T, acls ...string) {
	t.Helper()
	shadow, err := n.root.ReadFile("priv/shadow.cfg")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := sha256_crypt.New().Generate([]byte(bobPW), []byte("$5$e2esaltx"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(shadow), "\nbob:") && !strings.HasPrefix(string(shadow), "bob:") {
		n.writeCfg(t, "priv/shadow.cfg", string(shadow)+"bob:"+hash+":\n", 0o600)
	}
	n.writeCfg(t, "priv/token.cfg", tokenID+" "+tokenSecret+"\n", 0o600)
	n.writeCfg(t, "user.cfg", userCfg(acls...), 0o640)
}
