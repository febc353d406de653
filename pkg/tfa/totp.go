package tfa

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Algorithm is the HMAC hash of a TOTP key.
type Algorithm int

// The algorithms proxmox-tfa supports.
const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

// String is the otpauth spelling: SHA1, SHA256 or SHA512.
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return "SHA1"
}

func (a Algorithm) hash() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return sha1.New
}

// parseAlgorithm matches case-insensitively, like proxmox-tfa's FromStr.
func parseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(s) {
	case "sha1":
		return SHA1, nil
	case "sha256":
		return SHA256, nil
	case "sha512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("unsupported algorithm: '%s'", s)
}

// TOTP is one RFC 6238 key with its otpauth:// parameters, as proxmox-tfa
// holds it. In tfa.cfg it is stored as its canonical URI (see URI).
type TOTP struct {
	Secret    []byte
	Digits    uint8 // default 6
	Algorithm Algorithm
	Period    uint64 // seconds, default 30
	Issuer    *string
	Account   string
}

// ParseTOTP parses an otpauth://totp/ URI with proxmox-tfa's rules: the
// label is "[issuer:]account" split at the first raw ':' and then
// percent-decoded (invalid UTF-8 replaced); the query parameters are
// secret (base32, case-insensitive, padding optional), digits, algorithm,
// period and issuer (which overrides the label's), any other parameter is
// an error, and a secret is required.
func ParseTOTP(uri string) (TOTP, error) {
	const prefix = "otpauth://totp/"
	if !strings.HasPrefix(uri, prefix) {
		return TOTP{}, errors.New("not an otpauth uri")
	}
	label, query, ok := strings.Cut(uri[len(prefix):], "?")
	if !ok {
		return TOTP{}, errors.New("missing '?' in otp uri")
	}
	t := TOTP{Digits: 6, Algorithm: SHA1, Period: 30}
	if issuer, account, ok := strings.Cut(label, ":"); ok {
		iss := lossyUTF8(percentDecode(issuer))
		t.Issuer = &iss
		t.Account = lossyUTF8(percentDecode(account))
	} else {
		t.Account = lossyUTF8(percentDecode(label))
	}
	for _, part := range strings.Split(query, "&") {
		rawKey, rawValue, hasValue := strings.Cut(part, "=")
		key := percentDecode(rawKey)
		if !utf8.Valid(key) {
			return TOTP{}, errors.New("failed to decode key")
		}
		if !hasValue {
			return TOTP{}, errors.New("bad value in otpauth uri")
		}
		value := percentDecode(rawValue)
		strict := func(name string) (string, error) {
			if !utf8.Valid(value) {
				return "", fmt.Errorf("failed to decode value '%s'", name)
			}
			return string(value), nil
		}
		switch string(key) {
		case "secret":
			s, err := strict("secret")
			if err != nil {
				return TOTP{}, err
			}
			secret, ok := base32Decode(s)
			if !ok {
				return TOTP{}, errors.New("failed to decode otp secret in otpauth url")
			}
			t.Secret = secret
		case "digits":
			s, err := strict("digits")
			if err != nil {
				return TOTP{}, err
			}
			n, err := parseRustUint(s, 8)
			if err != nil {
				return TOTP{}, fmt.Errorf("failed to parse value 'digits': %w", err)
			}
			t.Digits = uint8(n)
		case "algorithm":
			s, err := strict("algorithm")
			if err != nil {
				return TOTP{}, err
			}
			a, err := parseAlgorithm(s)
			if err != nil {
				return TOTP{}, fmt.Errorf("failed to parse value 'algorithm': %w", err)
			}
			t.Algorithm = a
		case "period":
			s, err := strict("period")
			if err != nil {
				return TOTP{}, err
			}
			n, err := parseRustUint(s, 64)
			if err != nil {
				return TOTP{}, fmt.Errorf("failed to parse value 'period': %w", err)
			}
			t.Period = n
		case "issuer":
			iss := lossyUTF8(value)
			t.Issuer = &iss
		default:
			return TOTP{}, fmt.Errorf("unknown otpauth uri parameter: '%s'", key)
		}
	}
	if len(t.Secret) == 0 {
		return TOTP{}, errors.New("missing secret in otpauth url")
	}
	return t, nil
}

// URI renders the key the way proxmox-tfa writes it into tfa.cfg:
// otpauth://totp/[ISSUER:]ACCOUNT?secret=BASE32&digits=N&algorithm=A&period=N[&issuer=ISSUER]
// with issuer and account percent-encoded (every byte but [A-Za-z0-9])
// and the secret in upper-case base32 without padding.
func (t TOTP) URI() string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if t.Issuer != nil {
		b.WriteString(percentEncode(*t.Issuer))
		b.WriteByte(':')
	}
	b.WriteString(percentEncode(t.Account))
	b.WriteString("?secret=")
	b.WriteString(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(t.Secret))
	b.WriteString("&digits=")
	b.WriteString(strconv.FormatUint(uint64(t.Digits), 10))
	b.WriteString("&algorithm=")
	b.WriteString(t.Algorithm.String())
	b.WriteString("&period=")
	b.WriteString(strconv.FormatUint(t.Period, 10))
	if t.Issuer != nil {
		b.WriteString("&issuer=")
		b.WriteString(percentEncode(*t.Issuer))
	}
	return b.String()
}

