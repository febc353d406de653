package ticket

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Differential fuzz targets: each compares the package with a model of
// PVE's Perl code (pve-common PVE::Ticket, pve-http-server
// PVE::APIServer::Formatter::extract_auth_value, pve-access-control
// PVE::Auth::Plugin::verify_username and split_tokenid) written with Go
// regexps. Perl's \s also matches \v, so the models spell it out. Perl's
// '$' also matches before a final newline; the package refuses such input
// (stricter), so the models use \z-like anchoring throughout and the
// targets skip inputs that end in "\n" where that matters.

const perlSpace = "\t\n\v\f\r "

var (
	pveTicketRe = regexp.MustCompile(`^(PVE:[^` + perlSpace + `]+)::([^:` + perlSpace + `]+)$`)
	pvePlainRe  = regexp.MustCompile(`^PVE:(?:([^` + perlSpace + `]+):)?([A-Z0-9]{8})$`)
	pveCSRFRe   = regexp.MustCompile(`^([A-Z0-9]{8}):([^` + perlSpace + `]+)$`)
	pveUserRe   = regexp.MustCompile(`^([^` + perlSpace + `:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)$`)
	pveTokenRe  = regexp.MustCompile(`^(([^` + perlSpace + `:/]+)@([A-Za-z][A-Za-z0-9.\-_]+))!([A-Za-z][A-Za-z0-9.\-_]+)$`)
	hexTimeRe   = regexp.MustCompile(`^[0-9A-F]{8}$`)
)

// FuzzTicketSyntax compares the ticket grammar (splitTicket, parsePlain)
// with verify_rsa_ticket's patterns. The one intended difference: PVE's
// TIME is [A-Z0-9]{8} read with hex(), the package takes only hex digits;
// PVE only ever signs %08X, so a ticket with G-Z there carries no valid
// signature.
func FuzzTicketSyntax(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v)
	}
	for _, s := range []string{"PVE:a:b:0000000A::sig", "PVE::00000000::s", "PVE:a::00000000::s", "PVE:0000000G::s",
		"PVE:x:00000000:::s", "PVE:x\v:00000000::s", "PVE:00000000::", "PVE:%3A:00000000::s="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tk string) {
		plain, sig, ok := splitTicket(tk, PrefixLogin)
		m := pveTicketRe.FindStringSubmatch(tk)
		if ok != (m != nil) || (ok && (plain != m[1] || sig != m[2])) {
			t.Fatalf("splitTicket(%q) = %q, %q, %v; PVE: %q", tk, plain, sig, ok, m)
		}
		if !ok {
			return
		}
		data, hasData, ts, ok := parsePlain(plain, PrefixLogin)
		pm := pvePlainRe.FindStringSubmatch(plain)
		if pm != nil && !hexTimeRe.MatchString(pm[2]) {
			if ok {
				t.Fatalf("parsePlain(%q) accepted non-hex time", plain)
			}
			return
		}
		if ok != (pm != nil) {
			t.Fatalf("parsePlain(%q) ok = %v; PVE: %q", plain, ok, pm)
		}
		if !ok {
			return
		}
		wantTS, _ := strconv.ParseInt(pm[2], 16, 64)
		if data != pm[1] || hasData != (pm[1] != "") || ts != wantTS {
			t.Fatalf("parsePlain(%q) = %q, %v, %d; PVE: %q, %d", plain, data, hasData, ts, pm[1], wantTS)
		}
	})
}

// FuzzSignVerify signs arbitrary data and secret data and checks that
// Verify gives back exactly the data within the age window and nothing
// outside it, that other secret data fails, and that no change to the
// signed part of the ticket verifies.
func FuzzSignVerify(f *testing.F) {
	priv, pub := testKeys(f)
	f.Add("root@pam", "", int16(10), uint16(0))
	f.Add(`!tfa!{"totp":true,"recovery":[0,1]}`, "alice@pve", int16(-299), uint16(5))
	f.Add("adm%69n@pve", "", int16(1), uint16(7))
	f.Add("a:b%3A%25", "x:y", int16(7199), uint16(3))
	f.Add("", "", int16(0), uint16(0))
	signed := time.Unix(1_800_000_000, 0)
	keys := []PublicKey{{Key: pub, ModTime: signed.Add(-time.Hour)}}
	f.Fuzz(func(t *testing.T, data, secret string, age int16, flip uint16) {
		tk, err := Sign(priv, PrefixLogin, data, secret, signed)
		if err != nil {
			if !hasSpace(data) {
				t.Fatalf("Sign(%q) = %v", data, err)
			}
			return
		}
		now := signed.Add(time.Duration(age) * time.Second)
		got, _, err := Verify(tk, PrefixLogin, secret, keys, now, true)
		inWindow := age > -Grace && age < Lifetime
		if inWindow && (err != nil || got != data) {
			t.Fatalf("Verify(Sign(%q, secret %q)) at age %d = %q, %v", data, secret, age, got, err)
		}
		if !inWindow && err == nil {
			t.Fatalf("Verify accepted age %d", age)
		}
		if !inWindow {
			return
		}
		if _, _, err := Verify(tk, PrefixLogin, secret+"x", keys, now, true); err == nil {
			t.Fatalf("Verify of %q accepted other secret data", tk)
		}
		// Change one byte of the signed part: it must not verify.
		plain, _, _ := splitTicket(tk, PrefixLogin)
		i := int(flip) % len(plain)
		mut := []byte(tk)
		mut[i] ^= 1 << (flip >> 13)
		if _, _, err := Verify(string(mut), PrefixLogin, secret, keys, now, true); err == nil {
			t.Fatalf("Verify accepted %q, a changed copy of %q", mut, tk)
		}
	})
}

