package pveproxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
)

// tokenChecker asks pvedaemon whether an API token secret is valid:
// priv/token.cfg is readable by root only, and pveproxy runs as www-data
// (PVE's pveproxy asks pmxcfs the same question). Positive answers are
// cached for a short time, keyed by a hash of the token id and secret, so a
// busy token costs one loopback call per tokenCacheTTL; negative answers are
// never cached, so a revoked or changed secret is never accepted from stale
// state... except within the TTL of a positive answer, which bounds how long
// a deleted token keeps working on this node.
type tokenChecker struct {
	daemon *api.Forwarder // the connections to pvedaemon
	log    *slog.Logger

	mu    sync.Mutex // guards cache
	cache map[[32]byte]time.Time
}

const (
	tokenCacheTTL = 10 * time.Second
	tokenCacheMax = 4096
)

func newTokenChecker(daemon *api.Forwarder, log *slog.Logger) *tokenChecker {
	return &tokenChecker{daemon: daemon, log: log, cache: map[[32]byte]time.Time{}}
}

// errTokenInvalid is returned for a secret pvedaemon refuses.
// forget drops every cached answer (a token may have been removed or
// created again with another secret).
func (c *tokenChecker) forget() {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
}

var errTokenInvalid = errors.New("invalid token secret")

func (c *tokenChecker) verify(ctx context.Context, tokenid, secret string) error {
	key := sha256.Sum256([]byte(tokenid + "\x00" + secret))
	now := time.Now()
	c.mu.Lock()
	exp, ok := c.cache[key]
	c.mu.Unlock()
	if ok && now.Before(exp) {
		return nil
	}
	status, err := c.daemon.PostForm(ctx, api.TokenCheckPath, url.Values{"tokenid": {tokenid}, "secret": {secret}})
	if err != nil {
		return fmt.Errorf("token check at pvedaemon: %w", err)
	}
	switch status {
	case http.StatusNoContent:
	case http.StatusForbidden:
		return errTokenInvalid
	default:
		return fmt.Errorf("token check at pvedaemon: status %d", status)
	}
	c.mu.Lock()
	if len(c.cache) >= tokenCacheMax {
		for k, e := range c.cache {
			if now.After(e) || len(c.cache) >= tokenCacheMax {
				delete(c.cache, k)
			}
		}
	}
	c.cache[key] = now.Add(tokenCacheTTL)
	c.mu.Unlock()
	return nil
}
