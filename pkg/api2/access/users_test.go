package access_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

const usersCfg = `user:alice@pve:1:0:Alice:Admin:alice@example.com:::
user:bob@pve:1:0:::::
user:carol@pve:1:0:::carol@example.com:ops engineer::
user:grace@pve:1:0:::::
group:ops:carol@pve::
group:admins:alice@pve::
acl:1:/:alice@pve:Administrator:
acl:1:/access/groups/ops:grace@pve:PVEUserAdmin:
`

func TestUsersCreateReadUpdateDelete(t *testing.T) {
	h := newHarness(t, usersCfg)
	r := h.Do("root@pam", "POST", "/access/users", vals("userid", "dave@pve", "password", "s3cret-pass",
		"groups", "ops", "email", "dave@example.com", "comment", "night shift", "expire", "4102444800"))
	if r.Status != http.StatusOK {
		t.Fatalf("create: %d %q %v", r.Status, r.Message, r.Errors)
	}
	if got, want := h.File("user.cfg"), "user:dave@pve:1:4102444800:::dave@example.com:night shift::\n"; !strings.Contains(got, want) {
		t.Errorf("user.cfg lacks %q:\n%s", want, got)
	}
	if got := h.userCfg().Groups["ops"].Members; !got["dave@pve"] || !got["carol@pve"] {
		t.Errorf("ops members %v", got)
	}
	if _, err := h.Auth.Login(t.Context(), "dave", "s3cret-pass", "pve", "127.0.0.1"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}

	for _, tc := range []struct {
		name, user string
		params     []string
		status     int
		msg        string
	}{
		{"duplicate", "root@pam", []string{"userid", "dave@pve"}, 500, "create user failed: user 'dave@pve' already exists\n"},
		{"unknown group", "root@pam", []string{"userid", "eve@pve", "groups", "nope"}, 500, "create user failed: no such group 'nope'\n"},
		{"no privilege", "bob@pve", []string{"userid", "eve@pve"}, 403, "Permission check failed (/access/realm/pve, Realm.AllocateUser)\n"},
		{"bad userid", "root@pam", []string{"userid", "eve"}, 400, "Parameter verification failed.\n"},
		{"short password", "root@pam", []string{"userid", "eve@pve", "password", "short"}, 400, "Parameter verification failed.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Do(tc.user, "POST", "/access/users", vals(tc.params...))
			if r.Status != tc.status || r.Message != tc.msg {
				t.Errorf("got %d %q %v, want %d %q", r.Status, r.Message, r.Errors, tc.status, tc.msg)
			}
		})
	}
	if _, ok := h.userCfg().Users["eve@pve"]; ok {
		t.Error("a refused create wrote the user")
	}

	// Read: PVE's fields and JSON types.
	r = h.Do("root@pam", "GET", "/access/users/carol@pve", nil)
	var u map[string]any
	r.Decode(t, &u)
	want := map[string]any{"enable": 1.0, "expire": 0.0, "email": "carol@example.com", "comment": "ops engineer",
		"groups": []any{"ops"}, "tokens": nil}
	if len(u) != len(want) {
		t.Errorf("read carol: %v, want %v", u, want)
	}
	for k, v := range want {
		if got, ok := u[k]; !ok || !equalJSON(got, v) {
			t.Errorf("read carol: %s = %v, want %v", k, got, v)
		}
	}

	// Update: disable, replace groups, clear the email; then append.
	r = h.Do("root@pam", "PUT", "/access/users/carol@pve", vals("enable", "0", "groups", "admins", "email", ""))
	if r.Status != 200 {
		t.Fatalf("update: %d %q", r.Status, r.Message)
	}
	cfg := h.userCfg()
	if c := cfg.Users["carol@pve"]; c.Enable || c.Email != "" || c.Comment != "ops engineer" {
		t.Errorf("carol after update: %+v", c)
	}
	if cfg.Groups["ops"].Members["carol@pve"] || !cfg.Groups["admins"].Members["carol@pve"] {
		t.Errorf("groups after replace: ops %v admins %v", cfg.Groups["ops"].Members, cfg.Groups["admins"].Members)
	}
	h.Do("root@pam", "PUT", "/access/users/carol@pve", vals("groups", "ops", "append", "1"))
	if cfg := h.userCfg(); !cfg.Groups["ops"].Members["carol@pve"] || !cfg.Groups["admins"].Members["carol@pve"] {
		t.Errorf("append did not keep both groups")
	}
	if r := h.Do("root@pam", "PUT", "/access/users/nobody@pve", vals("comment", "x")); r.Status != 500 ||
		r.Message != "update user failed: no such user ('nobody@pve')\n" {
		t.Errorf("update of a missing user: %d %q", r.Status, r.Message)
	}

	// Delete: the user, its groups, ACL entries and password go.
	h.Do("root@pam", "PUT", "/access/acl", vals("path", "/vms", "users", "dave@pve", "roles", "PVEVMUser"))
	if r := h.Do("root@pam", "DELETE", "/access/users/dave@pve", nil); r.Status != 200 {
		t.Fatalf("delete: %d %q", r.Status, r.Message)
	}
	data := h.File("user.cfg")
	if strings.Contains(data, "dave@pve") {
		t.Errorf("user.cfg still names dave after delete:\n%s", data)
	}
	if strings.Contains(h.File("priv/shadow.cfg"), "dave:") {
		t.Error("shadow.cfg still has dave's password")
	}
}

