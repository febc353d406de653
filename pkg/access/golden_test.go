package access

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The golden files under testdata/golden are written the way PVE 9's
// writers write them (pve-access-control's write_user_config, TokenConfig's
// write_token_cfg, Auth::PVE's write_shadow_config, and SectionConfig's
// write_config for domains.cfg): records in `sort keys` order, ACL lines
// per path (depth first, children sorted), non-propagating lines first,
// each with the members that share one sorted role list, text fields
// percent-encoded by encode_text. Where PVE's writer canonicalises, the
// testdata/golden/canon/*.in files hold other spellings and the .want files
// the canonical bytes; see TestGoldenCanonical.

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenUserCfg reads a user.cfg with every kind of record and field and
// checks that Marshal writes it back byte for byte.
func TestGoldenUserCfg(t *testing.T) {
	in := readGolden(t, "user.cfg")
	cfg, warns := ParseUserCfg("user.cfg", in)
	wantWarns := []string{`user.cfg:17: group "ops": member "ghost@pve" does not exist`}
	if got := warningStrings(warns); !slices.Equal(got, wantWarns) {
		t.Errorf("warnings = %q; want %q", got, wantWarns)
	}
	if got := cfg.Marshal(); !bytes.Equal(got, in) {
		t.Errorf("Marshal differs from the PVE-written file:\n%s", lineDiff(string(in), string(got)))
	}

	u := cfg.Users["dave@ldap-corp"]
	if u == nil || u.Lastname != "O'Brien" || u.Expire != 1767225600 || u.Email != "dave@corp.example" {
		t.Errorf("dave@ldap-corp = %+v", u)
	}
	if u := cfg.Users["erin@ad.example"]; u == nil || u.Keys != "yubico-cccccbgrhnln,yubico-cccccbgrhnlm" {
		t.Errorf("erin@ad.example = %+v", u)
	}
	if tk := cfg.Token("alice@pve!ci"); tk == nil || tk.Comment != "GitLab runner – deploy only" || !tk.Privsep {
		t.Errorf("token alice@pve!ci = %+v", tk)
	}
	if tk := cfg.Token("svc@backup@pve!pbs"); tk == nil || tk.Privsep {
		t.Errorf("token svc@backup@pve!pbs = %+v", tk)
	}
	if g := cfg.Groups["devs"]; g == nil || g.Comment != "Entwicklung & Test ✓" || len(g.Members) != 3 {
		t.Errorf("group devs = %+v", g)
	}
	if p := cfg.Pools["lab/sub/deep"]; p == nil || p.Parent != "lab/sub" || !p.Storage["cephfs"] {
		t.Errorf("pool lab/sub/deep = %+v", p)
	}
	if got := cfg.PoolOfVM(2001); got != "lab/sub" {
		t.Errorf("PoolOfVM(2001) = %q; want lab/sub", got)
	}

	// A few evaluations on the nested paths, worked out by hand from PVE's
	// rules (see Permissions).
	for _, tt := range []struct {
		authid, path, priv string
		want               bool
	}{
		{"alice@pve", "/", "Sys.Audit", true},                              // own PVEAuditor on / (not propagated)...
		{"alice@pve", "/nodes/pve1", "Sys.Audit", true},                    // ...but group admins' PVEAdmin propagates
		{"carol@pve", "/storage/local-lvm", "Datastore.Audit", false},      // admins' NoAccess at the final level replaces her own PVEAdmin from /
		{"dave@ldap-corp", "/vms/1000", "VM.PowerMgmt", true},              // own VMStarter beats group devs
		{"erin@ad.example", "/vms/1000", "VM.Console", true},               // devs' PVEVMUser at the final level
		{"erin@ad.example", "/vms/2000", "Pool.Audit", true},               // pool lab/sub holds 2000: devs' PVEPoolUser there
		{"erin@ad.example", "/vms/2000", "VM.Audit", false},                // her PVEVMAdmin is on the child pool lab/sub/deep
		{"bob@pam", "/nodes/pve1", "Sys.Audit", false},                     // own NoAccess beats group ops
		{"svc@backup@pve!pbs", "/vms/200", "VM.Backup", false},             // not privilege separated: its own ACL entries do not count
		{"root@pam!prometheus", "/storage", "Datastore.Audit", true},       // privsep token of root: not intersected
		{"root@pam!prometheus", "/storage/ceph", "Datastore.Audit", false}, // its PVEAuditor does not propagate
	} {
		if got := cfg.Permissions(tt.authid, tt.path).Has(tt.priv); got != tt.want {
			t.Errorf("Permissions(%s, %s) has %s = %v; want %v", tt.authid, tt.path, tt.priv, got, tt.want)
		}
	}
}

