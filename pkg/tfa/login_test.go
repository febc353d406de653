package tfa

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func rootRecoveryKeys(t *testing.T) []string {
	t.Helper()
	return strings.Fields(string(readTestdata(t, "recovery-keys-root.txt")))
}

func codeAt(t *testing.T, key TOTP, now time.Time, delta int64) string {
	t.Helper()
	step, err := key.Step(now)
	if err != nil {
		t.Fatal(err)
	}
	code, err := key.CodeAt(step + delta)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func verify(t *testing.T, cfg *Config, user, resp string, data *ChallengeData, now time.Time) Result {
	t.Helper()
	res, err := cfg.Verify(user, cfg.Challenge(user), resp, data, now)
	if err != nil {
		t.Fatalf("Verify(%q) error = %v", resp, err)
	}
	return res
}

func TestChallenge(t *testing.T) {
	single := mustParse(t, readTestdata(t, "single-user.cfg"))
	multi := mustParse(t, readTestdata(t, "multi-user.cfg"))
	disabled := mustParse(t, []byte(`{"users":{"d@pve":{"yubico":[{"id":"x","created":1,"enable":false,"entry":"k"}]}}}`))
	future := mustParse(t, []byte(`{"users":{"f@pve":{"passkeys":[1]}}}`))
	tests := []struct {
		cfg  *Config
		user string
		want string // "" = no challenge
	}{
		{single, "root@pam", `{"totp":true,"recovery":[0,1,3,4,6,7,8,9]}`},
		{multi, "alice@pve", `{"totp":true}`},                // the disabled key does not count, u2f cannot be served
		{multi, "bob@ldap", `{"recovery":[],"yubico":true}`}, // a used-up recovery set still shows
		{multi, "carol@pve", `{}`},                           // webauthn only: blocked, not skipped
		{multi, "nobody@pve", ""},
		{disabled, "d@pve", ""},
		{future, "f@pve", `{}`},
	}
	for _, tc := range tests {
		ch := tc.cfg.Challenge(tc.user)
		if ch == nil {
			if tc.want != "" {
				t.Errorf("Challenge(%s) = nil; want %s", tc.user, tc.want)
			}
			continue
		}
		got, err := ch.Marshal()
		if err != nil || string(got) != tc.want {
			t.Errorf("Challenge(%s) = %s, %v; want %q", tc.user, got, err, tc.want)
			continue
		}
		back, err := ParseChallenge(got)
		if err != nil {
			t.Fatalf("ParseChallenge(%s) error = %v", got, err)
		}
		if again, _ := back.Marshal(); string(again) != tc.want {
			t.Errorf("ParseChallenge round trip = %s; want %s", again, tc.want)
		}
	}
	if got, _ := multi.YubicoChallenge("bob@ldap").Marshal(); string(got) != `{"recovery":[],"yubico":true}` {
		t.Errorf("YubicoChallenge = %s", got)
	}
}

func TestVerifyTOTPAndReplay(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "single-user.cfg"))
	key := cfg.Users["root@pam"].TOTP[0].Key
	now := time.Unix(1723456789, 0)
	data := &ChallengeData{}

	steps := []struct {
		name    string
		resp    string
		now     time.Time
		ok      bool
		reason  error
		totpF   uint32
		changed bool
	}{
		{"current code", "totp:" + codeAt(t, key, now, 0), now, true, nil, 0, true},
		{"same code again", "totp:" + codeAt(t, key, now, 0), now, false, ErrTOTPReused, 1, false},
		{"same code, 20 s later, still in window", "totp:" + codeAt(t, key, now, 0), now.Add(20 * time.Second), false, ErrTOTPReused, 2, false},
		{"older code in window", "totp:" + codeAt(t, key, now, -1), now, false, ErrTOTPReused, 3, false},
		{"wrong code", "totp:000000", now, false, nil, 4, false},
		{"next code", "totp:" + codeAt(t, key, now, 1), now, true, nil, 0, true},
	}
	for _, s := range steps {
		res := verify(t, cfg, "root@pam", s.resp, data, s.now)
		if res.OK != s.ok || res.ConfigChanged != s.changed || data.TOTPFailures != s.totpF {
			t.Errorf("%s: Result = %+v, totp failures %d; want ok=%v changed=%v failures=%d", s.name, res, data.TOTPFailures, s.ok, s.changed, s.totpF)
		}
		if s.reason != nil && !errors.Is(res.Reason, s.reason) {
			t.Errorf("%s: Reason = %v; want %v", s.name, res.Reason, s.reason)
		}
		if s.ok && res.Err() != nil || !s.ok && !errors.Is(res.Err(), ErrFailed) {
			t.Errorf("%s: Err() = %v", s.name, res.Err())
		}
	}
	if data.TFAFailures != 0 {
		t.Errorf("TFA failures after success = %d", data.TFAFailures)
	}

	// The used step is written to tfa.cfg as PVE does and survives a reload,
	// so another node (or a restarted daemon) refuses the code too.
	out := mustMarshal(t, cfg)
	step, _ := key.Step(now)
	if !strings.Contains(string(out), `"entry":{"totp":"otpauth://totp/Proxmox%20VE:root%40pam?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=Proxmox%20VE","last-count":`) {
		t.Errorf("marshalled entry lacks last-count: %s", out)
	}
	reloaded := mustParse(t, out)
	if lc := reloaded.Users["root@pam"].TOTP[0].LastCount; lc == nil || *lc != step+1 {
		t.Errorf("reloaded last-count = %v; want %d", lc, step+1)
	}
	if res := verify(t, reloaded, "root@pam", "totp:"+codeAt(t, key, now, 1), &ChallengeData{}, now); res.OK {
		t.Error("replayed code accepted after reload")
	}
}

