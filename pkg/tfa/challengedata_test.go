package tfa

import (
	"strings"
	"testing"
	"time"
)

func TestChallengeData(t *testing.T) {
	const in = `{"webauthn_auths":[{"state":{},"challenge":"old","created":1000},{"state":{},"challenge":"new","created":1100}],"totp_failures":3,"tfa_failures":7,"future":true}`
	d, err := ParseChallengeData([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if d.TOTPFailures != 3 || d.TFAFailures != 7 || len(d.WebAuthnAuths) != 2 {
		t.Errorf("parsed = %+v", d)
	}
	out, err := d.Marshal()
	if err != nil || string(out) != in {
		t.Errorf("Marshal() = %s, %v; want %s", out, err, in)
	}
	d.Prune(time.Unix(1100+120, 0))
	if len(d.WebAuthnAuths) != 1 || !strings.Contains(string(d.WebAuthnAuths[0]), `"new"`) {
		t.Errorf("after Prune: %s", d.WebAuthnAuths)
	}
	d.TOTPFailures, d.TFAFailures, d.WebAuthnAuths, d.Extra = 0, 0, nil, nil
	if out, _ := d.Marshal(); string(out) != "{}" {
		t.Errorf("empty Marshal() = %s", out)
	}

	if d, err := ParseChallengeData(nil); err != nil || d.TOTPFailures != 0 {
		t.Errorf("ParseChallengeData(empty) = %+v, %v", d, err)
	}
	for _, bad := range []string{`{"totp_failures":-1}`, `{"tfa_failures":4294967296}`, `{"u2f_auths":null}`, `[]`, `{`} {
		if _, err := ParseChallengeData([]byte(bad)); err == nil {
			t.Errorf("ParseChallengeData(%s) succeeded", bad)
		}
	}
}
