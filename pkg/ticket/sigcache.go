package ticket

import (
	"crypto/rsa"
	"sync"
	"sync/atomic"
	"time"
)

// SigCache remembers tickets whose signature verified, so that a ticket
// presented on every request costs one RSA verification (and one parse)
// instead of one per request: RSA-2048 verification was most of pveproxy's
// CPU per request. Only the signature check is cached: the age window, with
// the key's current state, is evaluated on every use (and the caller checks
// the user). Entries are bound to the key object that verified them, so a
// rotated or re-read key never accepts a ticket on the strength of another.
// The cache is bounded: when full it is emptied, which costs only
// re-verifications. A nil *SigCache caches nothing.
type SigCache struct {
	max   int64
	n     atomic.Int64
	items sync.Map // sigKey -> sigValue; read-mostly, so no lock on hits
}

type sigKey struct {
	prefix, secret, ticket string
}

type sigValue struct {
	key     *rsa.PublicKey
	ts      int64
	data    string
	hasData bool
}

// NewSigCache returns a cache of at most max tickets.
func NewSigCache(max int) *SigCache {
	return &SigCache{max: int64(max)}
}

// lookup checks a cached ticket against keys: ok reports a decision was
// made (valid or not); false means verify it in full.
func (c *SigCache) lookup(ticket, prefix, secretData string, keys []PublicKey, now time.Time, quorate bool) (data string, age time.Duration, err error, ok bool) {
	if c == nil {
		return "", 0, nil, false
	}
	v, hit := c.items.Load(sigKey{prefix, secretData, ticket})
	if !hit {
		return "", 0, nil, false
	}
	e := v.(sigValue)
	for _, k := range keys {
		if k.Key != e.key {
			continue
		}
		minAge, maxAge, usable := AgeWindow(k, now, quorate)
		a := now.Unix() - e.ts
		if !usable || a <= minAge || a >= maxAge {
			return "", 0, ErrInvalidTicket, true
		}
		return e.data, time.Duration(a) * time.Second, nil, true
	}
	return "", 0, nil, false // the key that verified it is gone: check again
}

// store records a ticket that verified with key.
func (c *SigCache) store(ticket, prefix, secretData string, key *rsa.PublicKey, ts int64, data string) {
	if c == nil {
		return
	}
	if c.n.Add(1) > c.max {
		c.items.Clear()
		c.n.Store(1)
	}
	c.items.Store(sigKey{prefix, secretData, ticket}, sigValue{key: key, ts: ts, data: data})
}
