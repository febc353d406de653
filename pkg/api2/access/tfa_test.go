package access_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/tfa"
)

const tfaTestURI = "otpauth://totp/PVE:bob%40pve?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"

// totpCode returns the current code of uri, or of the step off steps away.
func totpCode(t *testing.T, uri string, off int64) string {
	t.Helper()
	key, err := tfa.ParseTOTP(uri)
	if err != nil {
		t.Fatal(err)
	}
	step, err := key.Step(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, err := key.CodeAt(step + off)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// loginAll logs the users in before they get second factors.
func (h *harness) loginAll(users ...string) {
	for _, u := range users {
		h.Login(u)
	}
}

// tfaFile parses priv/tfa.cfg as written, checking its mode.
func (h *harness) tfaFile() *tfa.Config {
	h.TB.Helper()
	st, err := os.Stat(filepath.Join(h.Dir, "priv/tfa.cfg"))
	if err != nil {
		h.TB.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		h.TB.Errorf("tfa.cfg mode %v; want 0600", st.Mode().Perm())
	}
	cfg, err := tfa.Parse([]byte(h.File("priv/tfa.cfg")))
	if err != nil {
		h.TB.Fatalf("tfa.cfg does not parse: %v", err)
	}
	return cfg
}

func TestTFAEntries(t *testing.T) {
	h := newHarness(t, aclTestCfg)
	h.loginAll("alice@pve", "bob@pve", "carl@pve", "grace@pve")
	add := func(caller, userid string, kv ...string) apitest.Reply {
		return h.Do(caller, "POST", "/access/tfa/"+userid, vals(kv...))
	}

	// bob adds a TOTP key, confirming with a current code and his password.
	r := add("bob@pve", "bob@pve", "type", "totp", "description", "phone", "totp", tfaTestURI,
		"value", totpCode(t, tfaTestURI, 0), "password", testPassword)
	if r.Status != http.StatusOK {
		t.Fatalf("add totp: %d %q %v", r.Status, r.Message, r.Errors)
	}
	var added struct {
		ID       string   `json:"id"`
		Recovery []string `json:"recovery"`
	}
	r.Decode(t, &added)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(added.ID) || added.Recovery != nil {
		t.Fatalf("add totp answered %s", r.Data)
	}
	totpID := added.ID
	if k := h.userCfg().Users["bob@pve"].Keys; k != "x" {
		t.Errorf("bob's user.cfg keys = %q; want x", k)
	}

	// root adds recovery keys for carl without a password: shown once.
	r = add("root@pam", "carl@pve", "type", "recovery")
	if r.Status != http.StatusOK {
		t.Fatalf("add recovery: %d %q %v", r.Status, r.Message, r.Errors)
	}
	r.Decode(t, &added)
	if added.ID != "recovery" || len(added.Recovery) != 10 {
		t.Fatalf("add recovery answered %s", r.Data)
	}
	file := h.File("priv/tfa.cfg")
	for _, k := range added.Recovery {
		if !regexp.MustCompile(`^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$`).MatchString(k) || strings.Contains(file, k) {
			t.Errorf("recovery key %q malformed or stored in clear", k)
		}
	}
	cfg := h.tfaFile()
	if rec := cfg.Users["carl@pve"].Recovery; rec == nil || len(rec.Entries) != 10 {
		t.Errorf("carl's recovery set: %+v", rec)
	}
	if u := cfg.Users["bob@pve"]; u == nil || len(u.TOTP) != 1 || u.TOTP[0].ID != totpID || u.TOTP[0].Description != "phone" {
		t.Errorf("bob's entries: %+v", u)
	}
	if r := h.Do("root@pam", "GET", "/access/tfa", nil); r.Status != http.StatusOK {
		t.Fatalf("list: %d %q", r.Status, r.Message)
	}

	runCases(t, h, []callCase{
		{name: "wrong code", user: "bob@pve", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "totp", "description", "d", "totp", tfaTestURI, "value", totpCode(t, tfaTestURI, 5), "password", testPassword},
			status: 500, msg: "failed to verify TOTP challenge\n"},
		{name: "no password", user: "bob@pve", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "recovery"},
			status: 400, msg: "Parameter verification failed.\n", errs: map[string]string{"password": "password is required to modify user"}},
		{name: "wrong password", user: "bob@pve", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "recovery", "password", "wrong-password"},
			status: 500, msg: "invalid credentials\n"},
		{name: "admin needs own password", user: "alice@pve", method: "DELETE", path: "/access/tfa/bob@pve/" + totpID,
			status: 400, msg: "Parameter verification failed.\n", errs: map[string]string{"password": "password is required to modify user"}},
		{name: "root's factors", user: "alice@pve", method: "POST", path: "/access/tfa/root@pam",
			params: []string{"type", "recovery", "password", testPassword},
			status: 403, msg: "Permission check failed\n"},
		{name: "other user without privileges", user: "carl@pve", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "recovery", "password", testPassword},
			status: 403, msg: "Permission check failed\n"},
		{name: "second recovery set", user: "root@pam", method: "POST", path: "/access/tfa/carl@pve",
			params: []string{"type", "recovery"},
			status: 500, msg: "user already has recovery keys\n"},
		{name: "missing description", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "totp", "totp", tfaTestURI, "value", totpCode(t, tfaTestURI, 0)},
			status: 500, msg: "'description' is required for new entries\n"},
		{name: "u2f unconfigured", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "u2f", "description", "key"},
			status: 500, msg: "no u2f configuration available\n"},
		{name: "webauthn unconfigured", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "webauthn", "description", "key"},
			status: 500, msg: "no webauthn configuration available\n"},
		{name: "yubico without realm", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "yubico", "description", "key", "value", "cccccccccccbnkhtfcvhdlkvnduu"},
			status: 500, msg: "no yubico otp configuration available for realm pve\n"},
		{name: "unknown entry", user: "bob@pve", method: "GET", path: "/access/tfa/bob@pve/nope",
			status: 404, msg: "No such tfa entry 'nope'\n"},
		{name: "delete unknown entry", user: "root@pam", method: "DELETE", path: "/access/tfa/bob@pve/nope",
			status: 500, msg: "no such entry\n"},
		{name: "update unknown entry", user: "root@pam", method: "PUT", path: "/access/tfa/bob@pve/nope",
			params: []string{"description", "x"}, status: 500, msg: "no such entry\n"},
		{name: "read other's list", user: "carl@pve", method: "GET", path: "/access/tfa/bob@pve",
			status: 403, msg: "Permission check failed\n"},
		{name: "token", user: "token:bob@pve!ci=x", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "recovery"},
			status: 403, msg: "Permission check failed (URI '/api2/json/access/tfa/bob@pve' not available with API token, need proper ticket.)\n"},
	})
	if got := h.File("priv/tfa.cfg"); got != file {
		t.Errorf("refused calls changed tfa.cfg:\n%s\nwas\n%s", got, file)
	}

	// GET /access/tfa: admins see everybody, group administrators the
	// members of their groups, others themselves.
	listed := func(caller string) []string {
		r := h.Do(caller, "GET", "/access/tfa", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list as %s: %d %q", caller, r.Status, r.Message)
		}
		var l []struct {
			UserID  string `json:"userid"`
			Entries []any  `json:"entries"`
		}
		r.Decode(t, &l)
		var ids []string
		for _, e := range l {
			ids = append(ids, e.UserID)
		}
		return ids
	}
	for caller, want := range map[string][]string{
		"root@pam":  {"bob@pve", "carl@pve"},
		"alice@pve": {"bob@pve", "carl@pve"},
		"grace@pve": {"bob@pve"},
		"bob@pve":   {"bob@pve"},
		"carl@pve":  {"carl@pve"},
	} {
		if got := listed(caller); !slices.Equal(got, want) {
			t.Errorf("GET /access/tfa as %s lists %v; want %v", caller, got, want)
		}
	}
	r = h.Do("bob@pve", "GET", "/access/tfa/carl@pve", nil)
	if r.Status != http.StatusForbidden {
		t.Errorf("bob reading carl's entries: %d", r.Status)
	}
	r = h.Do("grace@pve", "GET", "/access/tfa/bob@pve", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("grace reading bob's entries: %d %q", r.Status, r.Message)
	}
	created := cfg.Users["bob@pve"].TOTP[0].Created
	entry := `{"type":"totp","id":"` + totpID + `","description":"phone","created":` + strconv.FormatInt(created, 10) + `}`
	wantJSON(t, "bob's entries", r, "["+entry+"]")
	wantJSON(t, "bob's entry", h.Do("bob@pve", "GET", "/access/tfa/bob@pve/"+totpID, nil), entry)
	r = h.Do("bob@pve", "GET", "/access/tfa/bob@pve/recovery", nil)
	if r.Status != http.StatusNotFound {
		t.Errorf("bob's recovery entry: %d %s", r.Status, r.Data)
	}
	r = h.Do("carl@pve", "GET", "/access/tfa/carl@pve/recovery", nil)
	wantJSON(t, "carl's recovery entry", r, `{"type":"recovery","id":"recovery","created":`+strconv.FormatInt(h.tfaFile().Users["carl@pve"].Recovery.Created, 10)+`}`)

	// Update: description and enable, by an administrator with her password.
	r = h.Do("alice@pve", "PUT", "/access/tfa/bob@pve/"+totpID, vals("description", "tablet", "enable", "0", "password", testPassword))
	if r.Status != http.StatusOK || string(r.Data) != "null" {
		t.Fatalf("update: %d %q %s", r.Status, r.Message, r.Data)
	}
	wantJSON(t, "updated entry", h.Do("bob@pve", "GET", "/access/tfa/bob@pve/"+totpID, nil),
		`{"type":"totp","id":"`+totpID+`","description":"tablet","created":`+strconv.FormatInt(created, 10)+`,"enable":false}`)
	if e := h.tfaFile().Users["bob@pve"].TOTP[0]; e.Enable || e.Description != "tablet" {
		t.Errorf("stored entry after update: %+v", e.Info)
	}

	// Delete: bob's last entry goes, and so does his user.cfg mark.
	r = h.Do("bob@pve", "DELETE", "/access/tfa/bob@pve/"+totpID, vals("password", testPassword))
	if r.Status != http.StatusOK {
		t.Fatalf("delete: %d %q %v", r.Status, r.Message, r.Errors)
	}
	if cfg := h.tfaFile(); cfg.Users["bob@pve"] != nil || cfg.Users["carl@pve"] == nil {
		t.Errorf("after delete: %s", h.File("priv/tfa.cfg"))
	}
	if k := h.userCfg().Users["bob@pve"].Keys; k != "" {
		t.Errorf("bob's user.cfg keys after deleting his last entry = %q", k)
	}
	wantJSON(t, "bob's entries after delete", h.Do("bob@pve", "GET", "/access/tfa/bob@pve", nil), `[]`)
}

