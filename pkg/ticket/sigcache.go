package ticket

import (
	"crypto/rsa"
	"sync"
)

// SigCache remembers ticket signatures that verified, so that a ticket
// presented on every request costs one RSA verification instead of one per
// request (RSA-2048 verification was most of pveproxy's CPU per request).
// Only the signature is cached: the age window and the user's state are
// checked on every use. Entries are keyed by the key object, so a rotated or
// re-read key never matches an entry made with another. The cache is bounded:
// when full it is emptied, which costs only re-verifications. The zero value
// is not usable; a nil *SigCache caches nothing.
type SigCache struct {
	max int
	mu  sync.Mutex // guards m
	m   map[sigEntry]struct{}
}

type sigEntry struct {
	key    *rsa.PublicKey
	signed string
	sig    string
}

// NewSigCache returns a cache of at most max signatures.
func NewSigCache(max int) *SigCache {
	return &SigCache{max: max, m: make(map[sigEntry]struct{}, max)}
}

// verify checks sig over signed with key, consulting and filling the cache.
func (c *SigCache) verify(key *rsa.PublicKey, signed, sig string) bool {
	if c == nil {
		return verifySig(key, []byte(signed), sig)
	}
	e := sigEntry{key: key, signed: signed, sig: sig}
	c.mu.Lock()
	_, hit := c.m[e]
	c.mu.Unlock()
	if hit {
		return true
	}
	if !verifySig(key, []byte(signed), sig) {
		return false // failures are not cached: they cost an attacker as much as us
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[e] = struct{}{}
	c.mu.Unlock()
	return true
}
