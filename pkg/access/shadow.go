package access

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/GehirnInc/crypt"
	"github.com/GehirnInc/crypt/md5_crypt"
	"github.com/GehirnInc/crypt/sha256_crypt"
	"github.com/GehirnInc/crypt/sha512_crypt"
)

// ShadowFile is the name of the pve realm password file under the config
// root (readable by root only).
const ShadowFile = "priv/shadow.cfg"

// ErrBadPassword is returned by VerifyPassword for a wrong password.
var ErrBadPassword = errors.New("invalid credentials")

// ErrNoPassword is returned when the user has no entry in shadow.cfg.
var ErrNoPassword = errors.New("no password set")

// shadowLineRe is PVE's ^\S+:\S+:$ with Perl's \s, which unlike Go's
// includes \v.
var shadowLineRe = regexp.MustCompile("^[^\t\n\v\f\r ]+:[^\t\n\v\f\r ]+:$")

// Shadow is priv/shadow.cfg: crypt(3) hashes by user name without realm
// ("alice", not "alice@pve").
type Shadow map[string]string

// ParseShadow parses shadow.cfg lines "<user>:<hash>:"; lines of another
// shape are skipped with a warning, and so are lines such as "a:::" that
// PVE's pattern admits but that leave the user or the hash empty (no
// password can match them, and Marshal could not write them back).
func ParseShadow(name string, data []byte) (Shadow, []Warning) {
	s := Shadow{}
	var warns []Warning
	for n, raw := range strings.Split(string(data), "\n") {
		line := trimSpace(raw)
		if line == "" {
			continue
		}
		if !shadowLineRe.MatchString(line) {
			warns = append(warns, Warning{File: name, Line: n + 1, Msg: "ignoring invalid shadow line"})
			continue
		}
		f := strings.Split(line, ":")
		if f[0] == "" || f[1] == "" {
			warns = append(warns, Warning{File: name, Line: n + 1, Msg: "ignoring invalid shadow line"})
			continue
		}
		s[f[0]] = f[1]
	}
	return s, warns
}

// Marshal renders the file, one "<user>:<hash>:" line per user, sorted.
func (s Shadow) Marshal() []byte {
	var b strings.Builder
	for _, u := range sortedKeys(s) {
		fmt.Fprintf(&b, "%s:%s:\n", u, s[u])
	}
	return []byte(b.String())
}

// VerifyPassword checks password against user's hash. Hashes in the
// SHA-256 ($5$), SHA-512 ($6$) and MD5 ($1$) crypt formats are supported.
func (s Shadow) VerifyPassword(user, password string) error {
	if password == "" {
		return errors.New("no password")
	}
	hash, ok := s[user]
	if !ok {
		return ErrNoPassword
	}
	return CheckPasswordHash(hash, password)
}

// CheckPasswordHash reports whether password hashes to hash under hash's
// crypt(3) method and salt; the hash strings are compared in constant time.
func CheckPasswordHash(hash, password string) error {
	var c crypt.Crypter
	switch {
	case strings.HasPrefix(hash, "$5$"):
		c = sha256_crypt.New()
	case strings.HasPrefix(hash, "$6$"):
		c = sha512_crypt.New()
	case strings.HasPrefix(hash, "$1$"):
		c = md5_crypt.New()
	default:
		return fmt.Errorf("verify password: unsupported hash method %q", hashMethod(hash))
	}
	got, err := c.Generate([]byte(password), []byte(saltPart(hash)))
	if err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(hash)) != 1 {
		return ErrBadPassword
	}
	return nil
}

// saltPart returns the "$id$[rounds=N$]salt" prefix of a crypt hash (the
// crypt library misreads a full hash that has a rounds field).
func saltPart(hash string) string {
	if i := strings.LastIndexByte(hash, '$'); i > 2 {
		return hash[:i]
	}
	return hash
}

func hashMethod(hash string) string {
	if len(hash) > 1 && hash[0] == '$' {
		if i := strings.IndexByte(hash[1:], '$'); i >= 0 {
			return hash[:i+2]
		}
	}
	return "DES"
}

// saltChars are the characters crypt(3) salts use.
const saltChars = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// HashPassword hashes password as PVE does for the pve realm: SHA-256 crypt
// ("$5$") with an 8-character random salt and the default rounds.
func HashPassword(password string) (string, error) {
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, 8)
	for i, b := range raw {
		salt[i] = saltChars[int(b)%len(saltChars)] // 256 is a multiple of 64
	}
	h, err := sha256_crypt.New().Generate([]byte(password), append([]byte("$5$"), salt...))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}