// writeFile replaces a file of the harness's config root.
func (h *harness) writeFile(name, data string, mode os.FileMode) {
	h.TB.Helper()
	p := filepath.Join(h.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		h.TB.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		h.TB.Fatal(err)
	}
}

func TestUnlockTFA(t *testing.T) {
	h := newHarness(t, aclTestCfg)
	h.loginAll("bob@pve", "carl@pve", "grace@pve")
	until := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	h.writeFile("priv/tfa.cfg", `{"users":{"bob@pve":{"totp":[{"id":"v1-entry","created":1,"entry":"`+tfaTestURI+`"}],"totp-locked":true,"tfa-locked-until":`+until+`},`+
		`"carl@pve":{"totp":[{"id":"v1-entry","created":1,"entry":"`+tfaTestURI+`"}]}}}`, 0o600)
	counters := filepath.Join(h.Auth.TFAChallengeDir(), "bob@pve")
	if err := os.MkdirAll(filepath.Dir(counters), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(counters, []byte(`{"totp_failures":8,"tfa_failures":9}`), 0o600); err != nil {
		t.Fatal(err)
	}

	wantJSON(t, "locked list", h.Do("bob@pve", "GET", "/access/tfa", nil),
		`[{"userid":"bob@pve","entries":[{"type":"totp","id":"v1-entry","created":1}],"totp-locked":true,"tfa-locked-until":`+until+`}]`)
	runCases(t, h, []callCase{
		{name: "no privileges", user: "carl@pve", method: "PUT", path: "/access/users/bob@pve/unlock-tfa", status: 403, msg: "Permission check failed\n"},
		{name: "no tfa data", user: "root@pam", method: "PUT", path: "/access/users/alice@pve/unlock-tfa", status: 500, msg: "no such user\n"},
	})
	// grace administers the ops group, bob's.
	wantJSON(t, "unlock", h.Do("grace@pve", "PUT", "/access/users/bob@pve/unlock-tfa", nil), `true`)
	u := h.tfaFile().Users["bob@pve"]
	if u == nil || u.TOTPLocked || u.TFALockedUntil != nil || len(u.TOTP) != 1 {
		t.Errorf("bob after unlock: %s", h.File("priv/tfa.cfg"))
	}
	data, err := os.ReadFile(counters)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := tfa.ParseChallengeData(data); err != nil || d.TOTPFailures != 0 || d.TFAFailures != 0 {
		t.Errorf("counters after unlock: %s (%v)", data, err)
	}
	before := h.File("priv/tfa.cfg")
	wantJSON(t, "unlock again", h.Do("root@pam", "PUT", "/access/users/bob@pve/unlock-tfa", nil), `false`)
	wantJSON(t, "unlock unlocked", h.Do("root@pam", "PUT", "/access/users/carl@pve/unlock-tfa", nil), `false`)
	if got := h.File("priv/tfa.cfg"); got != before {
		t.Errorf("unlocking unlocked users wrote tfa.cfg:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(h.Auth.TFAChallengeDir(), "carl@pve")); err == nil {
		t.Errorf("unlock created carl's challenge file")
	}
}

func TestReadUserTFAType(t *testing.T) {
	users := aclTestCfg + "user:dora@pve:1:0:::::JBSWY3DPEHPK3PXP:\n"
	h := newHarness(t, users)
	h.loginAll("alice@pve", "bob@pve", "carl@pve")
	h.writeFile("priv/tfa.cfg", `{"users":{"bob@pve":{"totp":[{"id":"a","created":1,"entry":"`+tfaTestURI+`"}],"recovery":{"secret":"0011223344556677","entries":[null],"created":2}},`+
		`"carl@pve":{"recovery":{"secret":"0011223344556677","entries":[null],"created":2}}}}`, 0o600)
	get := func(caller, userid string, kv ...string) apitest.Reply {
		return h.Do(caller, "GET", "/access/users/"+userid+"/tfa", vals(kv...))
	}
	wantJSON(t, "bob", get("bob@pve", "bob@pve"), `{"user":"oath"}`)
	wantJSON(t, "bob multiple", get("bob@pve", "bob@pve", "multiple", "1"), `{"user":["totp","recovery"]}`)
	wantJSON(t, "carl by an admin", get("alice@pve", "carl@pve"), `{"user":"incompatible"}`)
	wantJSON(t, "alice", get("alice@pve", "alice@pve"), `{}`)
	wantJSON(t, "alice multiple", get("alice@pve", "alice@pve", "multiple", "1"), `{"user":[]}`)
	if r := get("carl@pve", "bob@pve"); r.Status != http.StatusForbidden {
		t.Errorf("carl reading bob's types: %d", r.Status)
	}

	// A realm enforcing TOTP; adding a factor converts dora's old key.
	h.writeFile("domains.cfg", "pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\ttfa type=oath,digits=8,step=60\n\n", 0o640)
	wantJSON(t, "bob in an oath realm", get("root@pam", "bob@pve"), `{"realm":"oath","user":"oath"}`)
	r := h.Do("root@pam", "POST", "/access/tfa/dora@pve", vals("type", "recovery"))
	if r.Status != http.StatusOK {
		t.Fatalf("add recovery for dora: %d %q", r.Status, r.Message)
	}
	if k := h.userCfg().Users["dora@pve"].Keys; k != "x" {
		t.Errorf("dora's keys = %q; want x", k)
	}
	u := h.tfaFile().Users["dora@pve"]
	if u == nil || len(u.TOTP) != 1 || u.Recovery == nil {
		t.Fatalf("dora's factors: %s", h.File("priv/tfa.cfg"))
	}
	key := u.TOTP[0]
	if key.Description != "<old userconfig key 0>" || key.Key.Account != "Old key for dora@pve" || key.Key.Issuer == nil || *key.Key.Issuer != "Proxmox VE" ||
		key.Key.Digits != 8 || key.Key.Period != 60 || key.LastCount != nil {
		t.Errorf("converted key: %+v %s", key, key.Key.URI())
	}
	if want, _ := tfa.ParseTOTP("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"); string(key.Key.Secret) != string(want.Secret) {
		t.Errorf("converted secret %x; want %x", key.Key.Secret, want.Secret)
	}
	wantJSON(t, "dora", get("root@pam", "dora@pve", "multiple", "1"), `{"realm":"oath","user":["totp","recovery"]}`)

	// Yubico realms and configured webauthn are not implemented.
	h.writeFile("domains.cfg", "pam: pam\n\npve: pve\n\ttfa type=yubico,id=1,key=k\n\n", 0o640)
	h.writeFile("datacenter.cfg", "keyboard: en-us\nwebauthn: rp=pve.example.com,origin=https://pve.example.com:8006,id=pve.example.com\n", 0o640)
	runCases(t, h, []callCase{
		{name: "yubico", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "yubico", "description", "key", "value", "cccccccccccbnkhtfcvhdlkvnduu"},
			status: 501, msg: "not implemented: Yubico OTP verification\n"},
		{name: "webauthn", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "webauthn", "description", "key"},
			status: 501, msg: "not implemented: webauthn registration\n"},
		{name: "webauthn without response", user: "root@pam", method: "POST", path: "/access/tfa/bob@pve",
			params: []string{"type", "webauthn", "challenge", "{}"},
			status: 500, msg: "missing 'value' parameter (webauthn challenge response missing)\n"},
	})
	wantJSON(t, "bob in a yubico realm", get("root@pam", "bob@pve"), `{"realm":"yubico","user":"oath"}`)
}
