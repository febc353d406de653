package tfa

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// RecoveryKeyCount is how many recovery keys one set has.
const RecoveryKeyCount = 10

// Recovery is a user's set of one-time recovery keys. Keys are stored as
// hex(HMAC-SHA256(key = the ASCII text of Secret, message = the key as
// shown to the user)); a used key's slot becomes nil, so the remaining
// slots keep the indices the user saw.
type Recovery struct {
	Secret  string    // 16 lower-case hex digits (8 random bytes)
	Entries []*string // hashed keys; nil = used
	Created int64     // unix epoch
	Extra   []Field   // unknown members, kept verbatim
}

// Available returns the indices of the unused keys; it is never nil,
// since PVE's challenge lists an empty set as [] rather than omitting it.
func (r *Recovery) Available() []int {
	out := []int{}
	for i, e := range r.Entries {
		if e != nil {
			out = append(out, i)
		}
	}
	return out
}

func (r *Recovery) hash(key string) string {
	mac := hmac.New(sha256.New, []byte(r.Secret))
	mac.Write([]byte(key))
	return hex.EncodeToString(mac.Sum(nil))
}

// use consumes key if it is one of the unused keys. The key is compared
// exactly as typed (PVE does not normalise case or dashes).
func (r *Recovery) use(key string) bool {
	h := r.hash(key)
	for i, e := range r.Entries {
		if e != nil && hmac.Equal([]byte(*e), []byte(h)) {
			r.Entries[i] = nil
			return true
		}
	}
	return false
}

// generateRecovery makes a new key set the way proxmox-tfa does: an 8-byte
// secret, then 80 random bytes cut into ten 8-byte keys shown as
// "xxxx-xxxx-xxxx-xxxx" in lower-case hex.
func generateRecovery(rnd io.Reader, now time.Time) (*Recovery, []string, error) {
	var secret [8]byte
	if _, err := io.ReadFull(rnd, secret[:]); err != nil {
		return nil, nil, fmt.Errorf("generate recovery secret: %w", err)
	}
	var keyData [RecoveryKeyCount * 8]byte
	if _, err := io.ReadFull(rnd, keyData[:]); err != nil {
		return nil, nil, fmt.Errorf("generate recovery keys: %w", err)
	}
	r := &Recovery{Secret: hex.EncodeToString(secret[:]), Created: now.Unix()}
	keys := make([]string, 0, RecoveryKeyCount)
	for i := 0; i < len(keyData); i += 8 {
		h := hex.EncodeToString(keyData[i : i+8])
		key := h[0:4] + "-" + h[4:8] + "-" + h[8:12] + "-" + h[12:16]
		hashed := r.hash(key)
		r.Entries = append(r.Entries, &hashed)
		keys = append(keys, key)
	}
	return r, keys, nil
}
