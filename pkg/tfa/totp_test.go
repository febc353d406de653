package tfa

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// RFC 6238 appendix B: 8 digits, 30 s period, ASCII seeds of 20, 32 and
// 64 bytes for SHA1, SHA256 and SHA512.
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[Algorithm][]byte{
		SHA1:   []byte("12345678901234567890"),
		SHA256: []byte("12345678901234567890123456789012"),
		SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	tests := []struct {
		unix int64
		alg  Algorithm
		want string
	}{
		{59, SHA1, "94287082"}, {59, SHA256, "46119246"}, {59, SHA512, "90693936"},
		{1111111109, SHA1, "07081804"}, {1111111109, SHA256, "68084774"}, {1111111109, SHA512, "25091201"},
		{1111111111, SHA1, "14050471"}, {1111111111, SHA256, "67062674"}, {1111111111, SHA512, "99943326"},
		{1234567890, SHA1, "89005924"}, {1234567890, SHA256, "91819424"}, {1234567890, SHA512, "93441116"},
		{2000000000, SHA1, "69279037"}, {2000000000, SHA256, "90698825"}, {2000000000, SHA512, "38618901"},
		{20000000000, SHA1, "65353130"}, {20000000000, SHA256, "77737706"}, {20000000000, SHA512, "47863826"},
	}
	for _, tc := range tests {
		key := TOTP{Secret: seeds[tc.alg], Digits: 8, Algorithm: tc.alg, Period: 30}
		got, err := key.Code(time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("Code(%d, %v) = %q, %v; want %q", tc.unix, tc.alg, got, err, tc.want)
		}
		step, ok, err := key.Match(tc.want, time.Unix(tc.unix, 0))
		if err != nil || !ok || step != tc.unix/30 {
			t.Errorf("Match(%q, %d) = %d, %v, %v; want step %d", tc.want, tc.unix, step, ok, err, tc.unix/30)
		}
	}
}

// RFC 4226 appendix D, plus the values proxmox-tfa's own test checks.
func TestHOTPVectors(t *testing.T) {
	rfc := TOTP{Secret: []byte("12345678901234567890"), Digits: 6, Period: 30}
	for i, want := range []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"} {
		if got, err := rfc.CodeAt(int64(i)); err != nil || got != want {
			t.Errorf("CodeAt(%d) = %q, %v; want %q", i, got, err, want)
		}
	}
	secret, _ := hex.DecodeString("87259aa6550f059bca8c")
	pve := TOTP{Secret: secret, Digits: 6, Period: 30}
	for _, tc := range []struct {
		step   int64
		digits uint8
		want   string
	}{{1, 6, "337037"}, {2, 6, "296746"}, {3, 6, "251167"}, {4, 8, "11899249"}} {
		pve.Digits = tc.digits
		if got, _ := pve.CodeAt(tc.step); got != tc.want {
			t.Errorf("CodeAt(%d) = %q; want %q", tc.step, got, tc.want)
		}
	}
	secret, _ = hex.DecodeString("a60b1b20679b1a64e21a")
	seven := TOTP{Secret: secret, Digits: 7, Period: 30}
	if got, _ := seven.Code(time.Unix(1596554063, 0)); got != "7757717" {
		t.Errorf("7-digit code = %q; want 7757717", got)
	}
}

func TestMatchWindow(t *testing.T) {
	key := TOTP{Secret: []byte("12345678901234567890"), Digits: 6, Period: 30}
	now := time.Unix(1700000000, 0)
	cur, _ := key.Step(now)
	for _, d := range []int64{-2, -1, 0, 1, 2} {
		code, _ := key.CodeAt(cur + d)
		step, ok, err := key.Match(code, now)
		wantOK := d >= -1 && d <= 1
		if err != nil || ok != wantOK || (ok && step != cur+d) {
			t.Errorf("step %+d: Match = %d, %v, %v; want ok=%v", d, step, ok, err, wantOK)
		}
	}
	code, _ := key.Code(now)
	for _, bad := range []string{"", code[:5], code + "0", " " + code[1:], "-" + code[1:], "abcdef"} {
		if _, ok, _ := key.Match(bad, now); ok {
			t.Errorf("Match(%q) = true", bad)
		}
	}
	// Rust's integer parser takes a leading '+': "+12345" equals "012345".
	for s := cur - 1; s <= cur+1; s++ {
		c, _ := key.CodeAt(s)
		if c[0] == '0' {
			if _, ok, _ := key.Match("+"+c[1:], now); !ok {
				t.Errorf("Match(+%s) = false", c[1:])
			}
		}
	}
	// 0 digits: the code reads "0" but never matches, as in proxmox-tfa.
	zero := TOTP{Secret: []byte("x"), Period: 30}
	if c, _ := zero.Code(now); c != "0" {
		t.Errorf("0-digit Code() = %q; want \"0\"", c)
	}
	for _, c := range []string{"", "0"} {
		if _, ok, _ := zero.Match(c, now); ok {
			t.Errorf("0-digit Match(%q) = true", c)
		}
	}
	if _, _, err := key.Match(code, time.Unix(-1, 0)); err == nil {
		t.Error("Match before the epoch succeeded")
	}
	if _, _, err := (TOTP{Secret: []byte("x"), Digits: 6}).Match(code, now); err == nil {
		t.Error("Match with period 0 succeeded")
	}
}