func equalJSON(a, b any) bool {
	switch x := b.(type) {
	case []any:
		y, ok := a.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	case nil:
		return a == nil
	}
	return a == b
}

func TestUserIndexVisibility(t *testing.T) {
	h := newHarness(t, usersCfg)
	for _, tc := range []struct {
		user string
		want string
	}{
		{"bob@pve", "bob@pve"},               // only themselves
		{"grace@pve", "carol@pve,grace@pve"}, // User.Modify on group ops, plus themselves
		{"alice@pve", "alice@pve,bob@pve,carol@pve,grace@pve,root@pam"},
	} {
		r := h.Do(tc.user, "GET", "/access/users", nil)
		var list []map[string]any
		r.Decode(t, &list)
		var ids []string
		for _, e := range list {
			ids = append(ids, e["userid"].(string))
			if e["realm-type"] == nil {
				t.Errorf("%s: entry %v lacks realm-type", tc.user, e)
			}
		}
		if got := strings.Join(ids, ","); got != tc.want {
			t.Errorf("index as %s: %s, want %s", tc.user, got, tc.want)
		}
	}
	r := h.Do("root@pam", "GET", "/access/users", vals("full", "1", "enabled", "1"))
	var list []map[string]any
	r.Decode(t, &list)
	for _, e := range list {
		if e["userid"] == "carol@pve" && e["groups"] != "ops" {
			t.Errorf("full index: carol groups %v", e["groups"])
		}
	}
}

