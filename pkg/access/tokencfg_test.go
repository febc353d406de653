package access

import (
	"slices"
	"testing"
)

func TestTokenCfg(t *testing.T) {
	in := "root@pam!mon 0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b\n\nalice@pve!ci 11111111-2222-3333-4444-555555555555\nbroken\nbad id x\nalice@pve!t2 a b\n"
	s, warns := ParseTokenCfg("token.cfg", []byte(in))
	want := []string{"token.cfg:4: ignoring invalid token entry", "token.cfg:5: ignoring invalid token entry",
		"token.cfg:6: ignoring invalid token entry"}
	if got := warningStrings(warns); !slices.Equal(got, want) {
		t.Errorf("warnings = %q; want %q", got, want)
	}
	if got, want := string(s.Marshal()), "alice@pve!ci 11111111-2222-3333-4444-555555555555\nroot@pam!mon 0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b\n"; got != want {
		t.Errorf("Marshal = %q; want %q", got, want)
	}
	data := []byte(in)
	for _, tt := range []struct {
		id, secret string
		ok         bool
	}{
		{"root@pam!mon", "0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b", true},
		{"alice@pve!ci", "11111111-2222-3333-4444-555555555555", true},
		{"root@pam!mon", "0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6", false},   // prefix
		{"root@pam!mon", "0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6bX", false}, // longer
		{"alice@pve!ci", "0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b", false},  // other token's secret
		{"root@pam!mon", "", false},
		{"root@pam!mon 0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b\nx", "y", false},
		{"bad", "id x", false}, // "bad id x" is in the file, but not as a token
	} {
		err := VerifyTokenSecret(data, tt.id, tt.secret)
		if (err == nil) != tt.ok {
			t.Errorf("VerifyTokenSecret(%q, %q) = %v; want ok %v", tt.id, tt.secret, err, tt.ok)
		}
	}
}
