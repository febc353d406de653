package tfa

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func TestList(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	cfg.Users["bob@ldap"].Yubico[0].Description = ""
	got := toJSON(t, cfg.ListUser("bob@ldap"))
	want := `[{"type":"recovery","id":"recovery","created":1723200000},` +
		`{"type":"yubico","id":"` + cfg.Users["bob@ldap"].Yubico[0].ID + `","created":1723200100},` +
		`{"type":"yubico","id":"` + cfg.Users["bob@ldap"].Yubico[1].ID + `","description":"backup key","created":1723200200,"enable":false}]`
	if got != want {
		t.Errorf("ListUser(bob) =\n%s\nwant\n%s", got, want)
	}
	if got := toJSON(t, cfg.ListUser("nobody@pve")); got != "[]" {
		t.Errorf("ListUser(nobody) = %s", got)
	}
	// Order: recovery, totp, webauthn, u2f, yubico.
	single := mustParse(t, readTestdata(t, "single-user.cfg"))
	var types []string
	for _, e := range single.ListUser("root@pam") {
		types = append(types, string(e.Type))
	}
	if strings.Join(types, ",") != "recovery,totp,webauthn" {
		t.Errorf("ListUser(root) types = %v", types)
	}

	all := cfg.ListAll(time.Unix(1723000000, 0))
	if len(all) != 3 || all[0].UserID != "alice@pve" || all[1].UserID != "bob@ldap" || all[2].UserID != "carol@pve" {
		t.Fatalf("ListAll users = %+v", all)
	}
	if s := toJSON(t, all[0]); !strings.Contains(s, `"tfa-locked-until":1723003600`) || strings.Contains(s, "totp-locked") {
		t.Errorf("alice = %s", s)
	}
	if s := toJSON(t, all[1]); !strings.HasPrefix(s, `{"userid":"bob@ldap","entries":[`) || !strings.HasSuffix(s, `],"totp-locked":true}`) {
		t.Errorf("bob = %s", s)
	}
	// An expired lock is not reported.
	if s := toJSON(t, cfg.ListAll(time.Unix(1723003600, 0))[0]); strings.Contains(s, "tfa-locked-until") {
		t.Errorf("alice after lock = %s", s)
	}
}

func TestEntryUpdateDelete(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	alice := cfg.Users["alice@pve"]
	id := alice.U2F[0].ID

	if e, ok := cfg.Entry("alice@pve", id); !ok || e.Type != TypeU2F || e.Description != "old U2F key" {
		t.Errorf("Entry(u2f) = %+v, %v", e, ok)
	}
	if e, ok := cfg.Entry("bob@ldap", "recovery"); !ok || e.Type != TypeRecovery || e.Created != 1723200000 {
		t.Errorf("Entry(recovery) = %+v, %v", e, ok)
	}
	for _, tc := range []struct{ user, id string }{{"alice@pve", "recovery"}, {"alice@pve", "nope"}, {"nobody@pve", id}} {
		if _, ok := cfg.Entry(tc.user, tc.id); ok {
			t.Errorf("Entry(%s, %s) found", tc.user, tc.id)
		}
	}

	if err := cfg.Update("alice@pve", id, ptr("renamed"), ptr(false)); err != nil {
		t.Fatal(err)
	}
	if e := alice.U2F[0]; e.Description != "renamed" || e.Enable {
		t.Errorf("after Update: %+v", e.Info)
	}
	if err := cfg.Update("alice@pve", id, nil, ptr(true)); err != nil || !alice.U2F[0].Enable || alice.U2F[0].Description != "renamed" {
		t.Errorf("partial Update: %v, %+v", err, alice.U2F[0].Info)
	}
	for _, tc := range []struct{ user, id string }{{"bob@ldap", "recovery"}, {"alice@pve", "nope"}, {"nobody@pve", id}} {
		if err := cfg.Update(tc.user, tc.id, ptr("x"), nil); !errors.Is(err, ErrNoSuchEntry) {
			t.Errorf("Update(%s, %s) = %v", tc.user, tc.id, err)
		}
	}

	if left, err := cfg.Delete("alice@pve", id); err != nil || !left || len(alice.U2F) != 0 {
		t.Errorf("Delete(u2f) = %v, %v", left, err)
	}
	if _, err := cfg.Delete("alice@pve", id); !errors.Is(err, ErrNoSuchEntry) {
		t.Errorf("second Delete = %v", err)
	}
	if left, err := cfg.Delete("bob@ldap", "recovery"); err != nil || !left || cfg.Users["bob@ldap"].Recovery != nil {
		t.Errorf("Delete(recovery) = %v, %v", left, err)
	}
	// Deleting the last factor removes the user, lock state included.
	carol := cfg.Users["carol@pve"].WebAuthn[0].ID
	if left, err := cfg.Delete("carol@pve", carol); err != nil || left {
		t.Errorf("Delete(last) = %v, %v", left, err)
	}
	if _, ok := cfg.Users["carol@pve"]; ok {
		t.Error("user without factors kept")
	}
}

