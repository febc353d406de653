package access

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pvenode/pvenode/pkg/pvetext"
)

// Fuzz targets for the config parsers. Run one with, for example,
//
//	go test -run '^$' -fuzz '^FuzzParseUserCfg$' -fuzztime 60s -fuzzminimizetime 10s -parallel 1 ./pkg/access
//
// (the default -fuzzminimizetime of 60s can spend a whole short run
// minimising one new input, reporting 0 execs/s meanwhile).
// Crashers found so far are kept under testdata/fuzz/<target>/ and run as
// part of the normal tests.

// addFileSeeds adds every file matching the glob patterns as a seed.
func addFileSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	for _, p := range patterns {
		names, err := filepath.Glob(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// okReparseWarning reports whether w is one of the only warnings a file
// written by Marshal may cause: PVE keeps group members and ACL members that
// name missing users or groups, and so does Marshal.
func okReparseWarning(w Warning) bool {
	return strings.HasSuffix(w.Msg, " does not exist") && !strings.HasPrefix(w.Msg, "ignoring") &&
		!strings.Contains(w.Msg, ": ignoring ")
}

// FuzzParseUserCfg checks that ParseUserCfg never panics and that Marshal
// is a fixed point after one round: the written file parses to the same
// meaning (userCfgMeaning) and is written again byte for byte.
func FuzzParseUserCfg(f *testing.F) {
	addFileSeeds(f, "testdata/*.cfg", "testdata/golden/user*.cfg", "testdata/golden/canon/user*")
	f.Add([]byte("user:a@pve:1:0:%20x:y%20::::\n"))
	f.Add([]byte("user:a@pve:1:0::::::\ntoken:a@pve!t:0:1::\nacl:1:/:a@pve!t:PVEAuditor:\nuser:a@pve:1:0::::::\n"))
	f.Add([]byte("user:a,b@pve:1:0::::::\ngroup:g:a,b@pve\x00c@pve::\n"))
	f.Add([]byte("acl:1:0/:@g:PVEAdmin:\ngroup:g:::\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c1, _ := ParseUserCfg("user.cfg", in)
		b1 := c1.Marshal()
		c2, warns := ParseUserCfg("user.cfg", b1)
		for _, w := range warns {
			if !okReparseWarning(w) {
				t.Errorf("re-reading the written file: %s\nwritten:\n%s", w, b1)
			}
		}
		if m1, m2 := userCfgMeaning(c1), userCfgMeaning(c2); m1 != m2 {
			t.Fatalf("meaning changed by a write:\n%s\nwritten:\n%s", lineDiff(m1, m2), b1)
		}
		if b2 := c2.Marshal(); string(b2) != string(b1) {
			t.Fatalf("second write differs:\nfirst:\n%s\nsecond:\n%s", b1, b2)
		}
	})
}

// userCfgMeaning renders what a UserCfg means, in a canonical text form.
// It folds the differences that PVE's writer folds too: text fields
// that Perl considers false ("" and "0") are unset, root@pam's ACL entries
// are not stored (root has every privilege), ACL entries of a token that no
// longer exists are inert, and so are empty ACL nodes.
func userCfgMeaning(c *UserCfg) string {
	var b strings.Builder
	for _, id := range sortedKeys(c.Users) {
		u := c.Users[id]
		fmt.Fprintf(&b, "user %q %v %d %q %q %q %q %q\n", id, u.Enable, u.Expire, perlString(u.Firstname),
			perlString(u.Lastname), perlString(u.Email), perlString(u.Comment), perlString(u.Keys))
		for _, name := range sortedKeys(u.Tokens) {
			tk := u.Tokens[name]
			fmt.Fprintf(&b, "  token %q %d %v %q\n", name, tk.Expire, tk.Privsep, perlString(tk.Comment))
		}
	}
	for _, name := range sortedKeys(c.Groups) {
		g := c.Groups[name]
		fmt.Fprintf(&b, "group %q %q %q\n", name, sortedKeys(g.Members), perlString(g.Comment))
	}
	for _, name := range sortedKeys(c.Pools) {
		p := c.Pools[name]
		vms := make([]int, 0, len(p.VMs))
		for v := range p.VMs {
			vms = append(vms, v)
		}
		slices.Sort(vms)
		fmt.Fprintf(&b, "pool %q %q %q %v %q\n", name, perlString(p.Comment), p.Parent, vms, sortedKeys(p.Storage))
	}
	for _, name := range sortedKeys(c.Roles) {
		if !IsBuiltinRole(name) {
			fmt.Fprintf(&b, "role %q %q\n", name, c.Roles[name])
		}
	}
	c.WalkACL(func(path string, n *ACLNode) {
		dump := func(kind string, entries map[string]map[string]bool, keep func(string) bool) {
			for _, m := range sortedKeys(entries) {
				if !keep(m) {
					continue
				}
				for _, role := range sortedKeys(entries[m]) {
					fmt.Fprintf(&b, "acl %s %s %q %s %v\n", path, kind, m, role, entries[m][role])
				}
			}
		}
		dump("group", n.Groups, func(string) bool { return true })
		dump("user", n.Users, func(m string) bool { return m != RootUser })
		dump("token", n.Tokens, c.tokenExists)
	})
	return b.String()
}

// FuzzParseShadow checks that ParseShadow never panics, that every line it
// accepts is one PVE's parser accepts with the same user and hash, and that
// what Marshal writes parses back to the same entries without warnings.
func FuzzParseShadow(f *testing.F) {
	f.Add([]byte(testShadow))
	addFileSeeds(f, "testdata/golden/shadow*")
	f.Add([]byte("a:::\n::x:\na:b:c:\n"))
	f.Add([]byte("a\vb:$5$x$y:\n \t c:$6$s$h: \r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, _ := ParseShadow("shadow.cfg", in)
		want := pveShadowModel(in)
		for u, h := range s {
			if w, ok := want[u]; !ok || w != h {
				t.Errorf("user %q: hash %q; PVE reads %q", u, h, want[u])
			}
		}
		for u, h := range want {
			if _, ok := s[u]; !ok {
				t.Errorf("user %q (hash %q) missing; PVE reads it", u, h)
			}
		}
		out := s.Marshal()
		s2, warns := ParseShadow("shadow.cfg", out)
		if len(warns) > 0 || len(s2) != len(s) {
			t.Fatalf("re-read of %q: %d entries, warnings %v; want %d entries", out, len(s2), warns, len(s))
		}
		for u, h := range s {
			if s2[u] != h {
				t.Fatalf("re-read of %q: user %q hash %q; want %q", out, u, s2[u], h)
			}
		}
		if string(s2.Marshal()) != string(out) {
			t.Fatalf("second write differs from %q", out)
		}
	})
}

// Patterns of the PVE models.
var (
	pveShadowLineRe = regexp.MustCompile(`^[^` + perlSpace + `]+:[^` + perlSpace + `]+:$`)
	pveTokenIDRe    = regexp.MustCompile(`^[^` + perlSpace + `:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)
	pveRealmRe      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.\-_]+$`)
	pveSlashesRe    = regexp.MustCompile(`/+`)
	pvePathRe       = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	pveListSepRe    = regexp.MustCompile(`[,;]`)
	pveListSpaceRe  = regexp.MustCompile(`[` + perlSpace + `]+`)
)

// perlSpace is the character class of Perl's \s (5.18 and later) on byte
// strings; Go's \s lacks \v.
const perlSpace = "\t\n\v\f\r "

// pveShadowModel reads shadow.cfg as PVE's parse_shadow_passwd does (lines
// matching ^\S+:\S+:$, split on ':'), dropping the entries PVE would keep
// with an empty user name or an undefined hash: they can never match a
// password and would not survive PVE's own write and re-read.
func pveShadowModel(in []byte) map[string]string {
	m := map[string]string{}
	for _, raw := range strings.Split(string(in), "\n") {
		line := strings.Trim(raw, perlSpace)
		if line == "" || !pveShadowLineRe.MatchString(line) {
			continue
		}
		f := strings.Split(line, ":")
		if f[0] == "" || f[1] == "" {
			continue
		}
		m[f[0]] = f[1]
	}
	return m
}

// FuzzParseTokenCfg checks ParseTokenCfg against PVE's parser (lines
// ^(\S+) (\S+)$ with a valid token id), the Marshal round trip, and that
// every parsed secret verifies against both the input and the written file.
func FuzzParseTokenCfg(f *testing.F) {
	f.Add([]byte("root@pam!mon 0b3f7a52-4c1d-4e77-9a07-2f1e8c3d5a6b\n\nalice@pve!ci 11111111-2222-3333-4444-555555555555\nbroken\nbad id x\nalice@pve!t2 a b\n"))
	addFileSeeds(f, "testdata/golden/token*")
	f.Add([]byte("a@pve!t  s\na@pve!t s \na@pve!t\ts\n a@pve!t s\na@pve!t s\r\n"))
	lineRe := regexp.MustCompile(`^([^` + perlSpace + `]+) ([^` + perlSpace + `]+)$`)
	f.Fuzz(func(t *testing.T, in []byte) {
		s, _ := ParseTokenCfg("token.cfg", in)
		want := map[string]string{}
		for _, line := range strings.Split(string(in), "\n") {
			if m := lineRe.FindStringSubmatch(line); m != nil && pveTokenIDModel(m[1]) {
				want[m[1]] = m[2]
			}
		}
		if fmt.Sprint(map[string]string(s)) != fmt.Sprint(want) {
			t.Fatalf("ParseTokenCfg = %v; PVE reads %v", s, want)
		}
		out := s.Marshal()
		s2, warns := ParseTokenCfg("token.cfg", out)
		if len(warns) > 0 || fmt.Sprint(s2) != fmt.Sprint(s) {
			t.Fatalf("re-read of %q = %v, %v; want %v", out, s2, warns, s)
		}
		for id, secret := range s {
			if strings.IndexByte(id+secret, 0) >= 0 {
				continue // pmxcfs compares C strings: a NUL never matches
			}
			if err := VerifyTokenSecret(out, id, secret); err != nil {
				t.Errorf("VerifyTokenSecret(written, %q, %q) = %v", id, secret, err)
			}
			if err := VerifyTokenSecret(in, id, secret); err != nil {
				t.Errorf("VerifyTokenSecret(input, %q, %q) = %v", id, secret, err)
			}
		}
	})
}

// pveTokenIDModel is PVE's pve_verify_tokenid: the whole id matches
// (user)@(realm)!(name) with user [^\s:/]+ and realm and name
// [A-Za-z][A-Za-z0-9.\-_]+ (Perl's trailing-newline '$' aside).
func pveTokenIDModel(id string) bool {
	return pveTokenIDRe.MatchString(id)
}

// FuzzParseDomains compares ParseDomains with a model of PVE's section
// config parser (SectionConfig::parse_config with Auth::Plugin's header
// parser and defaults) for the realms login can use: valid realm ids of a
// type PVE 9 knows. Inputs that define a realm id twice are skipped: there
// PVE keeps the last section and ParseDomains the first (see the report of
// the fuzzing work). Sections PVE skips (unknown type, invalid id) do not
// count.
func FuzzParseDomains(f *testing.F) {
	addFileSeeds(f, "testdata/golden/domains*")
	f.Add([]byte("pve: pve\n\tcomment Proxmox VE authentication server\n\ttfa type=oath\n\npam: pam\n\tcomment Linux PAM\n"))
	f.Add([]byte("PVE: corp\n\ttfa type=oath\n\ttfa\n0\n\ttfa type=yubico\n\n# x\n\vpam: pam\n\v tfa type=oath\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := ParseDomains(in)
		want, dup := pveDomainsModel(in)
		if dup {
			t.Skip("a realm id is defined twice")
		}
		for id, r := range want {
			if got[id] != r {
				t.Errorf("realm %q = %+v; PVE reads %+v", id, got[id], r)
			}
		}
		for id, r := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("realm %q = %+v; PVE does not have it", id, r)
			}
		}
	})
}

