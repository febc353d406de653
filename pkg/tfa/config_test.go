package tfa

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, data []byte) *Config {
	t.Helper()
	cfg, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	return cfg
}

func mustMarshal(t *testing.T, cfg *Config) []byte {
	t.Helper()
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	return out
}

// The samples are written the way PVE writes them (serde_json, PVE's
// member order), so they must come back byte for byte.
func TestRoundTripPVEWritten(t *testing.T) {
	for _, name := range []string{"single-user.cfg", "multi-user.cfg", "empty.cfg"} {
		t.Run(name, func(t *testing.T) {
			in := readTestdata(t, name)
			cfg := mustParse(t, in)
			if cfg.Legacy {
				t.Error("Legacy = true for JSON input")
			}
			if out := mustMarshal(t, cfg); !bytes.Equal(out, in) {
				t.Errorf("Marshal(Parse(%s)) =\n%s\nwant\n%s", name, out, in)
			}
		})
	}
}

// Non-canonical and legacy input is rewritten the way PVE would write it;
// unknown members survive.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		in, golden string
		legacy     bool
	}{
		{"noncanonical.cfg", "noncanonical.golden", false},
		{"legacy-v1.cfg", "legacy-v1.golden", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			cfg := mustParse(t, readTestdata(t, tc.in))
			if cfg.Legacy != tc.legacy {
				t.Errorf("Legacy = %v; want %v", cfg.Legacy, tc.legacy)
			}
			out := mustMarshal(t, cfg)
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readTestdata(t, tc.golden); !bytes.Equal(out, want) {
				t.Errorf("Marshal() =\n%s\nwant\n%s", out, want)
			}
			// The rewrite is canonical: it survives another round trip.
			if again := mustMarshal(t, mustParse(t, out)); !bytes.Equal(again, out) {
				t.Errorf("second round trip =\n%s\nwant\n%s", again, out)
			}
		})
	}
}

func TestParseSample(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	alice := cfg.Users["alice@pve"]
	if alice == nil || len(alice.TOTP) != 2 || len(alice.U2F) != 1 {
		t.Fatalf("alice = %+v", alice)
	}
	if lc := alice.TOTP[0].LastCount; lc == nil || *lc != 57436669 {
		t.Errorf("alice totp[0] last-count = %v; want 57436669", lc)
	}
	if alice.TOTP[0].Description != `Alice's phone — "work"` {
		t.Errorf("description = %q", alice.TOTP[0].Description)
	}
	k := alice.TOTP[1].Key
	if alice.TOTP[1].Enable || k.Digits != 8 || k.Algorithm != SHA256 || k.Period != 60 || k.Issuer != nil || k.Account != "alice" {
		t.Errorf("alice totp[1] = %+v", alice.TOTP[1])
	}
	bob := cfg.Users["bob@ldap"]
	if !bob.TOTPLocked || len(bob.Yubico) != 2 || bob.Yubico[0].Key != "ccccccbcgujh" || len(bob.Recovery.Available()) != 0 {
		t.Errorf("bob = %+v", bob)
	}
	if l := alice.TFALockedUntil; l == nil || *l != 1723003600 {
		t.Errorf("alice tfa-locked-until = %v", l)
	}
}

