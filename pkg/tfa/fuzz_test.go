package tfa

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addSeedFiles(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse: whatever parses must marshal, parse again and marshal to the
// same bytes, and the login paths must not panic on it.
func FuzzParse(f *testing.F) {
	addSeedFiles(f, "*.cfg")
	addSeedFiles(f, "*.golden")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("Marshal() error = %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) error = %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second Marshal() = %s, %v; want %s", out2, err, out)
		}
		now := time.Unix(1723456789, 0)
		for id := range cfg.Users {
			if ch := cfg.Challenge(id); ch != nil {
				if _, err := ch.Marshal(); err != nil {
					t.Fatalf("Challenge(%q).Marshal() error = %v", id, err)
				}
			}
			cfg.ListUser(id)
			for _, resp := range []string{"totp:123456", "recovery:0000-0000-0000-0000"} {
				if _, err := cfg.Verify(id, nil, resp, nil, now); err != nil {
					t.Fatalf("Verify(%q, %q) error = %v", id, resp, err)
				}
			}
		}
		if _, err := cfg.Marshal(); err != nil {
			t.Fatalf("Marshal() after Verify error = %v", err)
		}
	})
}

// FuzzParseTOTP: a parsed URI's canonical form parses to the same key.
func FuzzParseTOTP(f *testing.F) {
	for _, s := range []string{
		"otpauth://totp/Proxmox%20VE:root%40pam?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=Proxmox%20VE",
		"otpauth://totp/a?period=60&algorithm=sha512&digits=%2B8&secret=jbswy3dpehpk3pxp",
		"otpauth://totp/a%FF%E2%82b:c?secret=MZ=W6YTB====&issuer=%zz",
		"otpauth://totp/:?secret=AAAAAAAA&digits=0&period=0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		key, err := ParseTOTP(uri)
		if err != nil {
			return
		}
		canon := key.URI()
		back, err := ParseTOTP(canon)
		if err != nil {
			t.Fatalf("ParseTOTP(%q) error = %v", canon, err)
		}
		if back.URI() != canon {
			t.Fatalf("URI() not stable: %q -> %q", canon, back.URI())
		}
		// With 0 digits the code is "0", which (as in proxmox-tfa) never
		// matches: a code must have exactly Digits characters.
		if code, err := key.Code(time.Unix(1723456789, 0)); err == nil && len(code) == int(key.Digits) {
			if _, ok, err := key.Match(code, time.Unix(1723456789, 0)); err != nil || !ok {
				t.Fatalf("Match(Code()) = %v, %v", ok, err)
			}
		}
	})
}

// FuzzParseChallengeData: round trip of the node-local challenge file.
func FuzzParseChallengeData(f *testing.F) {
	f.Add([]byte(`{"webauthn_auths":[{"state":{},"challenge":"x","created":1000}],"totp_failures":3,"tfa_failures":7}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseChallengeData(data)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("Marshal() error = %v", err)
		}
		d2, err := ParseChallengeData(out)
		if err != nil {
			t.Fatalf("ParseChallengeData(%s) error = %v", out, err)
		}
		if out2, _ := d2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("not stable: %s -> %s", out, out2)
		}
	})
}