// Section config patterns, Perl's \s spelt out.
var (
	pveHeaderRe  = regexp.MustCompile(`^([^` + perlSpace + `]+):[` + perlSpace + `]*([^` + perlSpace + `]+)[` + perlSpace + `]*$`)
	pveBodyRe    = regexp.MustCompile(`^[` + perlSpace + `]+([^` + perlSpace + `]+)(?:[` + perlSpace + `]+(.*[^` + perlSpace + `]))?[` + perlSpace + `]*$`)
	pveCommentRe = regexp.MustCompile(`^[` + perlSpace + `]*#`)
)

// pveRealmTypes are the realm plugins PVE 9 registers.
var pveRealmTypes = map[string]bool{"pam": true, "pve": true, "ldap": true, "ad": true, "openid": true}

func validDomainsID(id string) bool {
	return pveRealmRe.MatchString(id)
}

// pveDomainsModel reads domains.cfg the way PVE does, keeping realm type
// and tfa value: comment lines (^\s*#) are skipped everywhere; a section is
// a header line "type: id" (type lowercased) and the lines after it up to
// the first false line ("" or "0"); a section with an invalid id or an
// unknown type is skipped; within a section "tfa" is taken once (a repeat
// is a duplicate attribute, a missing value is an error). Values are not
// checked against the tfa format (ParseDomains does not either). dup
// reports a realm id that has two sections.
func pveDomainsModel(in []byte) (realms map[string]Realm, dup bool) {
	headerRe, bodyRe, commentRe := pveHeaderRe, pveBodyRe, pveCommentRe
	lines := strings.Split(string(in), "\n")
	next := func() (string, bool) {
		for len(lines) > 0 {
			l := lines[0]
			lines = lines[1:]
			if !commentRe.MatchString(l) {
				return l, true
			}
		}
		return "", false
	}
	realms = map[string]Realm{}
	seen := map[string]bool{}
	for len(lines) > 0 {
		line, _ := next()
		if !perlTrue(line) {
			continue
		}
		m := headerRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		typ, id := strings.ToLower(m[1]), m[2]
		skip := !validDomainsID(id) || !pveRealmTypes[typ]
		if seen[id] && !skip {
			dup = true
		}
		if !skip {
			seen[id] = true
		}
		r := Realm{Type: typ}
		tfaSet := false
		for {
			l, ok := next()
			if !ok || !perlTrue(l) {
				break
			}
			if bm := bodyRe.FindStringSubmatch(l); bm != nil && bm[1] == "tfa" && bm[2] != "" && !tfaSet {
				r.TFA, tfaSet = bm[2], true
			}
		}
		if !skip {
			realms[id] = r
		}
	}
	for _, t := range []string{"pam", "pve"} {
		r := realms[t]
		r.Type = t
		realms[t] = r
	}
	return realms, dup
}

