package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrInvalidCSRF is returned for a CSRFPreventionToken that is malformed,
// forged, bound to another user or outside its validity window.
var ErrInvalidCSRF = errors.New("invalid csrf token")

// CSRFSecret derives the cluster-wide CSRF secret from the content of
// pve-www.key: unpadded base64 of HMAC-SHA256 with the file's bytes as the
// key and an empty message (PVE calls the one-argument form of
// hmac_sha256_base64, which makes its argument the key).
func CSRFSecret(pveWWWKey []byte) string {
	m := hmac.New(sha256.New, pveWWWKey)
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// CSRFToken returns the CSRFPreventionToken for userid at now:
// "<TIME>:<unpadded base64 HMAC-SHA256(key=secret, msg="<TIME>:<userid>")>"
// with TIME the 8 uppercase hex digits of now.
func CSRFToken(secret, userid string, now time.Time) string {
	ts := fmt.Sprintf("%08X", now.Unix())
	return ts + ":" + csrfDigest(secret, ts, userid)
}

// VerifyCSRF checks token for userid at now; the token is accepted when its
// digest matches and -Grace < age < Lifetime.
func VerifyCSRF(secret, userid, token string, now time.Time) error {
	if len(token) < 10 || token[8] != ':' || hasSpace(token) {
		return ErrInvalidCSRF
	}
	ts, sig := token[:8], token[9:]
	for i := 0; i < 8; i++ {
		c := ts[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return ErrInvalidCSRF
		}
	}
	t, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return ErrInvalidCSRF
	}
	want := csrfDigest(secret, ts, userid)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return ErrInvalidCSRF
	}
	age := now.Unix() - t
	if age <= -Grace || age >= Lifetime {
		return ErrInvalidCSRF
	}
	return nil
}

func csrfDigest(secret, ts, userid string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + ":" + userid))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}
