package ticket

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"
)

func TestSigCacheKeepsWindowAndKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tk, err := Sign(key, PrefixLogin, "root@pam", "", now)
	if err != nil {
		t.Fatal(err)
	}
	c := NewSigCache(2)
	keys := []PublicKey{{Key: &key.PublicKey, ModTime: now.Add(-10 * time.Hour)}}
	for i := 0; i < 3; i++ { // miss, then hits
		if data, _, err := VerifyCached(c, tk, PrefixLogin, "", keys, now.Add(time.Minute), false); err != nil || data != "root@pam" {
			t.Fatalf("VerifyCached #%d = %q, %v", i, data, err)
		}
	}
	// A cached signature does not outlive the ticket's age window.
	if _, _, err := VerifyCached(c, tk, PrefixLogin, "", keys, now.Add(3*time.Hour), false); err == nil {
		t.Error("expired ticket accepted from the cache")
	}
	// Nor does it verify against another key.
	okeys := []PublicKey{{Key: &other.PublicKey, ModTime: now.Add(-10 * time.Hour)}}
	if _, _, err := VerifyCached(c, tk, PrefixLogin, "", okeys, now.Add(time.Minute), false); err == nil {
		t.Error("ticket accepted with another key")
	}
	// A tampered ticket is refused and not cached.
	bad := tk[:len(tk)-5] + "AAAA="
	if _, _, err := VerifyCached(c, bad, PrefixLogin, "", keys, now.Add(time.Minute), false); err == nil {
		t.Error("tampered ticket accepted")
	}
	// The cache stays within its bound.
	for i := 0; i < 5; i++ {
		t2, _ := Sign(key, PrefixLogin, "root@pam", "", now.Add(time.Duration(i)*time.Second))
		VerifyCached(c, t2, PrefixLogin, "", keys, now.Add(time.Minute), false)
	}
	if n := c.n.Load(); n > 2 {
		t.Errorf("cache holds %d entries; bound is 2", n)
	}
}