// FuzzText checks the user.cfg text encoding: decoding never yields
// invalid UTF-8, encoding yields only printable ASCII without ':' and with
// '%' only in %XX escapes, and encoding then decoding gives back any valid
// UTF-8 text.
func FuzzText(f *testing.F) {
	for _, s := range []string{"Müller €", "a:b%c", "line\nbreak\x7f", "%", "%4", "%zz", "%e2%82%ac", "bad%FFbyte", " x "} {
		f.Add(s)
	}
	escRe := regexp.MustCompile(`%([0-9A-F]{2})`)
	f.Fuzz(func(t *testing.T, s string) {
		d := pvetext.Decode(s)
		if !utf8.ValidString(d) {
			t.Fatalf("pvetext.Decode(%q) = %q: invalid UTF-8", s, d)
		}
		for _, in := range []string{s, d} {
			e := pvetext.Encode(in)
			rest := escRe.ReplaceAllString(e, "")
			for i := 0; i < len(rest); i++ {
				if c := rest[i]; c < 0x20 || c >= 0x7f || c == ':' || c == '%' {
					t.Fatalf("pvetext.Encode(%q) = %q: byte %q unescaped", in, e, c)
				}
			}
			if back := pvetext.Decode(e); utf8.ValidString(in) && back != in {
				t.Fatalf("pvetext.Decode(pvetext.Encode(%q)) = %q", in, back)
			}
		}
	})
}

