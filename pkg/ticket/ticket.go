package ticket

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Lifetimes of PVE's login tickets and auth keys, in seconds.
const (
	// Lifetime is how long a login ticket is valid (2 h).
	Lifetime = 7200
	// Grace is the allowed clock skew for tickets from the future (5 min).
	Grace = 300
	// KeyLifetime is the age at which the auth key pair is rotated (24 h).
	KeyLifetime = 86400
)

// PrefixLogin is the prefix of login tickets (PVEAuthCookie).
const PrefixLogin = "PVE"

// ErrInvalidTicket is returned for a ticket that is malformed, carries a bad
// signature, or lies outside its validity window.
var ErrInvalidTicket = errors.New("invalid ticket")

// PublicKey is a ticket verification key together with the modification time
// of the file it was read from, which takes part in the validity window.
type PublicKey struct {
	Key     *rsa.PublicKey
	ModTime time.Time
	// Rotated marks the previous key (authkey.pub.old): tickets it verifies
	// must predate the rotation.
	Rotated bool
}

// Sign returns a ticket "<prefix>:<data>:<TIME>::<signature>", with ':' in
// data percent-encoded (and '%' where it starts a %XX sequence, see
// escapeData), TIME the 8 uppercase hex digits of now and the
// signature RSASSA-PKCS1-v1_5 with SHA-1 over "<prefix>:<data>:<TIME>",
// followed by ":<secretData>" when secretData is not empty. An empty data
// gives the data-less form "<prefix>:<TIME>::<signature>".
func Sign(key *rsa.PrivateKey, prefix, data, secretData string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("sign ticket: no key")
	}
	if prefix == "" || strings.ContainsRune(prefix, ':') || hasSpace(prefix) {
		return "", fmt.Errorf("sign ticket: invalid prefix %q", prefix)
	}
	if hasSpace(data) {
		return "", fmt.Errorf("sign ticket: data %q contains whitespace", data)
	}
	ts := now.Unix()
	if ts < 0 || ts > 0xFFFFFFFF {
		return "", fmt.Errorf("sign ticket: time %d out of range", ts)
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte(':')
	if data != "" {
		b.WriteString(escapeData(data))
		b.WriteByte(':')
	}
	fmt.Fprintf(&b, "%08X", ts)
	plain := b.String()
	signed := plain
	if secretData != "" {
		signed += ":" + secretData
	}
	h := sha1.Sum([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, h[:])
	if err != nil {
		return "", fmt.Errorf("sign ticket: %w", err)
	}
	return plain + "::" + base64.StdEncoding.EncodeToString(sig), nil
}

// escapeData encodes ticket data as PVE does, ':' as %3A, and also a '%'
// that starts a %XX sequence, as %25. PVE leaves every '%' alone, but
// Verify (PVE's too) decodes every %XX, so a user "adm%69n@pve" would get a
// ticket that verifies as "admin@pve". Other data encodes exactly as in
// PVE, and PVE decodes the extra %25 the same way.
func escapeData(data string) string {
	var b strings.Builder
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == ':':
			b.WriteString("%3A")
		case c == '%' && i+2 < len(data) && isHex(data[i+1]) && isHex(data[i+2]):
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// AgeWindow returns the open interval (min, max) of ticket ages in seconds
// that key accepts at now, following PVE: the current key accepts
// -Grace..Lifetime, narrowed to tickets no older than the key (plus grace)
// while the key is young, and, when the key is overdue for rotation and the
// cluster is quorate, to tickets minted before the rotation should have
// happened; a rotated key accepts only tickets minted before its rotation.
// ok is false when the key cannot verify any ticket.
func AgeWindow(key PublicKey, now time.Time, quorate bool) (minAge, maxAge int64, ok bool) {
	keyAge := now.Unix() - key.ModTime.Unix()
	if keyAge < 0 {
		keyAge = 0
	}
	minAge, maxAge = -Grace, Lifetime
	if key.Rotated {
		minAge = keyAge - Grace
	} else {
		if keyAge > KeyLifetime && quorate {
			minAge = keyAge - KeyLifetime
		}
		if keyAge < Lifetime {
			maxAge = keyAge + Grace
		}
	}
	if minAge > Lifetime {
		return 0, 0, false
	}
	return minAge, maxAge, true
}

// Verify checks ticket against keys in order (the current key first, then
// the rotated one) with each key's age window (see AgeWindow) and returns
// the percent-decoded data and the ticket's age. secretData must equal the
// value the ticket was signed with ("" for none).
func Verify(ticket, prefix, secretData string, keys []PublicKey, now time.Time, quorate bool) (data string, age time.Duration, err error) {
	return VerifyCached(nil, ticket, prefix, secretData, keys, now, quorate)
}

// VerifyCached is Verify with a cache of verified tickets (nil: none).
func VerifyCached(c *SigCache, ticket, prefix, secretData string, keys []PublicKey, now time.Time, quorate bool) (data string, age time.Duration, err error) {
	if data, age, err, ok := c.lookup(ticket, prefix, secretData, keys, now, quorate); ok {
		return data, age, err
	}
	for _, k := range keys {
		if k.Key == nil {
			continue
		}
		minAge, maxAge, ok := AgeWindow(k, now, quorate)
		if !ok {
			continue
		}
		data, age, err := c.verifyWindow(ticket, prefix, secretData, k.Key, now, minAge, maxAge)
		if err == nil {
			return data, age, nil
		}
	}
	return "", 0, ErrInvalidTicket
}

// VerifyWindow checks one ticket against one key and accepts it if its
// signature is valid and minAge < age < maxAge (seconds, strict). Short-lived
// tickets (VNC: -20..40) use it directly.
func VerifyWindow(ticket, prefix, secretData string, key *rsa.PublicKey, now time.Time, minAge, maxAge int64) (data string, age time.Duration, err error) {
	var c *SigCache
	return c.verifyWindow(ticket, prefix, secretData, key, now, minAge, maxAge)
}

func (c *SigCache) verifyWindow(ticket, prefix, secretData string, key *rsa.PublicKey, now time.Time, minAge, maxAge int64) (data string, age time.Duration, err error) {
	plain, sig, ok := splitTicket(ticket, prefix)
	if !ok {
		return "", 0, ErrInvalidTicket
	}
	rawData, hasData, ts, ok := parsePlain(plain, prefix)
	if !ok {
		return "", 0, ErrInvalidTicket
	}
	signed := plain
	if secretData != "" {
		signed += ":" + secretData
	}
	if key == nil || !verifySig(key, []byte(signed), sig) {
		return "", 0, ErrInvalidTicket
	}
	if hasData {
		data = Unescape(rawData)
	}
	c.store(ticket, prefix, secretData, key, ts, data)
	a := now.Unix() - ts
	if a <= minAge || a >= maxAge {
		return "", 0, ErrInvalidTicket
	}
	return data, time.Duration(a) * time.Second, nil
}

// splitTicket splits "<prefix>:<plain rest>::<sig>" into the signed plain
// part and the raw signature text. No whitespace is allowed anywhere.
func splitTicket(t, prefix string) (plain, sig string, ok bool) {
	if hasSpace(t) || !strings.HasPrefix(t, prefix+":") {
		return "", "", false
	}
	i := strings.LastIndexByte(t, ':')
	// the signature holds no ':' and is preceded by "::"; the plain part
	// after the prefix must not be empty
	if i < len(prefix)+3 || i == len(t)-1 || t[i-1] != ':' {
		return "", "", false
	}
	return t[:i-1], t[i+1:], true
}

// parsePlain parses "<prefix>:[<data>:]<TIME>" with TIME eight uppercase
// hex digits.
func parsePlain(plain, prefix string) (data string, hasData bool, ts int64, ok bool) {
	rest := plain[len(prefix)+1:]
	if len(rest) < 8 {
		return "", false, 0, false
	}
	hexTime := rest[len(rest)-8:]
	for i := 0; i < len(hexTime); i++ {
		c := hexTime[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return "", false, 0, false
		}
	}
	v, err := strconv.ParseInt(hexTime, 16, 64)
	if err != nil {
		return "", false, 0, false
	}
	if len(rest) == 8 {
		return "", false, v, true
	}
	head := rest[:len(rest)-8]
	if len(head) < 2 || head[len(head)-1] != ':' {
		return "", false, 0, false
	}
	return head[:len(head)-1], true, v, true
}

// verifySig accepts RSASSA-PKCS1-v1_5 with SHA-1 (what PVE emits) and, for
// newer Perl RSA module defaults, PKCS1-v1_5 and PSS with SHA-256.
func verifySig(key *rsa.PublicKey, msg []byte, sigText string) bool {
	// Strict: only the canonical encoding of a signature is accepted (the
	// one PVE's encode_base64 writes), so no second spelling of a ticket
	// verifies.
	sig, err := base64.StdEncoding.Strict().DecodeString(sigText)
	if err != nil {
		return false
	}
	h1 := sha1.Sum(msg)
	if rsa.VerifyPKCS1v15(key, crypto.SHA1, h1[:], sig) == nil {
		return true
	}
	h256 := sha256.Sum256(msg)
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, h256[:], sig) == nil {
		return true
	}
	return rsa.VerifyPSS(key, crypto.SHA256, h256[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
}

// hasSpace reports whether s contains a byte Perl's \s matches.
func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
