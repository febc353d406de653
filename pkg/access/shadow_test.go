package access

import (
	"errors"
	"regexp"
	"slices"
	"testing"
)

// Hashes made independently with OpenSSL 3.0 and glibc crypt(3):
//
//	openssl passwd -5 -salt Ab3dE9xY 'pässword 1'
//	openssl passwd -6 -salt Ab3dE9xY 'pässword 1'
//	openssl passwd -1 -salt Ab3dE9xY 'pässword 1'
//	perl -e 'print crypt("secret", "\$5\$rounds=10000\$saltsalt\$")'
const testShadow = `alice:$5$Ab3dE9xY$Vf5T.7wvBGA5LbejHGT9MFpKHqaEtZTJVyrCX50aem3:
bob:$6$Ab3dE9xY$YaPTOVFZJSV98STvR17vJsttXdqPM4P9eyTXRM86gOaDM3i3sqTZfV9OB5gJLbsCM3Vb4xcl.Cfdqdps3Da0h0:
carol:$1$Ab3dE9xY$Ik84u7YTkRV9e2HBY2FZ01:
dave:$5$rounds=10000$saltsalt$RUsnTSO2Cw.gkRW/RZSmG6BCeuh1a6eDbZfnX4oz1c5:
not a valid line
erin:abcdefghijklm:
`

func TestShadowVerify(t *testing.T) {
	s, warns := ParseShadow("shadow.cfg", []byte(testShadow))
	if got := warningStrings(warns); !slices.Equal(got, []string{"shadow.cfg:5: ignoring invalid shadow line"}) {
		t.Errorf("warnings = %q", got)
	}
	for _, tt := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "pässword 1", true},
		{"alice", "pässword 2", false},
		{"bob", "pässword 1", true},
		{"bob", "password 1", false},
		{"carol", "pässword 1", true},
		{"dave", "secret", true},
		{"dave", "Secret", false},
		{"erin", "x", false}, // DES hashes are not supported
		{"zed", "x", false},
		{"alice", "", false},
	} {
		err := s.VerifyPassword(tt.user, tt.pw)
		if (err == nil) != tt.ok {
			t.Errorf("VerifyPassword(%s, %q) = %v; want ok %v", tt.user, tt.pw, err, tt.ok)
		}
	}
	if err := s.VerifyPassword("alice", "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong password err = %v; want ErrBadPassword", err)
	}
	if err := s.VerifyPassword("zed", "x"); !errors.Is(err, ErrNoPassword) {
		t.Errorf("unknown user err = %v; want ErrNoPassword", err)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("pässword 1")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$5\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{43}$`).MatchString(h) {
		t.Errorf("HashPassword = %q; want $5$<8 salt chars>$<43 chars>", h)
	}
	if err := CheckPasswordHash(h, "pässword 1"); err != nil {
		t.Errorf("CheckPasswordHash(own hash) = %v", err)
	}
	h2, _ := HashPassword("pässword 1")
	if h2 == h {
		t.Error("two hashes share a salt")
	}
	s := Shadow{"zed": h, "alice": "x"}
	if got, want := string(s.Marshal()), "alice:x:\nzed:"+h+":\n"; got != want {
		t.Errorf("Marshal = %q; want %q", got, want)
	}
}
