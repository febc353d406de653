package loginguard

import (
	"container/list"
	"context"
	"errors"
	"math"
	"net/netip"
	"sync"
	"time"
)

// Defaults of Config; the package doc says why.
const (
	DefaultDelay      = 3 * time.Second
	DefaultFree       = 5
	DefaultStep       = time.Second
	DefaultMaxWait    = 15 * time.Second
	DefaultHalfLife   = 5 * time.Minute
	DefaultMaxScore   = 32
	DefaultMaxSources = 16384
)

// ErrThrottled is returned by Admit for an attempt that was not checked
// because its source has more attempts queued than fit into MaxWait.
var ErrThrottled = errors.New("too many failed logins from this address")

// Config are the settings of a Guard. Zero fields take the defaults above.
type Config struct {
	// Delay is how long after its arrival a failed attempt is answered.
	Delay time.Duration
	// Free is the score below which a source is not slowed.
	Free int
	// Step is the wait at score Free; it doubles with each further point.
	Step time.Duration
	// MaxWait bounds the wait of one attempt before its check.
	MaxWait time.Duration
	// HalfLife is the time in which a source's score halves.
	HalfLife time.Duration
	// MaxScore caps a source's score.
	MaxScore float64
	// MaxSources bounds the sources remembered.
	MaxSources int
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx ends, whichever is first, and returns
	// ctx's error in the second case (default: a timer on the calling
	// goroutine).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Guard throttles logins per source address. It is safe for concurrent use.
type Guard struct {
	cfg Config

	mu      sync.Mutex
	sources map[netip.Prefix]*list.Element // of *source
	lru     list.List                      // front: most recently used
}

// source is what a Guard knows of one address or /64.
type source struct {
	key   netip.Prefix
	score float64   // decayed charges as of updated
	at    time.Time // when score was last decayed
	next  time.Time // start of the latest throttled check
}

// New returns a Guard with cfg's settings.
func New(cfg Config) *Guard {
	if cfg.Delay == 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.Free == 0 {
		cfg.Free = DefaultFree
	}
	if cfg.Step == 0 {
		cfg.Step = DefaultStep
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.HalfLife == 0 {
		cfg.HalfLife = DefaultHalfLife
	}
	if cfg.MaxScore == 0 {
		cfg.MaxScore = DefaultMaxScore
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Guard{cfg: cfg, sources: make(map[netip.Prefix]*list.Element)}
}

// sleep waits on a timer on the calling goroutine.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Key returns the source an address is counted under: the address itself
// for IPv4 (IPv4-mapped IPv6 included), its /64 for IPv6. The invalid
// address (unknown client) is one source of its own.
func Key(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return netip.Prefix{}
	case addr.Is4():
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.WithZone("").Prefix(64)
	return p
}

// Attempt is one login attempt admitted by a Guard. Exactly one of Failed
// and Succeeded should be called once its outcome is known.
type Attempt struct {
	g       *Guard
	key     netip.Prefix
	arrived time.Time
	settled bool
}

// Admit charges an attempt from addr to its source and waits as the
// source's score asks before the attempt may be checked. The Attempt is
// never nil. The error is ErrThrottled when the attempt must not be checked
// (answer it as failed: Failed, then a 401), or ctx's error when the client
// went away while waiting; in both cases the charge stays.
func (g *Guard) Admit(ctx context.Context, addr netip.Addr) (*Attempt, error) {
	now := g.cfg.Now()
	a := &Attempt{g: g, key: Key(addr), arrived: now}
	wait, ok := g.admit(a.key, now)
	if !ok {
		return a, ErrThrottled
	}
	if wait > 0 {
		if err := g.cfg.Sleep(ctx, wait); err != nil {
			return a, err
		}
	}
	return a, nil
}

// admit charges one attempt to key at now and returns how long it waits
// before its check, or false if it is refused.
func (g *Guard) admit(key netip.Prefix, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.source(key, now)
	pen := g.penalty(s.score)
	s.score = min(s.score+1, g.cfg.MaxScore)
	if pen == 0 {
		return 0, true
	}
	start := now
	if s.next.After(start) {
		start = s.next
	}
	start = start.Add(pen)
	wait := start.Sub(now)
	if wait > g.cfg.MaxWait {
		return 0, false
	}
	s.next = start
	return wait, true
}

// penalty is the wait of an attempt from a source with score.
func (g *Guard) penalty(score float64) time.Duration {
	over := score - float64(g.cfg.Free)
	if over < 0 {
		return 0
	}
	if over >= 30 { // beyond any sensible MaxWait; avoids overflow
		return g.cfg.MaxWait
	}
	return min(g.cfg.Step<<int(over), g.cfg.MaxWait)
}

// source returns key's entry decayed to now, creating it (and dropping
// the least recently used one when full) if needed. g.mu must be held.
func (g *Guard) source(key netip.Prefix, now time.Time) *source {
	if e, ok := g.sources[key]; ok {
		g.lru.MoveToFront(e)
		s := e.Value.(*source)
		g.decay(s, now)
		return s
	}
	if g.lru.Len() >= g.cfg.MaxSources {
		old := g.lru.Back()
		g.lru.Remove(old)
		delete(g.sources, old.Value.(*source).key)
	}
	s := &source{key: key, at: now}
	g.sources[key] = g.lru.PushFront(s)
	return s
}

// decay brings s.score from s.at to now.
func (g *Guard) decay(s *source, now time.Time) {
	if dt := now.Sub(s.at); dt > 0 {
		s.score *= math.Exp2(-float64(dt) / float64(g.cfg.HalfLife))
		s.at = now
	}
}

// Score returns the current score of addr's source (0 if unknown).
func (g *Guard) Score(addr netip.Addr) float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.sources[Key(addr)]
	if !ok {
		return 0
	}
	s := e.Value.(*source)
	g.decay(s, g.cfg.Now())
	return s.score
}

// Len returns the number of sources remembered.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}

// Succeeded takes the attempt's charge back.
func (a *Attempt) Succeeded() {
	if a.settled {
		return
	}
	a.settled = true
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.sources[a.key]
	if !ok {
		return // dropped meanwhile
	}
	s := e.Value.(*source)
	g.decay(s, g.cfg.Now())
	s.score = max(s.score-1, 0)
}

// Failed keeps the attempt's charge and waits until Delay after the
// attempt arrived (or until ctx ends), so that every failure is answered
// at the same time after its arrival.
func (a *Attempt) Failed(ctx context.Context) {
	a.settled = true
	g := a.g
	if d := a.arrived.Add(g.cfg.Delay).Sub(g.cfg.Now()); d > 0 {
		_ = g.cfg.Sleep(ctx, d)
	}
}
