package ticket

import (
	"strings"
	"testing"
	"time"
)

func FuzzVerify(f *testing.F) {
	priv, pub := testKeys(f)
	now := time.Unix(1_800_000_000, 0)
	good, err := Sign(priv, PrefixLogin, "alice@pve", "", now)
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vectors(f) {
		f.Add(v)
	}
	f.Add(good)
	f.Add("PVE:a:00000000::AAAA")
	f.Add("PVE:::")
	f.Add("PVE:x:6B49D200::" + strings.Repeat("A", 344))
	keys := []PublicKey{{Key: pub, ModTime: now.Add(-time.Hour)}, {Key: pub, ModTime: now.Add(-time.Minute), Rotated: true}}
	f.Fuzz(func(t *testing.T, tk string) {
		data, _, err := Verify(tk, PrefixLogin, "", keys, now, true)
		if err != nil {
			return
		}
		// Only the ticket signed above verifies at now (the OpenSSL vectors
		// are years older); anything else would be a forgery.
		if tk != good || data != "alice@pve" {
			t.Fatalf("Verify(%q) accepted, data %q", tk, data)
		}
	})
}

func FuzzExtractCookie(f *testing.F) {
	f.Add("PVEAuthCookie=PVE%3Aroot%40pam; x=1", CookieName)
	f.Add("a=1; PVEAuthCookie abc", CookieName)
	f.Add("PVEAPIToken=a@b!cd=e", TokenName)
	f.Add("", "")
	f.Fuzz(func(t *testing.T, header, name string) {
		v, ok := ExtractCookie(header, name)
		if !ok && v != "" {
			t.Fatalf("ExtractCookie(%q, %q) = %q with ok false", header, name, v)
		}
		if ok && (name == "" || !strings.Contains(header, name)) {
			t.Fatalf("ExtractCookie(%q, %q) found %q without the name", header, name, v)
		}
		// a value written by CookieHeader always comes back unchanged
		if name == CookieName && !strings.ContainsAny(header, " \t\n\v\f\r") && header != "" {
			got, ok := ExtractCookie(CookieHeader(header), CookieName)
			if !ok || got != header {
				t.Fatalf("round trip of %q gave %q, %v", header, got, ok)
			}
		}
	})
}

func FuzzParseAPIToken(f *testing.F) {
	f.Add("PVEAPIToken=root@pam!monitoring=0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b")
	f.Add("PVEAPIToken root%40pam%21mon%3Ds")
	f.Add("PVEAPIToken==")
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, ok := ParseAPIToken(header)
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("ParseAPIToken(%q) = %q, %q with ok false", header, id, secret)
			}
			return
		}
		if strings.Contains(secret, "=") {
			t.Fatalf("ParseAPIToken(%q): secret %q contains '='", header, secret)
		}
		id2, secret2, ok2 := ParseAPIToken(FormatTokenHeader(id, secret))
		if !ok2 || id2 != id || secret2 != secret {
			t.Fatalf("round trip of %q, %q gave %q, %q, %v", id, secret, id2, secret2, ok2)
		}
		if _, _, err := ParseTokenID(id); err == nil && !IsTokenID(id) {
			t.Fatalf("IsTokenID(%q) disagrees with ParseTokenID", id)
		}
	})
}