// TestGoldenTokenCfg: PVE's writer sorts token ids, so the file comes back
// byte for byte.
func TestGoldenTokenCfg(t *testing.T) {
	in := readGolden(t, "token.cfg")
	s, warns := ParseTokenCfg("token.cfg", in)
	if len(warns) > 0 || len(s) != 5 {
		t.Fatalf("ParseTokenCfg: %d tokens, warnings %v; want 5, none", len(s), warns)
	}
	if got := s.Marshal(); !bytes.Equal(got, in) {
		t.Errorf("Marshal differs:\n%s", lineDiff(string(in), string(got)))
	}
	if err := VerifyTokenSecret(in, "svc@backup@pve!pbs", "2f6d8a1c-7b3e-4c59-a0d4-e81f5b2c9a67"); err != nil {
		t.Errorf("VerifyTokenSecret(svc@backup@pve!pbs) = %v", err)
	}
}

// TestGoldenShadow: PVE's write_shadow_config writes users in Perl hash
// order, which is random; Marshal sorts, so only a sorted file comes back
// byte for byte (canon/shadow.* covers the rest).
func TestGoldenShadow(t *testing.T) {
	in := readGolden(t, "shadow.cfg")
	s, warns := ParseShadow("shadow.cfg", in)
	if len(warns) > 0 || len(s) != 5 {
		t.Fatalf("ParseShadow: %d users, warnings %v; want 5, none", len(s), warns)
	}
	if got := s.Marshal(); !bytes.Equal(got, in) {
		t.Errorf("Marshal differs:\n%s", lineDiff(string(in), string(got)))
	}
	if err := s.VerifyPassword("svc@backup", "pässword 1"); err != nil {
		t.Errorf("VerifyPassword(svc@backup) = %v", err)
	}
}

// TestGoldenDomains reads a domains.cfg as SectionConfig writes it (header,
// comment, required then optional keys, each sorted, an empty line after
// every section). pvenode does not write domains.cfg (the realm API is
// PVE's), so only the parse is checked.
func TestGoldenDomains(t *testing.T) {
	got := ParseDomains(readGolden(t, "domains.cfg"))
	want := map[string]Realm{
		"pam":        {Type: "pam"},
		"pve":        {Type: "pve", TFA: "type=oath,digits=8,step=60"},
		"ldap-corp":  {Type: "ldap", TFA: "type=yubico,id=12345,key=c2VjcmV0,url=https://api.yubico.com/wsapi/2.0/verify"},
		"ad.example": {Type: "ad"},
		"sso":        {Type: "openid"},
	}
	if !maps.Equal(got, want) {
		t.Errorf("ParseDomains = %v; want %v", got, want)
	}
}

