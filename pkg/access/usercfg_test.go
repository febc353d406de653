package access

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/pvetext"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUserCfgRoundTrip parses a file in the exact form PVE's writer
// produces and checks that Marshal reproduces it byte for byte.
func TestUserCfgRoundTrip(t *testing.T) {
	in := readTestdata(t, "user.cfg")
	cfg, warns := ParseUserCfg("user.cfg", in)
	wantWarns := []string{`user.cfg:11: group "ops": member "ghost@pve" does not exist`}
	if got := warningStrings(warns); !slices.Equal(got, wantWarns) {
		t.Errorf("warnings = %q; want %q", got, wantWarns)
	}
	if got := cfg.Marshal(); !bytes.Equal(got, in) {
		t.Errorf("Marshal differs from the PVE-written input\ngot:\n%s\nwant:\n%s", got, in)
	}
	// a second round is stable too
	again, _ := ParseUserCfg("user.cfg", cfg.Marshal())
	if !bytes.Equal(again.Marshal(), in) {
		t.Error("second round trip differs")
	}
}

func TestUserCfgParsedValues(t *testing.T) {
	cfg, _ := ParseUserCfg("user.cfg", readTestdata(t, "user.cfg"))
	alice := cfg.Users["alice@pve"]
	if alice == nil {
		t.Fatal("alice@pve missing")
	}
	if !alice.Enable || alice.Expire != 1798761600 || alice.Firstname != "Alice" || alice.Lastname != "Müller" ||
		alice.Email != "alice@example.com" || alice.Comment != "Ops team: on call" || alice.Keys != "x" {
		t.Errorf("alice = %+v", *alice)
	}
	if tk := cfg.Token("alice@pve!monitoring"); tk == nil || tk.Privsep || tk.Expire != 1830297600 || tk.Comment != "Grafana read only" {
		t.Errorf("token alice@pve!monitoring = %+v", tk)
	}
	if tk := cfg.Token("root@pam!backup"); tk == nil || !tk.Privsep || tk.Comment != "nightly 100%" {
		t.Errorf("token root@pam!backup = %+v", tk)
	}
	if g := cfg.Groups["ops"]; g == nil || !g.Members["ghost@pve"] || !g.Members["bob@pam"] {
		t.Errorf("group ops = %+v", g)
	}
	if got := cfg.UserGroups("alice@pve"); !slices.Equal(got, []string{"admins"}) {
		t.Errorf("UserGroups(alice@pve) = %v", got)
	}
	if p := cfg.Pools["lab/sub"]; p == nil || p.Parent != "lab" {
		t.Errorf("pool lab/sub = %+v", p)
	}
	if got := cfg.PoolOfVM(1000); got != "lab" {
		t.Errorf("PoolOfVM(1000) = %q; want lab", got)
	}
	if got := cfg.Roles["VMStarter"]; !slices.Equal(got, []string{"VM.Audit", "VM.Console", "VM.PowerMgmt"}) {
		t.Errorf("role VMStarter = %v", got)
	}
	if got, ok := cfg.Roles["empty"]; !ok || len(got) != 0 {
		t.Errorf("role empty = %v, %v", got, ok)
	}
	if n := cfg.ACLNode("/vms/100", false); n == nil || !n.Tokens["alice@pve!ci"]["PVEVMUser"] {
		t.Errorf("acl /vms/100 = %+v", n)
	}
}

// TestUserCfgCorrupt checks that bad lines are skipped and reported by line
// number while the rest loads, and that writing drops them as PVE does.
func TestUserCfgCorrupt(t *testing.T) {
	cfg, warns := ParseUserCfg("user.cfg", readTestdata(t, "user-corrupt.cfg"))
	want := []string{
		`user.cfg:1: ignoring unknown line "# a comment is not part of the format"`,
		`user.cfg:3: ignoring user "bad user@pve": invalid user id`,
		`user.cfg:4: ignoring user "dave@pve": invalid expire "soon"`,
		`user.cfg:6: ignoring token "erin@pve!x": invalid token id`,
		`user.cfg:7: ignoring token "nobody@pve!tok": user "nobody@pve" does not exist`,
		`user.cfg:8: ignoring group "bad group": invalid group name`,
		`user.cfg:9: role "Custom": ignoring unknown privilege "VM.Monitor"`,
		`user.cfg:10: ignoring role "PVEAdmin": built-in roles cannot be changed`,
		`user.cfg:11: acl /vms/100: ignoring unknown role "Missing"`,
		`user.cfg:12: acl /vms/101: ignoring token "erin@pve!nope": token does not exist`,
		`user.cfg:13: ignoring acl: invalid path "bad path!"`,
		`user.cfg:14: pool "p1": ignoring invalid vmid "abc"`,
		`user.cfg:14: pool "p1": ignoring duplicate vmid 100`,
		`user.cfg:14: pool "p1": ignoring invalid storage "-bad"`,
		`user.cfg:15: ignoring pool "a/b/c/d": nested too deeply (max levels = 3)`,
		`user.cfg:16: ignoring unknown line "frobnicate:x:y:"`,
	}
	if got := warningStrings(warns); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cfg.Users["erin@pve"] == nil {
		t.Error("valid user erin@pve after bad lines was not loaded")
	}
	if got := cfg.Roles["PVEAdmin"]; slices.Contains(got, "Sys.Modify") {
		t.Error("user.cfg changed a built-in role")
	}
	golden := "testdata/user-corrupt.golden"
	got := cfg.Marshal()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readTestdata(t, "user-corrupt.golden"); !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
}

