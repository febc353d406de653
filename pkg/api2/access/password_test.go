package access_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const passwordUsers = aclTestCfg + "user:sys@pam:1:0::::::\nuser:lu@corp:1:0::::::\n"

func TestChangePassword(t *testing.T) {
	h := newHarness(t, passwordUsers)
	for _, u := range []string{"alice@pve", "bob@pve", "grace@pve"} {
		h.Login(u) // before their passwords change
	}
	domains := h.File("domains.cfg") + "ldap: corp\n\tbase_dn dc=example,dc=com\n\tserver1 ldap.example.com\n\tuser_attr uid\n\n"
	if err := os.WriteFile(filepath.Join(h.Dir, "domains.cfg"), []byte(domains), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		caller string
		params []string
	}{
		{"bob@pve", []string{"userid", "bob@pve", "password", "bob-new-password", "confirmation-password", testPassword}},
		{"alice@pve", []string{"userid", "carl@pve", "password", "carl-new-password", "confirmation-password", testPassword}},
		{"root@pam", []string{"userid", "grace@pve", "password", "grace-new-password"}},
	} {
		if r := h.Do(step.caller, "PUT", "/access/password", vals(step.params...)); r.Status != http.StatusOK {
			t.Fatalf("%s %v: %d %q %v", step.caller, step.params, r.Status, r.Message, r.Errors)
		}
	}
	for user, pw := range map[string]string{"bob": "bob-new-password", "carl": "carl-new-password", "grace": "grace-new-password", "alice": testPassword} {
		if _, err := h.Auth.Login(t.Context(), user, pw, "pve", "127.0.0.1"); err != nil {
			t.Errorf("login %s with its new password: %v", user, err)
		}
	}
	shadow := h.File("priv/shadow.cfg")
	if lines := strings.Split(strings.TrimSuffix(shadow, "\n"), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], "bob:$5$") {
		t.Errorf("shadow.cfg:\n%s", shadow)
	}

	runCases(t, h, []callCase{
		{name: "no confirmation", user: "alice@pve", method: "PUT", path: "/access/password", params: []string{"userid", "alice@pve", "password", "12345678"},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"confirmation-password": "password is required to modify user"}},
		{name: "wrong confirmation", user: "alice@pve", method: "PUT", path: "/access/password", params: []string{"userid", "alice@pve", "password", "12345678", "confirmation-password", "wrong-one"},
			status: 500, msg: "invalid credentials\n"},
		{name: "short password", user: "alice@pve", method: "PUT", path: "/access/password", params: []string{"userid", "alice@pve", "password", "short", "confirmation-password", testPassword},
			status: 400, msg: "Parameter verification failed.\n",
			errs: map[string]string{"password": "value must be at least 8 characters long"}},
		{name: "root's password", user: "alice@pve", method: "PUT", path: "/access/password", params: []string{"userid", "root@pam", "password", "12345678", "confirmation-password", testPassword},
			status: 403, msg: "Permission check failed\n"},
		{name: "pam user by another", user: "alice@pve", method: "PUT", path: "/access/password", params: []string{"userid", "sys@pam", "password", "12345678", "confirmation-password", testPassword},
			status: 403, msg: "Permission check failed\n"},
		{name: "pam realm", user: "root@pam", method: "PUT", path: "/access/password", params: []string{"userid", "sys@pam", "password", "12345678"},
			status: 501, msg: "not implemented: setting the system password of pam realm users\n"},
		{name: "ldap realm", user: "root@pam", method: "PUT", path: "/access/password", params: []string{"userid", "lu@corp", "password", "12345678"},
			status: 500, msg: "can't set password on auth type 'ldap'\n"},
		{name: "unknown user", user: "root@pam", method: "PUT", path: "/access/password", params: []string{"userid", "nobody@pve", "password", "12345678"},
			status: 500, msg: "no such user ('nobody@pve')\n"},
	})
	// Another user's password needs privileges over that user.
	if r := h.Do("grace@pve", "PUT", "/access/password", vals("userid", "carl@pve", "password", "12345678", "confirmation-password", testPassword)); r.Status != http.StatusForbidden {
		t.Errorf("grace changing carl's password: %d %q", r.Status, r.Message)
	}
	if got := h.File("priv/shadow.cfg"); got != shadow {
		t.Errorf("refused changes wrote shadow.cfg:\n%s", got)
	}
}