func TestVerifyDisabledTOTP(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	alice := cfg.Users["alice@pve"]
	now := time.Unix(1723456789, 0)
	cfg.ExpireLocks(now)
	// The second key is disabled: its codes do not log in.
	if res := verify(t, cfg, "alice@pve", "totp:"+codeAt(t, alice.TOTP[1].Key, now, 0), nil, now); res.OK {
		t.Error("code of a disabled key accepted")
	}
	if res := verify(t, cfg, "alice@pve", "totp:"+codeAt(t, alice.TOTP[0].Key, now, 0), nil, now); !res.OK {
		t.Errorf("code of the enabled key refused: %+v", res)
	}
}

func TestVerifyRecovery(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "single-user.cfg"))
	keys := rootRecoveryKeys(t)
	now := time.Unix(1723456789, 0)
	data := &ChallengeData{TOTPFailures: 3, TFAFailures: 5}
	cfg.Users["root@pam"].TOTPLocked = true

	res := verify(t, cfg, "root@pam", "recovery:"+keys[0], data, now)
	if !res.OK || !res.ConfigChanged || !res.CountersChanged {
		t.Fatalf("first use: %+v", res)
	}
	if u := cfg.Users["root@pam"]; u.TOTPLocked || data.TOTPFailures != 0 || data.TFAFailures != 0 {
		t.Errorf("after recovery: totp-locked=%v counters=%+v", u.TOTPLocked, data)
	}
	if got := cfg.Challenge("root@pam").Recovery; len(got) != 7 || got[0] != 1 {
		t.Errorf("remaining keys = %v", got)
	}
	for _, tc := range []struct{ name, key string }{
		{"reused key", keys[0]},
		{"key used before", keys[2]},
		{"upper case", strings.ToUpper(keys[1])},
		{"without dashes", strings.ReplaceAll(keys[1], "-", "")},
	} {
		if res := verify(t, cfg, "root@pam", "recovery:"+tc.key, data, now); res.OK {
			t.Errorf("%s accepted", tc.name)
		}
	}
	if data.TFAFailures != 4 || data.TOTPFailures != 0 {
		t.Errorf("counters after recovery failures = %+v", data)
	}
	// The used key is gone for good after a write and reload.
	reloaded := mustParse(t, mustMarshal(t, cfg))
	if res := verify(t, reloaded, "root@pam", "recovery:"+keys[0], nil, now); res.OK {
		t.Error("used key accepted after reload")
	}
	if res := verify(t, reloaded, "root@pam", "recovery:"+keys[1], nil, now); !res.OK {
		t.Error("unused key refused after reload")
	}
}

func TestTOTPLockout(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "single-user.cfg"))
	key := cfg.Users["root@pam"].TOTP[0].Key
	now := time.Unix(1723456789, 0)
	data := &ChallengeData{}
	for i := 1; i <= TOTPFailureLimit; i++ {
		res := verify(t, cfg, "root@pam", "totp:999999", data, now)
		last := i == TOTPFailureLimit
		if res.OK || res.TOTPLimitReached != last || res.ConfigChanged != last || res.TFALimitReached {
			t.Fatalf("failure %d: %+v", i, res)
		}
		if last && !errors.Is(res.Err(), ErrTOTPLimit) {
			t.Errorf("Err() = %v; want %v", res.Err(), ErrTOTPLimit)
		}
	}
	if !cfg.Users["root@pam"].TOTPLocked {
		t.Fatal("totp-locked not set")
	}
	// A correct code is refused without counting while locked.
	res := verify(t, cfg, "root@pam", "totp:"+codeAt(t, key, now, 0), data, now)
	if res.OK || !res.Locked || res.CountersChanged {
		t.Errorf("locked TOTP: %+v", res)
	}
	// A recovery key unlocks TOTP.
	if res := verify(t, cfg, "root@pam", "recovery:"+rootRecoveryKeys(t)[9], data, now); !res.OK {
		t.Fatalf("recovery: %+v", res)
	}
	if res := verify(t, cfg, "root@pam", "totp:"+codeAt(t, key, now, 0), data, now); !res.OK {
		t.Errorf("TOTP after recovery: %+v", res)
	}
}