func TestParseTOTP(t *testing.T) {
	tests := []struct {
		name, uri, want string
	}{
		{"canonical", "otpauth://totp/Proxmox%20VE:root%40pam?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=Proxmox%20VE",
			"otpauth://totp/Proxmox%20VE:root%40pam?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=Proxmox%20VE"},
		{"defaults", "otpauth://totp/root@pam?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/root%40pam?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
		{"lower case, any order", "otpauth://totp/a?period=60&algorithm=sha512&digits=%2B8&secret=jbswy3dpehpk3pxp",
			"otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=8&algorithm=SHA512&period=60"},
		{"issuer parameter only", "otpauth://totp/acct?secret=JBSWY3DPEHPK3PXP&issuer=My%20Co",
			"otpauth://totp/My%20Co:acct?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=My%20Co"},
		{"issuer parameter wins", "otpauth://totp/A:acct?issuer=B&secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/B:acct?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=B"},
		{"empty issuer", "otpauth://totp/:acct?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/:acct?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer="},
		{"encoded colon does not split", "otpauth://totp/A%3Ab?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/A%3Ab?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
		{"plus and stray percent kept", "otpauth://totp/a+b%zz%4?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/a%2Bb%25zz%254?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
		{"invalid utf-8 replaced", "otpauth://totp/a%FF%E2%82b?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/a%EF%BF%BD%EF%BF%BDb?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
		{"padding and surplus bits", "otpauth://totp/a?secret=MZ======",
			"otpauth://totp/a?secret=MY&digits=6&algorithm=SHA1&period=30"},
		{"later secret wins", "otpauth://totp/a?secret=AAAAAAAA&secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
		{"empty account", "otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
			"otpauth://totp/?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseTOTP(tc.uri)
			if err != nil {
				t.Fatalf("ParseTOTP(%q) error = %v", tc.uri, err)
			}
			if got := key.URI(); got != tc.want {
				t.Errorf("URI() = %q; want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ uri, wantErr string }{
		{"otpauth://hotp/a?secret=AA", "not an otpauth uri"},
		{"otpauth://totp/a", "missing '?'"},
		{"otpauth://totp/a?", "bad value"},
		{"otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&", "bad value"},
		{"otpauth://totp/a?digits=6", "missing secret"},
		{"otpauth://totp/a?secret=A", "missing secret"},
		{"otpauth://totp/a?secret=JBSWY3DP1", "failed to decode otp secret"},
		{"otpauth://totp/a?secret=%C3%A9AAAAAAA", "failed to decode otp secret"},
		{"otpauth://totp/a?secret=%FF", "failed to decode value"},
		{"otpauth://totp/a?secret=AAAAAAAA&digits=256", "digits"},
		{"otpauth://totp/a?secret=AAAAAAAA&digits=-1", "digits"},
		{"otpauth://totp/a?secret=AAAAAAAA&digits=%206", "digits"},
		{"otpauth://totp/a?secret=AAAAAAAA&period=1.5", "period"},
		{"otpauth://totp/a?secret=AAAAAAAA&algorithm=MD5", "unsupported algorithm"},
		{"otpauth://totp/a?secret=AAAAAAAA&counter=1", "unknown otpauth uri parameter"},
		{"otpauth://totp/a?secret=AAAAAAAA&Secret=AAAAAAAA", "unknown otpauth uri parameter"},
		{"otpauth://totp/a?%FF=1", "failed to decode key"},
	} {
		if _, err := ParseTOTP(tc.uri); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseTOTP(%q) error = %v; want %q", tc.uri, err, tc.wantErr)
		}
	}
}

func TestBase32Decode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"MY", "f", true},
		{"MY======", "f", true},
		{"my", "f", true},
		{"MZXW6YTB", "fooba", true},
		{"MZXW6YTBOI", "foobar", true},
		{"MZXW6YTBOI======", "foobar", true},
		{"MZ=W6YTB", "fAoba", true}, // '=' is a zero digit
		{"MY1", "", false},
		{"MY8", "", false},
		{"M Y", "", false},
		{"MYé", "", false},
	} {
		got, ok := base32Decode(tc.in)
		if ok != tc.ok || (ok && string(got) != tc.want) {
			t.Errorf("base32Decode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"a\xffb", "a\uFFFDb"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one replacement
		{"\xe2\x82x", "\uFFFDx"},               // same, then ASCII
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: each byte
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
	} {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
