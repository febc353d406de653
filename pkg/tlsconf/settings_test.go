package tlsconf

import (
	"bufio"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	notDH := filepath.Join(dir, "not-dh.pem")
	if err := os.WriteFile(notDH, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badDH := filepath.Join(dir, "bad-dh.pem")
	if err := os.WriteFile(badDH, []byte("-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	def := DefaultSettings()
	with := func(f func(*Settings)) Settings { s := def; f(&s); return s }
	for _, tt := range []struct {
		name      string
		s         Settings
		wantWarns []string // substrings, one per warning, in order
		wantErrs  []string // substrings, one per SettingError, in order
	}{
		{"defaults", def, nil, nil},
		{"default ciphers written out", with(func(s *Settings) { s.Ciphers = DefaultCiphers }),
			[]string{"CIPHERS: Go's TLS stack cannot offer ECDHE-ECDSA-AES256-SHA384, ECDHE-RSA-AES256-SHA384; skipped",
				"CIPHERS: enabled because named, although Go classifies them as insecure: ECDHE-ECDSA-AES128-SHA256, ECDHE-RSA-AES128-SHA256"}, nil},
		{"one cipher", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256" }), nil, nil},
		{"comma and space separators", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384" }), nil, nil},
		{"iana name", with(func(s *Settings) { s.Ciphers = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" }), nil, nil},
		{"unknown cipher", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256:FOO-BAR" }),
			nil, []string{`CIPHERS: unknown cipher "FOO-BAR"`}},
		{"lowercase is unknown", with(func(s *Settings) { s.Ciphers = "ecdhe-rsa-aes128-gcm-sha256" }),
			nil, []string{`CIPHERS: unknown cipher "ecdhe-rsa-aes128-gcm-sha256"`}},
		{"two unknown", with(func(s *Settings) { s.Ciphers = "X:ECDHE-RSA-AES128-GCM-SHA256:Y" }),
			nil, []string{`unknown cipher "X"` + "\n" + `unknown cipher "Y"`}},
		{"known but unsupported", with(func(s *Settings) {
			s.Ciphers = "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM"
		}),
			[]string{"CIPHERS: Go's TLS stack cannot offer DHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-CCM; skipped"}, nil},
		{"only unsupported", with(func(s *Settings) { s.Ciphers = "DHE-RSA-AES256-GCM-SHA384:ECDHE-ARIA256-GCM-SHA384:CAMELLIA128-SHA" }),
			[]string{"cannot offer DHE-RSA-AES256-GCM-SHA384, ECDHE-ARIA256-GCM-SHA384, CAMELLIA128-SHA"},
			[]string{"CIPHERS: no cipher suite left that Go can offer for TLS 1.2 (usable: "}},
		{"only unsupported with TLS 1.2 off", with(func(s *Settings) { s.Ciphers = "DHE-RSA-AES256-GCM-SHA384"; s.DisableTLS12 = true }),
			[]string{"cannot offer DHE-RSA-AES256-GCM-SHA384"}, nil},
		{"insecure named", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:DES-CBC3-SHA" }),
			[]string{"CIPHERS: enabled because named, although Go classifies them as insecure: AES128-SHA, DES-CBC3-SHA"}, nil},
		{"keyword", with(func(s *Settings) { s.Ciphers = "HIGH" }),
			nil, []string{`CIPHERS: "HIGH" is an OpenSSL cipher keyword`}},
		{"exclusion", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256:!aNULL" }),
			nil, []string{`CIPHERS: "!aNULL": OpenSSL cipher-string operators are not supported`}},
		{"removal", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256:-RC4" }),
			nil, []string{`"-RC4": OpenSSL cipher-string operators`}},
		{"combination", with(func(s *Settings) { s.Ciphers = "ECDHE+AESGCM" }),
			nil, []string{`"ECDHE+AESGCM": OpenSSL cipher-string operators`}},
		{"seclevel", with(func(s *Settings) { s.Ciphers = "ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=1" }),
			nil, []string{`"@SECLEVEL=1": OpenSSL cipher-string operators`}},
		{"tls13 name in CIPHERS", with(func(s *Settings) { s.Ciphers = "TLS_AES_128_GCM_SHA256" }),
			nil, []string{`CIPHERS: "TLS_AES_128_GCM_SHA256" is a TLS 1.3 suite; set it in CIPHERSUITES`}},
		{"ciphersuites default set", with(func(s *Settings) { s.CipherSuites = DefaultCipherSuites }), nil, nil},
		{"ciphersuites default set reordered", with(func(s *Settings) {
			s.CipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
		}), nil, nil},
		{"ciphersuites subset", with(func(s *Settings) { s.CipherSuites = "TLS_AES_256_GCM_SHA384" }),
			[]string{"CIPHERSUITES: cannot be enforced by Go's TLS stack; all TLS 1.3 suites stay enabled"}, nil},
		{"ciphersuites with ccm", with(func(s *Settings) { s.CipherSuites = DefaultCipherSuites + ":TLS_AES_128_CCM_SHA256" }),
			[]string{"CIPHERSUITES: cannot be enforced"}, nil},
		{"ciphersuites subset with TLS 1.3 off", with(func(s *Settings) { s.CipherSuites = "TLS_AES_256_GCM_SHA384"; s.DisableTLS13 = true }),
			nil, nil},
		{"ciphersuites unknown", with(func(s *Settings) { s.CipherSuites = "TLS_AES_256_GCM_SHA384:TLS_FOO" }),
			nil, []string{`CIPHERSUITES: unknown TLS 1.3 suite "TLS_FOO"`}},
		{"ciphersuites tls12 name", with(func(s *Settings) { s.CipherSuites = "ECDHE-RSA-AES128-GCM-SHA256" }),
			nil, []string{`CIPHERSUITES: "ECDHE-RSA-AES128-GCM-SHA256" is not a TLS 1.3 suite; set it in CIPHERS`}},
		{"honor cipher order off", with(func(s *Settings) { s.HonorCipherOrder = false }),
			[]string{"HONOR_CIPHER_ORDER: 0 cannot be honoured"}, nil},
		{"both versions off", with(func(s *Settings) { s.DisableTLS12, s.DisableTLS13 = true, true }),
			nil, []string{"DISABLE_TLS_1_3: DISABLE_TLS_1_2 and DISABLE_TLS_1_3 are both set"}},
		{"tls 1.2 off", with(func(s *Settings) { s.DisableTLS12 = true }), nil, nil},
		{"tls 1.3 off", with(func(s *Settings) { s.DisableTLS13 = true }), nil, nil},
		{"dhparams", with(func(s *Settings) { s.DHParams = filepath.Join("testdata", "dhparams.pem") }),
			[]string{"DHPARAMS: testdata/dhparams.pem is ignored: Go's TLS stack offers no finite-field DHE cipher suites"}, nil},
		{"dhparams missing", with(func(s *Settings) { s.DHParams = filepath.Join(dir, "missing.pem") }),
			nil, []string{"DHPARAMS: open " + filepath.Join(dir, "missing.pem") + ": no such file"}},
		{"dhparams not dh", with(func(s *Settings) { s.DHParams = notDH }),
			nil, []string{"DHPARAMS: " + notDH + ` holds no PEM "DH PARAMETERS" block`}},
		{"dhparams garbage", with(func(s *Settings) { s.DHParams = badDH }),
			nil, []string{"DHPARAMS: " + badDH + ": invalid DH parameters"}},
		{"several keys bad", Settings{Ciphers: "X", CipherSuites: "Y", DisableTLS12: true, DisableTLS13: true, HonorCipherOrder: true},
			nil, []string{"DISABLE_TLS_1_3:", "CIPHERS:", "CIPHERSUITES:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			warns, err := tt.s.Validate()
			if len(warns) != len(tt.wantWarns) {
				t.Errorf("Validate warnings = %q; want %d like %q", warns, len(tt.wantWarns), tt.wantWarns)
			} else {
				for i, w := range warns {
					if !strings.Contains(w.String(), tt.wantWarns[i]) {
						t.Errorf("warning %d = %q; want it to contain %q", i, w, tt.wantWarns[i])
					}
				}
			}
			var got []*SettingError
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var se *SettingError
					if !errors.As(e, &se) {
						t.Fatalf("error %v is not a *SettingError", e)
					}
					got = append(got, se)
				}
			}
			if len(got) != len(tt.wantErrs) {
				t.Fatalf("Validate error = %v; want %d errors like %q", err, len(tt.wantErrs), tt.wantErrs)
			}
			for i, se := range got {
				if !strings.Contains(se.Error(), tt.wantErrs[i]) {
					t.Errorf("error %d = %q; want it to contain %q", i, se, tt.wantErrs[i])
				}
			}
		})
	}
}

// TestCipherTableMatchesOpenSSL checks the transcribed name table against the
// captured `openssl ciphers` output, and Go's suites against it by ID.
func TestCipherTableMatchesOpenSSL(t *testing.T) {
	want := map[uint16][2]string{} // id -> OpenSSL name, IANA name
	line := regexp.MustCompile(`^0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)\s+- (\S+)`)
	for _, name := range []string{"openssl-3.0-ciphers.txt", "openssl-legacy-ciphers.txt"} {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			if l == "" || l[0] == '#' {
				continue
			}
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("%s: cannot parse %q", name, l)
			}
			id, _ := strconv.ParseUint(m[1]+m[2], 16, 16)
			want[uint16(id)] = [2]string{m[4], m[3]}
		}
		f.Close()
	}
	got := map[uint16][2]string{}
	for _, c := range append(append([]cipherName{}, opensslCiphers...), opensslSuites13...) {
		if _, dup := got[c.ID]; dup {
			t.Errorf("ID 0x%04X listed twice", c.ID)
		}
		got[c.ID] = [2]string{c.OpenSSL, c.IANA}
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("table has 0x%04X = %q; openssl says %q", id, got[id], w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("table has 0x%04X = %q, which openssl does not list", id, g)
		}
	}
	// Every TLS 1.2 suite Go implements must be nameable, and Go's name is
	// the IANA name.
	for id, gs := range goSuites {
		c, ok := got[id]
		if !ok {
			t.Errorf("Go suite %s (0x%04X) has no OpenSSL name", gs.Name, id)
			continue
		}
		if c[1] != gs.Name {
			t.Errorf("0x%04X: IANA name %q; Go calls it %q", id, c[1], gs.Name)
		}
	}
	// And Go's TLS 1.3 suites are the three of the default set.
	for _, c := range tls.CipherSuites() {
		if c.SupportedVersions[0] == tls.VersionTLS13 && !strings.Contains(DefaultCipherSuites, c.Name) {
			t.Errorf("Go TLS 1.3 suite %s is not in DefaultCipherSuites", c.Name)
		}
	}
}

// TestSupportedCiphersGolden records which OpenSSL names map to which Go
// suite; run with -update after a Go upgrade and review the diff.
func TestSupportedCiphersGolden(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "# OpenSSL name -> Go cipher suite (TLS 1.2); generated by TestSupportedCiphersGolden\n")
	for _, name := range SupportedCiphers() {
		gs := goSuites[cipherByName[name].ID]
		ins := ""
		if gs.Insecure {
			ins = " insecure"
		}
		fmt.Fprintf(&b, "%s %s%s\n", name, gs.Name, ins)
	}
	path := filepath.Join("testdata", "go-ciphers.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if b.String() != string(want) {
		t.Errorf("cipher mapping changed; got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestDefaultCiphersResolve(t *testing.T) {
	r, _, err := DefaultSettings().resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	}
	if fmt.Sprint(r.cipherSuites) != fmt.Sprint(want) {
		t.Errorf("default suites = %v; want %v", r.cipherSuites, want)
	}
	if r.minVersion != tls.VersionTLS12 || r.maxVersion != tls.VersionTLS13 {
		t.Errorf("versions = %x..%x; want TLS 1.2..1.3", r.minVersion, r.maxVersion)
	}
}