func TestTFALockout(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "single-user.cfg"))
	keys := rootRecoveryKeys(t)
	key := cfg.Users["root@pam"].TOTP[0].Key
	now := time.Unix(1723456789, 0)
	data := &ChallengeData{}
	for i := 1; i <= TFAFailureLimit; i++ {
		res := verify(t, cfg, "root@pam", "recovery:nope", data, now)
		if last := i == TFAFailureLimit; res.OK || res.TFALimitReached != last || res.ConfigChanged != last {
			t.Fatalf("failure %d: %+v", i, res)
		}
	}
	u := cfg.Users["root@pam"]
	if u.TFALockedUntil == nil || *u.TFALockedUntil != now.Unix()+TFALockSeconds {
		t.Fatalf("tfa-locked-until = %v; want %d", u.TFALockedUntil, now.Unix()+TFALockSeconds)
	}
	if s, _ := cfg.LockStatus("root@pam", now); s.TFALockedUntil == nil {
		t.Error("LockStatus does not show the lock")
	}
	// Everything, even a valid recovery key, is refused until the lock ends.
	for _, resp := range []string{"recovery:" + keys[0], "totp:" + codeAt(t, key, now, 0)} {
		if res := verify(t, cfg, "root@pam", resp, data, now.Add(TFALockSeconds*time.Second-time.Second)); res.OK || !res.Locked {
			t.Errorf("%s during lock: %+v", resp, res)
		}
	}
	after := now.Add(TFALockSeconds * time.Second)
	// The counter is not reset by the lock: the next failure locks again.
	if res := verify(t, cfg, "root@pam", "totp:000000", data, after); !res.TFALimitReached {
		t.Errorf("failure after lock: %+v", res)
	}
	later := after.Add(TFALockSeconds * time.Second)
	if res := verify(t, cfg, "root@pam", "totp:"+codeAt(t, key, later, 0), data, later); !res.OK {
		t.Errorf("valid code after the lock: %+v", res)
	}
	if data.TFAFailures != 0 {
		t.Errorf("TFA failures after success = %d", data.TFAFailures)
	}
}

func TestVerifyOther(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	now := time.Unix(1723456789, 0)
	cfg.ExpireLocks(now)
	for _, tc := range []struct {
		name, user, resp string
		wantErr          bool
	}{
		{"webauthn is unsupported", "carol@pve", `webauthn:{"id":"x"}`, false},
		{"u2f is unsupported", "alice@pve", `u2f:{"keyHandle":"x"}`, false},
		{"unknown user", "nobody@pve", "totp:123456", false},
		{"bad prefix", "alice@pve", "yubico:cccccc", true},
		{"no prefix", "alice@pve", "123456", true},
		{"bad webauthn json", "carol@pve", "webauthn:{", true},
	} {
		data := &ChallengeData{}
		res, err := cfg.Verify(tc.user, nil, tc.resp, data, now)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error = %v; want error %v", tc.name, err, tc.wantErr)
		}
		if res.OK {
			t.Errorf("%s: accepted", tc.name)
		}
		counted := data.TFAFailures == 1
		if wantCount := !tc.wantErr && tc.user != "nobody@pve"; counted != wantCount {
			t.Errorf("%s: TFA failures = %d", tc.name, data.TFAFailures)
		}
	}
}

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Response
		ok   bool
	}{
		{"totp:123456", Response{TypeTOTP, "123456"}, true},
		{"totp:", Response{TypeTOTP, ""}, true},
		{"recovery:ab12-cd34-ef56-7890", Response{TypeRecovery, "ab12-cd34-ef56-7890"}, true},
		{`webauthn:{"a":1}`, Response{TypeWebAuthn, `{"a":1}`}, true},
		{`u2f: [1] `, Response{TypeU2F, ` [1] `}, true},
		{"TOTP:123456", Response{}, false},
		{"yubico:ccc", Response{}, false},
		{"oath:123456", Response{}, false},
		{"u2f:", Response{}, false},
	} {
		got, err := ParseResponse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseResponse(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCheckRealmType(t *testing.T) {
	for _, tc := range []struct {
		realm, resp, wantErr string
	}{
		{"", "webauthn:{}", ""},
		{"oath", "", ""},
		{"oath", "totp:123456", ""},
		{"oath", "recovery:x", ""},
		{"oath", "webauthn:{}", "realm requires totp authentication"},
		{"yubico", "yubico:ccc", ""},
		{"yubico", "totp:1", "realm requires yubico authentication"},
		{"oath", "123456", "bad otp response"},
		{"oath", ":123456", "bad otp response"},
	} {
		err := CheckRealmType(tc.realm, tc.resp)
		if (tc.wantErr == "") != (err == nil) || err != nil && err.Error() != tc.wantErr {
			t.Errorf("CheckRealmType(%q, %q) = %v; want %q", tc.realm, tc.resp, err, tc.wantErr)
		}
	}
}