// TestGoldenDomainsPVEQuirks pins what PVE's section config parser does
// with hand-edited files.
func TestGoldenDomainsPVEQuirks(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		realm    string
		want     Realm
	}{
		{"type is lowercased", "LDAP: corp\n\ttfa type=oath\n", "corp", Realm{Type: "ldap", TFA: "type=oath"}},
		{"repeated tfa is a duplicate attribute", "pve: pve\n\ttfa type=oath\n\ttfa type=yubico\n", "pve", Realm{Type: "pve", TFA: "type=oath"}},
		{"tfa without value is an error", "pve: pve\n\ttfa\n\ttfa type=oath\n", "pve", Realm{Type: "pve", TFA: "type=oath"}},
		{"\\v is white space", "pve: pve\n\v\ttfa\vtype=oath\n", "pve", Realm{Type: "pve", TFA: "type=oath"}},
		{"a line 0 ends the section", "pve: pve\n0\n\ttfa type=oath\n", "pve", Realm{Type: "pve"}},
		{"comments do not end a section", "pve: pve\n  # note\n\ttfa type=oath\n", "pve", Realm{Type: "pve", TFA: "type=oath"}},
		{"header line inside a section is ignored", "ad: a1\nldap: corp\n\ttfa type=oath\n", "a1", Realm{Type: "ad", TFA: "type=oath"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseDomains([]byte(tt.in))
			if got[tt.realm] != tt.want {
				t.Errorf("realm %s = %+v; want %+v", tt.realm, got[tt.realm], tt.want)
			}
			if model, _ := pveDomainsModel([]byte(tt.in)); model[tt.realm] != tt.want {
				t.Errorf("model of PVE's parser: realm %s = %+v; want %+v", tt.realm, model[tt.realm], tt.want)
			}
		})
	}
}

// TestGoldenCanonical parses files that PVE's writers would write
// differently and checks the canonical form, which must also be a fixed
// point. The canonicalisations, all PVE's own unless marked:
//
//   - user-order: records in any order come out sorted; ACL lines written
//     per member are merged into one line per path, propagate flag and role
//     list; vmids are sorted as strings (100,20,3).
//   - user-text: percent escapes come out with uppercase hex; needless
//     escapes (%41) are decoded; raw UTF-8 and a bare '%' are escaped.
//   - user-ws: white space around fields and CRLF endings go; Perl-false
//     fields ("0") are written empty, "00" is true; ';' and white space in
//     lists become ','.
//   - user-acl: paths are normalised ("//vms//100/", "vms/100", "0/" is
//     "/"); root@pam's entries, unknown roles and unknown tokens are
//     dropped. pvenode only: ACL entries of a token that a later user line
//     dropped are not written (PVE writes them and drops them on its next
//     read, so the end state is the same).
//   - user-pool: vmids lose leading zeros, duplicates (also across pools)
//     and invalid storage ids go, parents of nested pools are created.
//   - user-nul: a list holding a NUL byte is split on NUL only (PVE's
//     split_list), trailing empty items dropped. pvenode only: a member
//     holding ',' or ';' (a valid user id) is dropped with a warning, as
//     PVE's writer would join it into a list that reads back as other
//     members ("a,b@pve" as "a" and "b@pve").
//   - shadow: PVE writes in hash order; pvenode sorts. pvenode only: lines
//     such as "a:::" that leave the hash empty are dropped at once (PVE
//     keeps them until its next write and read).
//   - token: sorted, the last of repeated ids wins, malformed lines (also
//     one-letter token names) go.
func TestGoldenCanonical(t *testing.T) {
	marshal := map[string]func([]byte) []byte{
		"user":   func(b []byte) []byte { c, _ := ParseUserCfg("user.cfg", b); return c.Marshal() },
		"shadow": func(b []byte) []byte { s, _ := ParseShadow("shadow.cfg", b); return s.Marshal() },
		"token":  func(b []byte) []byte { s, _ := ParseTokenCfg("token.cfg", b); return s.Marshal() },
	}
	ins, err := filepath.Glob("testdata/golden/canon/*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no canonicalisation cases: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			kind, _, _ := strings.Cut(name, "-")
			m := marshal[kind]
			if m == nil {
				t.Fatalf("unknown kind %q", kind)
			}
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := m(src)
			wantFile := strings.TrimSuffix(in, ".in") + ".want"
			if *update {
				if err := os.WriteFile(wantFile, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("canonical form differs:\n%s", lineDiff(string(want), string(got)))
			}
			if again := m(want); !bytes.Equal(again, want) {
				t.Errorf("canonical form is not a fixed point:\n%s", lineDiff(string(want), string(again)))
			}
		})
	}
}