// TestSignEscapesPercent: the ticket data is percent-decoded on
// verification, so Sign must encode '%' as well as ':'. PVE's
// assemble_rsa_ticket encodes only ':', so a PVE ticket for a (valid) user
// "adm%69n@pve" verifies as "admin@pve"; tickets signed here must not.
func TestSignEscapesPercent(t *testing.T) {
	priv, pub := testKeys(t)
	keys := []PublicKey{{Key: pub, ModTime: vectorTime.Add(-time.Hour)}}
	for _, user := range []string{"adm%69n@pve", "a%3Ab@pve", "50%@pve", "%25@pve"} {
		tk, err := Sign(priv, PrefixLogin, user, "", vectorTime)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := Verify(tk, PrefixLogin, "", keys, vectorTime.Add(time.Second), true)
		if err != nil || got != user {
			t.Errorf("Verify(Sign(%q)) = %q, %v", user, got, err)
		}
	}
	// Data without '%' is encoded as PVE does, byte for byte.
	tk, _ := Sign(priv, PrefixLogin, "a:b@pve", "", vectorTime)
	if !strings.HasPrefix(tk, "PVE:a%3Ab@pve:66C8E0F0::") {
		t.Errorf("Sign(a:b@pve) = %q", tk)
	}
}

// FuzzVerifyCSRF checks VerifyCSRF against verify_csrf_prevention_token:
// a token is accepted only if it is exactly the one CSRFToken makes for
// that user and time, and then only inside the window; the token made now
// always verifies.
func FuzzVerifyCSRF(f *testing.F) {
	f.Add("root@pam", wantTokenRoot, int16(10))
	f.Add("alice@pve", wantTokenAlice, int16(-299))
	f.Add("root@pam", wantTokenRoot+"\n", int16(0))
	f.Add("x", "0000000G:abc", int16(0))
	f.Add("", "66C8E0F0:", int16(0))
	f.Fuzz(func(t *testing.T, user, token string, age int16) {
		now := vectorTime.Add(time.Duration(age) * time.Second)
		err := VerifyCSRF(wantSecret, user, token, now)
		m := pveCSRFRe.FindStringSubmatch(token)
		if err == nil {
			if m == nil {
				t.Fatalf("VerifyCSRF accepted %q, which PVE's pattern refuses", token)
			}
			ts, _ := strconv.ParseInt(m[1], 16, 64)
			if want := CSRFToken(wantSecret, user, time.Unix(ts, 0)); token != want {
				t.Fatalf("VerifyCSRF(%q, %q) accepted; the token for that time is %q", user, token, want)
			}
			if a := now.Unix() - ts; a <= -Grace || a >= Lifetime {
				t.Fatalf("VerifyCSRF accepted age %d", a)
			}
		}
		if err := VerifyCSRF(wantSecret, user, CSRFToken(wantSecret, user, now), now); err != nil {
			t.Fatalf("VerifyCSRF of a fresh token for %q = %v", user, err)
		}
	})
}