// FuzzNormalizePath compares NormalizePath with PVE's normalize_path and
// checks that its result is a fixed point.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "//", "vms/100", "/vms//100/", "/pool/a.b-c_d", "", "0", "0/", "00", "/0", "/vms/1 00", "/vms/100!", "a\n"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	f.Fuzz(func(t *testing.T, p string) {
		got, ok := NormalizePath(p)
		want, wantOK := pveNormalizePath(p)
		if got != want || ok != wantOK {
			t.Fatalf("NormalizePath(%q) = %q, %v; PVE gives %q, %v", p, got, ok, want, wantOK)
		}
		if !ok {
			return
		}
		if !valid.MatchString(got) || !strings.HasPrefix(got, "/") || strings.Contains(got, "//") ||
			(got != "/" && strings.HasSuffix(got, "/")) {
			t.Fatalf("NormalizePath(%q) = %q: not normal", p, got)
		}
		if again, ok := NormalizePath(got); !ok || again != got {
			t.Fatalf("NormalizePath(%q) = %q, %v; want it unchanged", got, again, ok)
		}
	})
}

// pveNormalizePath follows PVE's normalize_path step by step (without
// Perl's '$' accepting a trailing newline, which NormalizePath refuses).
func pveNormalizePath(p string) (string, bool) {
	if !perlTrue(p) {
		return "", false
	}
	p = pveSlashesRe.ReplaceAllString(p, "/")
	p = strings.TrimSuffix(p, "/")
	if !perlTrue(p) {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !pvePathRe.MatchString(p) {
		return "", false
	}
	return p, true
}

// FuzzSplitList compares SplitList with PVE's split_list: NUL-separated
// when the text holds a NUL, else split on ',', ';' and whitespace; Perl's
// split drops trailing empty fields and a leading empty one from the
// whitespace form.
func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"a,b;c d\te", " a , b ", "a\x00b", "a\x00\x00", "\x00a", "", ",,", "a\x00", "\x00\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SplitList(s)
		var want []string
		if strings.IndexByte(s, 0) >= 0 {
			want = strings.Split(s, "\x00")
		} else {
			want = pveListSpaceRe.Split(strings.TrimLeft(pveListSepRe.ReplaceAllString(s, " "), perlSpace), -1)
		}
		for len(want) > 0 && want[len(want)-1] == "" {
			want = want[:len(want)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("SplitList(%q) = %q; PVE gives %q", s, got, want)
		}
	})
}

// lineDiff lists the lines only in a ("-") and only in b ("+").
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d strings.Builder
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			d.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			d.WriteString("+ " + l + "\n")
		}
	}
	return d.String()
}