func TestExpireLocks(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "multi-user.cfg"))
	if cfg.ExpireLocks(time.Unix(1723003600, 0)) {
		t.Error("ExpireLocks at the lock time changed something")
	}
	if !cfg.ExpireLocks(time.Unix(1723003601, 0)) || cfg.Users["alice@pve"].TFALockedUntil != nil {
		t.Error("ExpireLocks after the lock time did not drop it")
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty file", "", "{}"},
		{"blank file", " \n\t\n", "{}"},
		{"empty users", `{"users":{}}`, "{}"},
		{"white space", " {\"users\" : { } } \n", "{}"},
		{"null optionals", `{"u2f":null,"webauthn":null,"users":{"a@pve":{"recovery":null,"tfa-locked-until":null,"yubico":[{"id":"x","created":1,"entry":"k"}]}}}`,
			`{"users":{"a@pve":{"yubico":[{"id":"x","created":1,"entry":"k"}]}}}`},
		{"defaults dropped", `{"users":{"a@pve":{"yubico":[{"id":"x","description":"","created":1,"enable":true,"entry":"k"}],"totp-locked":false}}}`,
			`{"users":{"a@pve":{"yubico":[{"id":"x","created":1,"entry":"k"}]}}}`},
		{"member order normalised", `{"users":{"a@pve":{"totp-locked":true,"yubico":[{"entry":"k","enable":false,"created":1,"id":"x"}]}}}`,
			`{"users":{"a@pve":{"yubico":[{"id":"x","created":1,"enable":false,"entry":"k"}],"totp-locked":true}}}`},
		{"repeated user: last wins", `{"users":{"a@pve":{"totp-locked":true},"a@pve":{"yubico":[{"id":"x","created":1,"entry":"k"}]}}}`,
			`{"users":{"a@pve":{"yubico":[{"id":"x","created":1,"entry":"k"}]}}}`},
		{"unknown top-level kept", `{"zz":1,"users":{},"zz":2}`, `{"zz":2}`},
		{"escapes like serde_json", `{"users":{"a@pve":{"yubico":[{"id":"\u0001\u001f\b\f\n\r\t\"\\\/<>&\u2028é","created":-0,"entry":"k"}]}}}`,
			`{"users":{"a@pve":{"yubico":[{"id":"\u0001\u001f\b\f\n\r\t\"\\/<>&` + "\u2028é" + `","created":0,"entry":"k"}]}}}`},
		{"surrogate pair", `{"x":"\ud83d\ude00"}`, `{"x":"\ud83d\ude00"}`},
		{"user with only locks", `{"users":{"a@pve":{"totp-locked":true}}}`, `{"users":{"a@pve":{"totp-locked":true}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := mustMarshal(t, mustParse(t, []byte(tc.in)))
			if string(out) != tc.want {
				t.Errorf("Marshal(Parse(%s)) = %s; want %s", tc.in, out, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	const entry = `"id":"x","created":1`
	tests := []struct {
		name, in, wantErr string
	}{
		{"not json, not legacy", `hello`, "bad line"},
		{"top-level array", `[]`, "neither"},
		{"trailing data", `{} {}`, "neither"},
		{"users null", `{"users":null}`, "users"},
		{"duplicate users", `{"users":{},"users":{}}`, "duplicate field"},
		{"totp null", `{"users":{"a@pve":{"totp":null}}}`, "expected an array"},
		{"missing id", `{"users":{"a@pve":{"yubico":[{"created":1,"entry":"k"}]}}}`, `missing field "id"`},
		{"missing created", `{"users":{"a@pve":{"yubico":[{"id":"x","entry":"k"}]}}}`, `missing field "created"`},
		{"missing entry", `{"users":{"a@pve":{"yubico":[{` + entry + `}]}}}`, `missing field "entry"`},
		{"duplicate id", `{"users":{"a@pve":{"yubico":[{` + entry + `,"id":"y","entry":"k"}]}}}`, "duplicate field"},
		{"created float", `{"users":{"a@pve":{"yubico":[{"id":"x","created":1.0,"entry":"k"}]}}}`, "integer"},
		{"created exponent", `{"users":{"a@pve":{"yubico":[{"id":"x","created":1e3,"entry":"k"}]}}}`, "integer"},
		{"created too big", `{"users":{"a@pve":{"yubico":[{"id":"x","created":9223372036854775808,"entry":"k"}]}}}`, "integer"},
		{"enable null", `{"users":{"a@pve":{"yubico":[{` + entry + `,"enable":null,"entry":"k"}]}}}`, "boolean"},
		{"description null", `{"users":{"a@pve":{"yubico":[{` + entry + `,"description":null,"entry":"k"}]}}}`, "string"},
		{"yubico entry not string", `{"users":{"a@pve":{"yubico":[{` + entry + `,"entry":1}]}}}`, "string"},
		{"webauthn entry not object", `{"users":{"a@pve":{"webauthn":[{` + entry + `,"entry":"x"}]}}}`, "object"},
		{"bad totp uri", `{"users":{"a@pve":{"totp":[{` + entry + `,"entry":"otpauth://hotp/x?secret=AA"}]}}}`, "not an otpauth uri"},
		{"unknown totp parameter", `{"users":{"a@pve":{"totp":[{` + entry + `,"entry":"otpauth://totp/x?secret=AAAAAAAA&counter=1"}]}}}`, "unknown otpauth uri parameter"},
		{"totp object without uri", `{"users":{"a@pve":{"totp":[{` + entry + `,"entry":{"last-count":5}}]}}}`, `missing field "totp"`},
		{"totp wrong type", `{"users":{"a@pve":{"totp":[{` + entry + `,"entry":5}]}}}`, "totp string"},
		{"recovery without secret", `{"users":{"a@pve":{"recovery":{"entries":[],"created":1}}}}`, `missing field "secret"`},
		{"recovery entry number", `{"users":{"a@pve":{"recovery":{"secret":"s","entries":[1],"created":1}}}}`, "string"},
		{"totp-locked null", `{"users":{"a@pve":{"totp-locked":null}}}`, "boolean"},
		{"invalid utf-8", "{\"users\":{\"a\xff@pve\":{}}}", "neither"},
		{"lone surrogate", `{"users":{"a\udc00@pve":{}}}`, "neither"},
		{"unpaired high surrogate", `{"users":{"a\ud800x@pve":{}}}`, "neither"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%s) error = %v; want it to contain %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestLegacy(t *testing.T) {
	cfg := mustParse(t, readTestdata(t, "legacy-v1.cfg"))
	root := cfg.Users["root@pam"]
	if root == nil || len(root.TOTP) != 2 {
		t.Fatalf("root = %+v", root)
	}
	for _, e := range root.TOTP {
		if e.ID != legacyID || e.Description != legacyDescription || e.Created != 0 || !e.Enable || e.Key.Account != "root@pam" {
			t.Errorf("legacy entry = %+v", e)
		}
	}
	if got := string(root.TOTP[0].Key.Secret); got != "Hello!\xde\xad\xbe\xef" {
		t.Errorf("v2-0x secret = %q", got)
	}
	if got := string(root.TOTP[1].Key.Secret); got != "Hello!\xde\xad\xbe\xef" {
		t.Errorf("base32 secret = %q", got)
	}
	if erin := cfg.Users["erin@pve"]; erin.TOTP[0].Key.Period != 60 || erin.TOTP[0].Key.Digits != 8 {
		t.Errorf("erin = %+v", erin.TOTP[0].Key)
	}
	// A pending u2f registration is dropped but the user stays.
	if dave, ok := cfg.Users["dave@pve"]; !ok || !dave.empty() {
		t.Errorf("dave = %+v, %v", dave, ok)
	}

	for _, tc := range []struct{ name, line, wantErr string }{
		{"no data", "a@pve:oath", "bad line"},
		{"bad base64", "a@pve:oath:!!!", "failed to decode"},
		{"unknown type", "a@pve:totp:e30=", "unknown tfa.cfg entry type"},
		{"oath without config", "a@pve:oath:eyJrZXlzIjoiQUFBQUFBQUFBQUFBQUFBQSJ9", "missing 'config'"},
		{"oath step 0", "a@pve:oath:eyJrZXlzIjoiQUFBQUFBQUFBQUFBQUFBQSIsImNvbmZpZyI6eyJzdGVwIjowfX0=", "bad 'step'"},
		{"u2f extra data", "a@pve:u2f:eyJrZXlIYW5kbGUiOiJBQSIsInB1YmxpY0tleSI6IkFBPT0iLCJ4IjoxfQ==", "invalid extra data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%s) error = %v; want %q", tc.line, err, tc.wantErr)
			}
		})
	}
}