// FuzzIDs compares ParseUserID, ParseTokenID and ValidRealm with PVE's
// verify_username (3 to 64 bytes, ([^\s:/]+)@(realm)), split_tokenid and
// pve_verify_realm.
func FuzzIDs(f *testing.F) {
	for _, s := range []string{"root@pam", "a@b@pve", "a!b@pve!tok", "x@pve!t", "a@pve\n", "a\v@pve", "ab", "@pve",
		strings.Repeat("u", 60) + "@pve", "a@pve!to.k-1_", "a/b@pve", "a:b@pve!tt", "a@p", "a@1pve"} {
		f.Add(s)
	}
	realmRe := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.\-_]+$`)
	f.Fuzz(func(t *testing.T, id string) {
		user, realm, err := ParseUserID(id)
		m := pveUserRe.FindStringSubmatch(id)
		wantOK := m != nil && len(id) >= 3 && len(id) <= 64
		if (err == nil) != wantOK || (wantOK && (user != m[1] || realm != m[2])) {
			t.Fatalf("ParseUserID(%q) = %q, %q, %v; PVE: %q", id, user, realm, err, m)
		}
		owner, name, err := ParseTokenID(id)
		tm := pveTokenRe.FindStringSubmatch(id)
		if (err == nil) != (tm != nil) || (tm != nil && (owner != tm[1] || name != tm[4])) {
			t.Fatalf("ParseTokenID(%q) = %q, %q, %v; PVE: %q", id, owner, name, err, tm)
		}
		if IsTokenID(id) != (tm != nil) {
			t.Fatalf("IsTokenID(%q) = %v", id, !(tm != nil))
		}
		if ValidRealm(id) != realmRe.MatchString(id) {
			t.Fatalf("ValidRealm(%q) = %v", id, ValidRealm(id))
		}
	})
}

// FuzzEscape checks Unescape against URI::Escape's uri_unescape
// (s/%([0-9A-Fa-f]{2})/chr(hex($1))/eg) and that Unescape undoes Escape.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"root%40pam", "%", "%4", "%zz", "%%41", "a+b", "%e2%82%AC", "PVE:root@pam:66C8E0F0::AB+/=="} {
		f.Add(s)
	}
	escRe := regexp.MustCompile(`%([0-9A-Fa-f]{2})`)
	f.Fuzz(func(t *testing.T, s string) {
		want := escRe.ReplaceAllStringFunc(s, func(m string) string {
			v, _ := strconv.ParseUint(m[1:], 16, 8)
			return string([]byte{byte(v)})
		})
		if got := Unescape(s); got != want {
			t.Fatalf("Unescape(%q) = %q; uri_unescape gives %q", s, got, want)
		}
		e := Escape(s)
		if got := Unescape(e); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, got)
		}
		if strings.Trim(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%") != "" {
			t.Fatalf("Escape(%q) = %q leaves a reserved byte", s, e)
		}
	})
}

// FuzzExtractAuthValue compares ExtractCookie and ParseAPIToken with
// extract_auth_value ((?:^|\s)NAME(?:=| )([^;]*), first match, value
// percent-decoded) and verify_token's split ^(.*)=(.*)$. Where PVE's
// callers treat the value "0" as absent, the package returns it; that case
// is skipped. A token value holding a newline is refused by the package
// (PVE's '.' stops there and its '$' may accept a final one).
func FuzzExtractAuthValue(f *testing.F) {
	f.Add("PVEAuthCookie=PVE%3Aroot%40pam; x=1", false)
	f.Add("a=1;\vPVEAuthCookie abc", false)
	f.Add("xPVEAuthCookie=a PVEAuthCookie=b", false)
	f.Add("PVEAuthCookie=; PVEAuthCookie=b", false)
	f.Add("PVEAPIToken=root@pam!mon=0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b", true)
	f.Add("PVEAPIToken root%40pam%21mon%3Ds", true)
	f.Add("PVEAPIToken=a=b=c", true)
	authRe := map[bool]*regexp.Regexp{}
	for token, name := range map[bool]string{false: CookieName, true: TokenName} {
		authRe[token] = regexp.MustCompile(`(?:^|[` + perlSpace + `])` + regexp.QuoteMeta(name) + `(?:=| )([^;]*)`)
	}
	splitRe := regexp.MustCompile(`^(.*)=(.*)$`)
	f.Fuzz(func(t *testing.T, header string, token bool) {
		name := CookieName
		if token {
			name = TokenName
		}
		m := authRe[token].FindStringSubmatch(header)
		if m != nil && m[1] == "0" {
			t.Skip(`PVE's callers treat "0" as no value`)
		}
		want, wantOK := "", m != nil && m[1] != ""
		if wantOK {
			want = Unescape(m[1])
		}
		got, ok := ExtractCookie(header, name)
		if got != want || ok != wantOK {
			t.Fatalf("ExtractCookie(%q, %s) = %q, %v; PVE: %q, %v", header, name, got, ok, want, wantOK)
		}
		if !token {
			return
		}
		id, secret, ok := ParseAPIToken(header)
		sm := splitRe.FindStringSubmatch(want)
		if strings.Contains(want, "\n") {
			if ok {
				t.Fatalf("ParseAPIToken(%q) accepted a value with a newline", header)
			}
			return
		}
		if ok != (wantOK && sm != nil) || (ok && (id != sm[1] || secret != sm[2])) {
			t.Fatalf("ParseAPIToken(%q) = %q, %q, %v; PVE: %q", header, id, secret, ok, sm)
		}
	})
}