// seqReader yields 0, 1, 2, ... so generated ids and keys are predictable.
type seqReader struct{ n byte }

func (r *seqReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

func TestAdd(t *testing.T) {
	now := time.Unix(1723456789, 0)
	const uri = "otpauth://totp/Proxmox%20VE:new%40pve?secret=JBSWY3DPEHPK3PXP&issuer=Proxmox%20VE"
	key, _ := ParseTOTP(uri)
	code := codeAt(t, key, now, 0)

	cfg := &Config{}
	info, err := cfg.add("new@pve", AddParams{Type: TypeTOTP, Description: ptr("phone"), TOTP: ptr(uri), Value: ptr(code)}, now, &seqReader{})
	if err != nil {
		t.Fatalf("add totp: %v", err)
	}
	if got := toJSON(t, info); got != `{"id":"00010203-0405-4607-8809-0a0b0c0d0e0f"}` {
		t.Errorf("UpdateInfo = %s", got)
	}
	e := cfg.Users["new@pve"].TOTP[0]
	if step, _ := key.Step(now); e.Created != now.Unix() || !e.Enable || e.LastCount == nil || *e.LastCount != step {
		t.Errorf("new entry = %+v", e)
	}
	// The registration code cannot be used to log in.
	if res := verify(t, cfg, "new@pve", "totp:"+code, nil, now); res.OK {
		t.Error("registration code accepted for login")
	}

	for _, tc := range []struct {
		name    string
		p       AddParams
		wantErr string
	}{
		{"wrong code", AddParams{Type: TypeTOTP, Description: ptr("x"), TOTP: ptr(uri), Value: ptr("000000")}, "failed to verify TOTP challenge"},
		{"no description", AddParams{Type: TypeTOTP, TOTP: ptr(uri), Value: ptr(code)}, "'description' is required"},
		{"no value", AddParams{Type: TypeTOTP, Description: ptr("x"), TOTP: ptr(uri)}, "requires both"},
		{"challenge", AddParams{Type: TypeTOTP, Description: ptr("x"), TOTP: ptr(uri), Value: ptr(code), Challenge: ptr("c")}, "'challenge' parameter is invalid"},
		{"bad uri", AddParams{Type: TypeTOTP, Description: ptr("x"), TOTP: ptr("otpauth://totp/x"), Value: ptr(code)}, "missing '?'"},
		{"recovery with value", AddParams{Type: TypeRecovery, Value: ptr("1")}, "does not allow additional parameters"},
		{"yubico without value", AddParams{Type: TypeYubico, Description: ptr("x")}, "missing 'value'"},
		{"yubico with totp", AddParams{Type: TypeYubico, Description: ptr("x"), TOTP: ptr(uri)}, "invalid for 'yubico'"},
		{"webauthn", AddParams{Type: TypeWebAuthn, Description: ptr("x")}, ErrUnsupported.Error()},
		{"u2f with totp", AddParams{Type: TypeU2F, TOTP: ptr(uri)}, "'totp' parameter is invalid for 'u2f' entries"},
		{"unknown type", AddParams{Type: "sms"}, "unknown tfa type"},
	} {
		if _, err := cfg.add("new@pve", tc.p, now, &seqReader{}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v; want %q", tc.name, err, tc.wantErr)
		}
	}

	info, err = cfg.add("new@pve", AddParams{Type: TypeYubico, Description: ptr("yk"), Value: ptr("ccccccbcgujh")}, now, &seqReader{n: 16})
	if err != nil || *info.ID != "10111213-1415-4617-9819-1a1b1c1d1e1f" {
		t.Errorf("add yubico = %s, %v", toJSON(t, info), err)
	}
	if keys, ok := cfg.YubicoKeys("new@pve"); !ok || keys != "ccccccbcgujh" {
		t.Errorf("YubicoKeys = %q, %v", keys, ok)
	}
}

func TestAddRecovery(t *testing.T) {
	now := time.Unix(1723456789, 0)
	cfg := &Config{}
	info, err := cfg.add("r@pve", AddParams{Type: TypeRecovery, Description: ptr("ignored")}, now, &seqReader{})
	if err != nil {
		t.Fatal(err)
	}
	if *info.ID != "recovery" || len(info.Recovery) != RecoveryKeyCount {
		t.Fatalf("UpdateInfo = %s", toJSON(t, info))
	}
	// Secret from the first 8 random bytes, then ten keys of 8 bytes each.
	r := cfg.Users["r@pve"].Recovery
	if r.Secret != "0001020304050607" || info.Recovery[0] != "0809-0a0b-0c0d-0e0f" || info.Recovery[9] != "5051-5253-5455-5657" {
		t.Errorf("secret %q, keys %v", r.Secret, info.Recovery)
	}
	if s := toJSON(t, info); !strings.HasPrefix(s, `{"id":"recovery","recovery":["0809-0a0b-0c0d-0e0f",`) {
		t.Errorf("UpdateInfo JSON = %s", s)
	}
	pattern := regexp.MustCompile(`^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$`)
	keys, err := (&Config{}).AddRecovery("x@pve", now)
	if err != nil || len(keys) != RecoveryKeyCount {
		t.Fatalf("AddRecovery = %v, %v", keys, err)
	}
	for _, k := range keys {
		if !pattern.MatchString(k) {
			t.Errorf("key %q has the wrong form", k)
		}
	}
	// Stored form: HMAC-SHA256 keyed with the secret's text, hex.
	if want := r.hash("0809-0a0b-0c0d-0e0f"); *r.Entries[0] != want || len(want) != 64 {
		t.Errorf("entry 0 = %s; want %s", *r.Entries[0], want)
	}
	if !cfg.HasType("r@pve", TypeRecovery) {
		t.Error("HasType(recovery) = false")
	}
	if _, err := cfg.AddRecovery("r@pve", now); err == nil || !strings.Contains(err.Error(), "already has recovery keys") {
		t.Errorf("second AddRecovery error = %v", err)
	}
	// All used up: HasType is false, but a new set still needs a delete first.
	for i := range r.Entries {
		r.Entries[i] = nil
	}
	if cfg.HasType("r@pve", TypeRecovery) {
		t.Error("HasType(recovery) with all keys used = true")
	}
	if _, err := cfg.AddRecovery("r@pve", now); err == nil {
		t.Error("AddRecovery over a used-up set succeeded")
	}
	out := mustMarshal(t, cfg)
	if !bytes.Contains(out, []byte(`"recovery":{"secret":"0001020304050607","entries":[null,null,null,null,null,null,null,null,null,null],"created":1723456789}`)) {
		t.Errorf("marshalled = %s", out)
	}
}

func TestUnlockAndLockStatus(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	now := time.Unix(1723000000, 0)
	if s, ok := cfg.LockStatus("alice@pve", now); !ok || toJSON(t, s) != `{"tfa-locked-until":1723003600}` {
		t.Errorf("LockStatus(alice) = %s, %v", toJSON(t, s), ok)
	}
	if s, _ := cfg.LockStatus("bob@ldap", now); toJSON(t, s) != `{"totp-locked":true}` {
		t.Errorf("LockStatus(bob) = %s", toJSON(t, s))
	}
	data := &ChallengeData{TOTPFailures: 8, TFAFailures: 12}
	if was, err := cfg.Unlock("bob@ldap", data, now); err != nil || !was {
		t.Errorf("Unlock(bob) = %v, %v", was, err)
	}
	if data.TOTPFailures != 0 || data.TFAFailures != 0 || cfg.Users["bob@ldap"].TOTPLocked {
		t.Errorf("after unlock: %+v", data)
	}
	if was, _ := cfg.Unlock("bob@ldap", nil, now); was {
		t.Error("second Unlock reported a lock")
	}
	// An expired lock does not count as locked.
	if was, _ := cfg.Unlock("alice@pve", nil, time.Unix(1723003600, 0)); was {
		t.Error("Unlock(alice) after the lock expired reported a lock")
	}
	if _, err := cfg.Unlock("nobody@pve", nil, now); err == nil {
		t.Error("Unlock(nobody) succeeded")
	}
}

func TestHasTypeAndRemoveUser(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	for _, tc := range []struct {
		user string
		typ  Type
		want bool
	}{
		{"alice@pve", TypeTOTP, true}, {"alice@pve", "oath", true}, {"alice@pve", TypeU2F, true},
		{"alice@pve", TypeWebAuthn, false}, {"bob@ldap", TypeRecovery, false}, {"bob@ldap", TypeYubico, true},
		{"carol@pve", TypeWebAuthn, true}, {"nobody@pve", TypeTOTP, false},
	} {
		if got := cfg.HasType(tc.user, tc.typ); got != tc.want {
			t.Errorf("HasType(%s, %s) = %v", tc.user, tc.typ, got)
		}
	}
	if !cfg.RemoveUser("carol@pve") || cfg.RemoveUser("carol@pve") {
		t.Error("RemoveUser did not report correctly")
	}
}
