package ticket

import (
	"strings"
	"testing"
)

func TestExtractCookie(t *testing.T) {
	for _, tt := range []struct {
		name, header, key, want string
		ok                      bool
	}{
		{"plain", "PVEAuthCookie=PVE%3Aroot%40pam%3A66C8E0F0%3A%3Aab+c%2F%3D", CookieName, "PVE:root@pam:66C8E0F0::ab+c/=", true},
		{"after other cookies", "lang=en; PVEAuthCookie=abc; other=1", CookieName, "abc", true},
		{"space separator", "PVEAuthCookie abc", CookieName, "abc", true},
		{"tab before name", "x=1;\tPVEAuthCookie=abc", CookieName, "abc", true},
		{"name glued to previous", "x=1;PVEAuthCookie=abc", CookieName, "", false},
		{"suffix of other name", "XPVEAuthCookie=abc", CookieName, "", false},
		{"first of two", "PVEAuthCookie=a; PVEAuthCookie=b", CookieName, "a", true},
		{"skips glued then finds", "xPVEAuthCookie=a; PVEAuthCookie=b", CookieName, "b", true},
		{"plus stays plus", "PVEAuthCookie=a+b", CookieName, "a+b", true},
		{"lowercase hex", "PVEAuthCookie=a%3ab", CookieName, "a:b", true},
		{"bad percent kept", "PVEAuthCookie=a%zzb%4", CookieName, "a%zzb%4", true},
		{"empty value", "PVEAuthCookie=; x=1", CookieName, "", false},
		{"no separator", "PVEAuthCookie:abc", CookieName, "", false},
		{"name only", "PVEAuthCookie", CookieName, "", false},
		{"case sensitive", "pveauthcookie=abc", CookieName, "", false},
		{"token header", "PVEAPIToken=root@pam!mon=0b3f", TokenName, "root@pam!mon=0b3f", true},
		{"empty header", "", CookieName, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ExtractCookie(tt.header, tt.key)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ExtractCookie(%q, %q) = %q, %v; want %q, %v", tt.header, tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseAPIToken(t *testing.T) {
	for _, tt := range []struct {
		name, header, wantID, wantSecret string
		ok                               bool
	}{
		{"equals form", "PVEAPIToken=root@pam!monitoring=0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b", "root@pam!monitoring", "0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b", true},
		{"space form urlencoded", "PVEAPIToken root%40pam%21monitoring%3Dsecret", "root@pam!monitoring", "secret", true},
		{"split at last equals", "PVEAPIToken=a=b@pve!t=s", "a=b@pve!t", "s", true},
		{"empty secret", "PVEAPIToken=root@pam!t=", "root@pam!t", "", true},
		{"no equals in value", "PVEAPIToken=root@pam!t", "", "", false},
		{"cookie instead", "PVEAuthCookie=x", "", "", false},
		{"stops at semicolon", "PVEAPIToken=root@pam!t=s; x=y", "root@pam!t", "s", true},
		{"newline", "PVEAPIToken=root@pam!t%0A=s", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, secret, ok := ParseAPIToken(tt.header)
			if id != tt.wantID || secret != tt.wantSecret || ok != tt.ok {
				t.Errorf("ParseAPIToken(%q) = %q, %q, %v; want %q, %q, %v", tt.header, id, secret, ok, tt.wantID, tt.wantSecret, tt.ok)
			}
		})
	}
}

func TestForwardingHeaders(t *testing.T) {
	tk := "PVE:root@pam:66C8E0F0::ab+c/d=="
	if got, want := CookieHeader(tk), "PVEAuthCookie=PVE%3Aroot%40pam%3A66C8E0F0%3A%3Aab%2Bc%2Fd%3D%3D; path=/; secure; SameSite=Lax;"; got != want {
		t.Errorf("CookieHeader = %q; want %q", got, want)
	}
	if got, ok := ExtractCookie(CookieHeader(tk), CookieName); !ok || got != tk {
		t.Errorf("ExtractCookie(CookieHeader) = %q, %v; want round trip", got, ok)
	}
	h := FormatTokenHeader("root@pam!mon", "0b3f-7a52")
	if want := "PVEAPIToken root%40pam%21mon%3D0b3f-7a52"; h != want {
		t.Errorf("FormatTokenHeader = %q; want %q", h, want)
	}
	if id, s, ok := ParseAPIToken(h); !ok || id != "root@pam!mon" || s != "0b3f-7a52" {
		t.Errorf("ParseAPIToken(FormatTokenHeader) = %q, %q, %v", id, s, ok)
	}
	if got, want := Escape("aZ09-._~ :/é"), "aZ09-._~%20%3A%2F%C3%A9"; got != want {
		t.Errorf("Escape = %q; want %q", got, want)
	}
}

func TestParseUserID(t *testing.T) {
	for _, tt := range []struct {
		id, user, realm string
		ok              bool
	}{
		{"root@pam", "root", "pam", true},
		{"a@pve", "a", "pve", true},
		{"first.last@example-ad", "first.last", "example-ad", true},
		{"mail@host@pve", "mail@host", "pve", true},
		{"a!b@pve", "a!b", "pve", true},
		{"@pve", "", "", false},
		{"a@p", "", "", false},     // realm needs 2 chars
		{"a@1ve", "", "", false},   // realm starts with a letter
		{"a b@pve", "", "", false}, // whitespace
		{"a:b@pve", "", "", false}, // colon
		{"a/b@pve", "", "", false}, // slash
		{"root@pam!tok", "", "", false},
		{"ab", "", "", false},
		{"x@pv", "x", "pv", true},
		{strings.Repeat("u", 58) + "@realm", strings.Repeat("u", 58), "realm", true},
		{strings.Repeat("u", 59) + "@realm", "", "", false}, // 65 bytes
	} {
		user, realm, err := ParseUserID(tt.id)
		if (err == nil) != tt.ok || user != tt.user || realm != tt.realm {
			t.Errorf("ParseUserID(%q) = %q, %q, %v; want %q, %q, ok %v", tt.id, user, realm, err, tt.user, tt.realm, tt.ok)
		}
	}
}

func TestParseTokenID(t *testing.T) {
	for _, tt := range []struct {
		id, user, name string
		ok             bool
	}{
		{"root@pam!monitoring", "root@pam", "monitoring", true},
		{"a!b@pve!tk", "a!b@pve", "tk", true},
		{"root@pam!t", "", "", false},   // name needs 2 chars
		{"root@pam!1tk", "", "", false}, // name starts with a letter
		{"root@pam", "", "", false},
		{"root@pam!", "", "", false},
		{"root@p!tk", "", "", false},
		{"!tk", "", "", false},
	} {
		user, name, err := ParseTokenID(tt.id)
		if (err == nil) != tt.ok || user != tt.user || name != tt.name {
			t.Errorf("ParseTokenID(%q) = %q, %q, %v; want %q, %q, ok %v", tt.id, user, name, err, tt.user, tt.name, tt.ok)
		}
	}
}
