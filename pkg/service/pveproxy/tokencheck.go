package pveproxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
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
	url    string
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex // guards cache
	cache map[[32]byte]time.Time
}

const (
	tokenCacheTTL = 10 * time.Second
	tokenCacheMax = 4096
)

func newTokenChecker(daemonAddr string, log *slog.Logger) *tokenChecker {
	return &tokenChecker{
		url:    "http://" + daemonAddr + "/internal/token-check",
		client: &http.Client{Timeout: 5 * time.Second},
		log:    log,
		cache:  map[[32]byte]time.Time{},
	}
}

// errTokenInvalid is returned for a secret pvedaemon refuses.
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
	form := url.Values{"tokenid": {tokenid}, "secret": {secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("token check at pvedaemon: %w", err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
	case http.StatusForbidden:
		return errTokenInvalid
	default:
		return fmt.Errorf("token check at pvedaemon: status %d", resp.StatusCode)
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