func TestUserCfgDefaults(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"empty file", "", "user:root@pam:1:0::::::\n\n\n\n\n"},
		{"disabled root stays disabled", "user:root@pam:0:0::::::\n", "user:root@pam:0:0::::::\n\n\n\n\n"},
		{"root acl not written", "acl:1:/:root@pam:Administrator:\n", "user:root@pam:1:0::::::\n\n\n\n\n"},
		{"fields trimmed, trailing fields optional", " user: bob@pve : 1 \n", "user:bob@pve:1:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\n"},
		{"perl truth: enable 00 is true, 0 false", "user:a@pve:00:0::::::\nuser:b@pve:0:0::::::\n",
			"user:a@pve:1:0::::::\nuser:b@pve:0:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\n"},
		{"firstname 0 dropped", "user:a@pve:1:0:0:::::\n", "user:a@pve:1:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\n"},
		{"list separators", "user:a@pve:1:0::::::\nuser:b@pve:1:0::::::\ngroup:g:b@pve; a@pve\tb@pve::\n",
			"user:a@pve:1:0::::::\nuser:b@pve:1:0::::::\nuser:root@pam:1:0::::::\n\ngroup:g:a@pve,b@pve::\n\n\n\n"},
		{"nested pool creates parents", "pool:a/b/c:::\n", "user:root@pam:1:0::::::\n\n\npool:a::::\npool:a/b::::\npool:a/b/c::::\n\n\n"},
		{"vmid normalised", "pool:p::0100:\n", "user:root@pam:1:0::::::\n\n\npool:p::100::\n\n\n"},
		{"repeated user line drops tokens", "user:a@pve:1:0::::::\ntoken:a@pve!tk:0:1::\nuser:a@pve:0:0::::::\n",
			"user:a@pve:0:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\n"},
		{"acl before role line drops the role", "acl:1:/:a@pve:R:\nrole:R:Sys.Audit:\n",
			"user:root@pam:1:0::::::\n\n\n\nrole:R:Sys.Audit:\n\n"},
		{"path normalised", "user:a@pve:1:0::::::\nacl:0://vms//100/:a@pve:PVEAuditor:\n",
			"user:a@pve:1:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\nacl:0:/vms/100:a@pve:PVEAuditor:\n"},
		{"member with both flags", "user:a@pve:1:0::::::\nacl:0:/:a@pve:PVEAuditor:\nacl:1:/:a@pve:PVEVMUser:\n",
			"user:a@pve:1:0::::::\nuser:root@pam:1:0::::::\n\n\n\n\nacl:0:/:a@pve:PVEAuditor:\nacl:1:/:a@pve:PVEVMUser:\n"},
		{"text encoding", "user:a@pve:1:0:%e2%82%ac 50%25::x@y.z:tab%09colon%3A:\n",
			"user:a@pve:1:0:%E2%82%AC 50%25::x@y.z:tab%09colon%3A::\nuser:root@pam:1:0::::::\n\n\n\n\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := ParseUserCfg("user.cfg", []byte(tt.in))
			if got := string(cfg.Marshal()); got != tt.want {
				t.Errorf("Marshal = %q; want %q", got, tt.want)
			}
			for _, r := range BuiltinRoles() {
				if _, ok := cfg.Roles[r]; !ok {
					t.Errorf("built-in role %s missing", r)
				}
			}
		})
	}
}

func TestTextEncoding(t *testing.T) {
	for _, tt := range []struct{ plain, enc string }{
		{"plain text, with (punctuation)!", "plain text, with (punctuation)!"},
		{"a:b%c", "a%3Ab%25c"},
		{"Müller €", "M%C3%BCller %E2%82%AC"},
		{"line\nbreak\x7f", "line%0Abreak%7F"},
	} {
		if got := pvetext.Encode(tt.plain); got != tt.enc {
			t.Errorf("pvetext.Encode(%q) = %q; want %q", tt.plain, got, tt.enc)
		}
		if got := pvetext.Decode(tt.enc); got != tt.plain {
			t.Errorf("pvetext.Decode(%q) = %q; want %q", tt.enc, got, tt.plain)
		}
	}
	if got := pvetext.Decode("bad%FFbyte"); got != "bad\uFFFDbyte" {
		t.Errorf("pvetext.Decode(invalid UTF-8) = %q", got)
	}
}

func TestNormalizePath(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"//", "/", true},
		{"vms/100", "/vms/100", true},
		{"/vms//100/", "/vms/100", true},
		{"/pool/a.b-c_d", "/pool/a.b-c_d", true},
		{"", "", false},
		{"0", "", false},
		{"/vms/1 00", "", false},
		{"/vms/100!", "", false},
	} {
		got, ok := NormalizePath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func warningStrings(ws []Warning) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.String())
	}
	return s
}