// Step returns the RFC 6238 time step (counter) for now.
func (t TOTP) Step(now time.Time) (int64, error) {
	if t.Period == 0 {
		return 0, errors.New("invalid totp period 0")
	}
	if now.Before(time.Unix(0, 0)) {
		return 0, errors.New("refusing to create otp value for negative time")
	}
	return int64(uint64(now.Unix()) / t.Period), nil
}

// Code returns the code for the time step at now.
func (t TOTP) Code(now time.Time) (string, error) {
	step, err := t.Step(now)
	if err != nil {
		return "", err
	}
	return t.CodeAt(step)
}

// CodeAt returns the code for a time step (HOTP counter), zero-padded to
// Digits.
func (t TOTP) CodeAt(step int64) (string, error) {
	mod, err := t.modulus()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", int(t.Digits), t.hotp(uint64(step))%mod), nil
}

// Match checks code against the steps before, at and after now (in that
// order, the window proxmox-tfa uses) and returns the matching step.
func (t TOTP) Match(code string, now time.Time) (step int64, ok bool, err error) {
	cur, err := t.Step(now)
	if err != nil {
		return 0, false, err
	}
	mod, err := t.modulus()
	if err != nil {
		return 0, false, err
	}
	// proxmox-tfa compares the decimal value after checking the length, so
	// a leading '+' is tolerated like Rust's u32 parser does.
	if len(code) != int(t.Digits) {
		return 0, false, nil
	}
	want, perr := parseRustUint(code, 32)
	if perr != nil {
		return 0, false, nil
	}
	for s := int64(-1); s <= 1; s++ {
		if uint64(t.hotp(uint64(cur+s))%mod) == want {
			return cur + s, true, nil
		}
	}
	return 0, false, nil
}

// modulus is 10^Digits computed in u32 with wrap-around, as proxmox-tfa
// does in a release build; a zero result cannot produce codes.
func (t TOTP) modulus() (uint32, error) {
	m := uint32(1)
	for range t.Digits {
		m *= 10
	}
	if m == 0 {
		return 0, fmt.Errorf("unsupported totp digits %d", t.Digits)
	}
	return m, nil
}

// hotp is RFC 4226's dynamically truncated HMAC of the counter.
func (t TOTP) hotp(counter uint64) uint32 {
	mac := hmac.New(t.Algorithm.hash(), t.Secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	return binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
}

// parseRustUint parses like Rust's FromStr for unsigned integers: decimal
// digits with an optional leading '+', no white space.
func parseRustUint(s string, bits int) (uint64, error) {
	if strings.HasPrefix(s, "+") && len(s) > 1 {
		s = s[1:]
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, errors.New("invalid digit found in string")
	}
	return strconv.ParseUint(s, 10, bits)
}

// base32Decode mirrors the base32 crate (0.4) proxmox-tfa uses: ASCII
// only, case-insensitive RFC 4648 alphabet, '=' counts as a zero digit
// anywhere, up to six trailing '=' are not counted for the output length,
// and surplus bits are dropped.
func base32Decode(s string) ([]byte, bool) {
	data := []byte(s)
	n := len(data)
	for i := 1; i <= min(6, len(data)); i++ {
		if data[len(data)-i] != '=' {
			break
		}
		n--
	}
	outLen := n * 5 / 8
	out := make([]byte, 0, (len(data)+7)/8*5)
	for i := 0; i < len(data); i += 8 {
		var buf [8]byte
		for j, c := range data[i:min(i+8, len(data))] {
			v, ok := base32Value(c)
			if !ok {
				return nil, false
			}
			buf[j] = v
		}
		out = append(out,
			buf[0]<<3|buf[1]>>2,
			buf[1]<<6|buf[2]<<1|buf[3]>>4,
			buf[3]<<4|buf[4]>>1,
			buf[4]<<7|buf[5]<<2|buf[6]>>3,
			buf[6]<<5|buf[7])
	}
	return out[:outLen], true
}

func base32Value(c byte) (byte, bool) {
	switch {
	case c >= 'a' && c <= 'z':
		return c - 'a', true
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= '2' && c <= '7':
		return c - '2' + 26, true
	case c == '=':
		return 0, true
	}
	return 0, false
}

// percentDecode is the percent-encoding crate's decoder: "%XX" with two
// hex digits becomes a byte, anything else (including '+') is kept.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentEncode encodes every byte except ASCII letters and digits
// (percent-encoding's NON_ALPHANUMERIC set) as upper-case %XX.
func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal invalid
// subsequence becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[:size])
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefixLen(b):]
	}
	return sb.String()
}

// invalidPrefixLen is the length of the maximal prefix of b that could
// start a valid UTF-8 sequence (at least 1), given that b does not start
// with one.
func invalidPrefixLen(b []byte) int {
	lo, hi := byte(0x80), byte(0xbf)
	var need int
	switch c := b[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		need, lo = 2, 0xa0
	case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
		need = 2
	case c == 0xed:
		need, hi = 2, 0x9f
	case c == 0xf0:
		need, lo = 3, 0x90
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	case c == 0xf4:
		need, hi = 3, 0x8f
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
	}
	return n
}