// TestUseridGroupCheck: User.Modify on a group lets grace read and change
// the group's members only.
func TestUseridGroupCheck(t *testing.T) {
	h := newHarness(t, usersCfg)
	if r := h.Do("grace@pve", "GET", "/access/users/carol@pve", nil); r.Status != 200 {
		t.Errorf("grace reads carol (in ops): %d %q", r.Status, r.Message)
	}
	if r := h.Do("grace@pve", "GET", "/access/users/alice@pve", nil); r.Status != 403 {
		t.Errorf("grace reads alice (not in ops): %d %q, want 403", r.Status, r.Message)
	}
	if r := h.Do("grace@pve", "PUT", "/access/users/carol@pve", vals("groups", "admins")); r.Status != 403 ||
		r.Message != "Permission check failed (/access/groups/admins, User.Modify)\n" {
		t.Errorf("grace moves carol to admins: %d %q, want 403", r.Status, r.Message)
	}
	if r := h.Do("grace@pve", "GET", "/access/users/nobody@pve", nil); r.Status != 500 || r.Message != "no such user ('nobody@pve')\n" {
		t.Errorf("missing user: %d %q", r.Status, r.Message)
	}
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestTokens(t *testing.T) {
	h := newHarness(t, usersCfg+"acl:1:/vms:bob@pve:PVEVMUser:\n")
	r := h.Do("bob@pve", "POST", "/access/users/bob@pve/token/ci", vals("comment", "CI runner", "privsep", "0"))
	if r.Status != 200 {
		t.Fatalf("generate: %d %q %v", r.Status, r.Message, r.Errors)
	}
	var gen struct {
		FullID string         `json:"full-tokenid"`
		Value  string         `json:"value"`
		Info   map[string]any `json:"info"`
	}
	r.Decode(t, &gen)
	if gen.FullID != "bob@pve!ci" || !uuidRe.MatchString(gen.Value) || gen.Info["privsep"] != 0.0 || gen.Info["comment"] != "CI runner" {
		t.Fatalf("generate answer %+v", gen)
	}
	if got, want := h.File("user.cfg"), "token:bob@pve!ci:0:0:CI runner:\n"; !strings.Contains(got, want) {
		t.Errorf("user.cfg lacks %q:\n%s", want, got)
	}
	if got := h.File("priv/token.cfg"); !strings.Contains(got, "bob@pve!ci "+gen.Value+"\n") {
		t.Errorf("token.cfg lacks the secret:\n%s", got)
	}
	tok := "token:bob@pve!ci=" + gen.Value
	// Tokens are their own identity: "self" checks do not cover them (PVE).
	if r := h.Do(tok, "GET", "/access/permissions", nil); r.Status != 200 {
		t.Errorf("the new token authenticates: %d %q", r.Status, r.Message)
	}
	if r := h.Do(tok, "GET", "/access/users/bob@pve/token", nil); r.Status != 403 {
		t.Errorf("token on a self-only method: %d %q, want 403", r.Status, r.Message)
	}
	if r := h.Do("token:bob@pve!ci=00000000-0000-4000-8000-000000000000", "GET", "/access/permissions", nil); r.Status != 401 {
		t.Errorf("a wrong secret: %d, want 401", r.Status)
	}
	if r := h.Do("bob@pve", "POST", "/access/users/bob@pve/token/ci", nil); r.Status != 400 || r.Errors["tokenid"] != "Token already exists." {
		t.Errorf("duplicate token: %d %q %v", r.Status, r.Message, r.Errors)
	}
	if r := h.Do("bob@pve", "POST", "/access/users/alice@pve/token/xy", nil); r.Status != 403 {
		t.Errorf("bob makes a token for alice: %d, want 403", r.Status)
	}

	r = h.Do("bob@pve", "PUT", "/access/users/bob@pve/token/ci", vals("delete", "comment", "expire", "4102444800"))
	var info map[string]any
	r.Decode(t, &info)
	if r.Status != 200 || info["comment"] != nil || info["expire"] != 4102444800.0 {
		t.Errorf("update: %d %v", r.Status, info)
	}
	if r := h.Do("bob@pve", "PUT", "/access/users/bob@pve/token/ci", vals("delete", "privsep")); r.Status != 400 {
		t.Errorf("delete of a non-deletable option: %d, want 400", r.Status)
	}

	h.Do("root@pam", "PUT", "/access/acl", vals("path", "/vms", "tokens", "bob@pve!ci", "roles", "PVEAuditor"))
	if r := h.Do("bob@pve", "DELETE", "/access/users/bob@pve/token/ci", nil); r.Status != 200 {
		t.Fatalf("remove: %d %q", r.Status, r.Message)
	}
	if strings.Contains(h.File("user.cfg"), "bob@pve!ci") || strings.Contains(h.File("priv/token.cfg"), "bob@pve!ci") {
		t.Errorf("token left behind:\n%s\n%s", h.File("user.cfg"), h.File("priv/token.cfg"))
	}
	if r := h.Do("bob@pve", "GET", "/access/users/bob@pve/token/ci", nil); r.Status != 500 ||
		r.Message != "no such token 'ci' for user 'bob@pve'\n" {
		t.Errorf("read removed token: %d %q", r.Status, r.Message)
	}
}

// TestTokenNetworksParam: the token methods take the allowed source
// networks (beyond PVE) and the token is refused from elsewhere.
func TestTokenNetworksParam(t *testing.T) {
	h := newHarness(t, usersCfg)
	if r := h.Do("bob@pve", "POST", "/access/users/bob@pve/token/ci", vals("pvenode-allowed-networks", "10.0.0.0/8 garbage")); r.Status != 400 {
		t.Fatalf("bad list: %d %q %v, want 400", r.Status, r.Message, r.Errors)
	}
	if strings.Contains(h.File("user.cfg"), "bob@pve!ci") {
		t.Fatal("a refused token was written")
	}
	r := h.Do("bob@pve", "POST", "/access/users/bob@pve/token/ci", vals("pvenode-allowed-networks", "192.0.2.0/24", "privsep", "0"))
	if r.Status != 200 {
		t.Fatalf("generate: %d %q %v", r.Status, r.Message, r.Errors)
	}
	var gen struct {
		Value string `json:"value"`
	}
	r.Decode(t, &gen)
	if got := h.File("pvenode/token-networks.cfg"); !strings.Contains(got, "bob@pve!ci 192.0.2.0/24") {
		t.Errorf("token-networks.cfg:\n%s", got)
	}
	tok := "token:bob@pve!ci=" + gen.Value
	if r := h.Do(tok, "GET", "/access/permissions", nil); r.Status != 401 {
		t.Errorf("token from 127.0.0.1 outside 192.0.2.0/24: %d, want 401", r.Status)
	}
	if r := h.Do("bob@pve", "PUT", "/access/users/bob@pve/token/ci", vals("pvenode-allowed-networks", "127.0.0.0/8")); r.Status != 200 {
		t.Fatalf("update networks: %d %q", r.Status, r.Message)
	}
	if r := h.Do(tok, "GET", "/access/permissions", nil); r.Status != 200 {
		t.Errorf("token from 127.0.0.1 inside 127.0.0.0/8: %d, want 200", r.Status)
	}
	if r := h.Do("bob@pve", "DELETE", "/access/users/bob@pve/token/ci", nil); r.Status != 200 {
		t.Fatalf("remove: %d", r.Status)
	}
	if strings.Contains(h.File("pvenode/token-networks.cfg"), "bob@pve!ci") {
		t.Error("networks of a removed token left behind")
	}
}
