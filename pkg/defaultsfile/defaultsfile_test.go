package defaultsfile

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var validCases = []struct {
	name string
	in   string
	want map[string]Value
}{
	{"empty", "", map[string]Value{}},
	{"comments and blanks", "# comment\n\n   \n\t# indented\n", map[string]Value{}},
	{"plain", "A=1\n", map[string]Value{"A": {"1", 1}}},
	{"no trailing newline", "A=1", map[string]Value{"A": {"1", 1}}},
	{"empty value", "A=\n", map[string]Value{"A": {"", 1}}},
	{"empty quoted", "A=\"\"\nB=''\n", map[string]Value{"A": {"", 1}, "B": {"", 2}}},
	{"double quoted", `ALLOW_FROM="10.0.0.1-10.0.0.5,192.168.0.0/22"` + "\n",
		map[string]Value{"ALLOW_FROM": {"10.0.0.1-10.0.0.5,192.168.0.0/22", 1}}},
	{"single quoted", "A='x $y \\z \"q\"'\n", map[string]Value{"A": {`x $y \z "q"`, 1}}},
	{"double quote escapes", `A="a\"b\\c\$d\` + "`" + `e\nf"` + "\n",
		map[string]Value{"A": {"a\"b\\c$d`e\\nf", 1}}},
	{"unquoted escapes", `A=a\ b\"c\\d` + "\n", map[string]Value{"A": {`a b"c\d`, 1}}},
	{"mixed quoting", `A=ab"c d"'e f'g` + "\n", map[string]Value{"A": {"abc de fg", 1}}},
	{"export", "export A=1\n", map[string]Value{"A": {"1", 1}}},
	{"export with tab", "export\tA=1\n", map[string]Value{"A": {"1", 1}}},
	{"export bare", "export A\n", map[string]Value{}},
	{"export several", "export A=1 B C=3\n", map[string]Value{"A": {"1", 1}, "C": {"3", 1}}},
	{"trailing comment", "A=1 # the value\n", map[string]Value{"A": {"1", 1}}},
	{"hash inside word", "A=1#2\n", map[string]Value{"A": {"1#2", 1}}},
	{"hash in quotes", "A=\"1 # 2\"\n", map[string]Value{"A": {"1 # 2", 1}}},
	{"leading blanks", "   A=1\n", map[string]Value{"A": {"1", 1}}},
	{"trailing blanks", "A=1   \n", map[string]Value{"A": {"1", 1}}},
	{"two on a line", "A=1 B=2\n", map[string]Value{"A": {"1", 1}, "B": {"2", 1}}},
	{"semicolon", "A=1; B=2;\n", map[string]Value{"A": {"1", 1}, "B": {"2", 1}}},
	{"later wins", "A=1\nA=2\n", map[string]Value{"A": {"2", 2}}},
	{"line numbers", "# c\n\nA=1\n\nB=2\n", map[string]Value{"A": {"1", 3}, "B": {"2", 5}}},
	{"multi-line double quotes", "A=\"x\ny\"\nB=1\n", map[string]Value{"A": {"x\ny", 1}, "B": {"1", 3}}},
	{"multi-line single quotes", "A='x\ny'\nB=1\n", map[string]Value{"A": {"x\ny", 1}, "B": {"1", 3}}},
	{"continuation in quotes", "A=\"x\\\ny\"\nB=1\n", map[string]Value{"A": {"xy", 1}, "B": {"1", 3}}},
	{"continuation unquoted", "A=x\\\ny\nB=1\n", map[string]Value{"A": {"xy", 1}, "B": {"1", 3}}},
	{"literal dollar", "A=a$ B=\"$\" C=\"x$\" D=$/ E=\"$%\"\n",
		map[string]Value{"A": {"a$", 1}, "B": {"$", 1}, "C": {"x$", 1}, "D": {"$/", 1}, "E": {"$%", 1}}},
	{"escaped dollar", `A=\$HOME B="\$HOME"` + "\n", map[string]Value{"A": {"$HOME", 1}, "B": {"$HOME", 1}}},
	{"glob and braces literal", "A=*.pem B=x{a,b} C=[ab]\n",
		map[string]Value{"A": {"*.pem", 1}, "B": {"x{a,b}", 1}, "C": {"[ab]", 1}}},
	{"tilde not leading", "A=a~b\n", map[string]Value{"A": {"a~b", 1}}},
	{"quoted tilde", "A='~' B=\"~/x\"\n", map[string]Value{"A": {"~", 1}, "B": {"~/x", 1}}},
	{"equals in value", "A=x=y\n", map[string]Value{"A": {"x=y", 1}}},
	{"cr in quotes", "A=\"x\ry\"\n", map[string]Value{"A": {"x\ry", 1}}},
	{"underscore names", "_A1=x\nlower_case=y\n", map[string]Value{"_A1": {"x", 1}, "lower_case": {"y", 2}}},
	{"pveproxy example", `ALLOW_FROM="10.0.0.1-10.0.0.5,192.168.0.0/22"
DENY_FROM="all"
POLICY="allow"
CIPHERS="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
LISTEN_IP="fe80::1%eth0"
`, map[string]Value{
		"ALLOW_FROM": {"10.0.0.1-10.0.0.5,192.168.0.0/22", 1},
		"DENY_FROM":  {"all", 2},
		"POLICY":     {"allow", 3},
		"CIPHERS":    {"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384", 4},
		"LISTEN_IP":  {"fe80::1%eth0", 5},
	}},
}

func TestParseValid(t *testing.T) {
	for _, tt := range validCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("f", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Parse(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseMatchesBash sources every valid case with a real bash and checks that
// bash sees the same values, so the subset we parse means what bash means.
func TestParseMatchesBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	for _, tt := range validCases {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "defaults")
			if err := os.WriteFile(path, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			keys := slices.Sorted(maps.Keys(tt.want))
			script := ". \"$1\" || exit 9\n"
			for _, k := range keys {
				script += "printf '%s\\0' \"${" + k + "-UNSET}\"\n"
			}
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script, "bash", path)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bash: %v", err)
			}
			got := strings.Split(string(out), "\x00")
			got = got[:len(got)-1]
			for i, k := range keys {
				if i >= len(got) {
					t.Fatalf("bash printed %d values; want %d", len(got), len(keys))
				}
				if got[i] != tt.want[k].Value {
					t.Errorf("bash sees %s=%q; we parse %q", k, got[i], tt.want[k].Value)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want []string // one per reported error, each "f:line: substring"
	}{
		{"variable", "A=$HOME\n", []string{"f:1: variable expansion $HOME"}},
		{"braced variable", "A=\"x${HOME}\"\n", []string{"f:1: variable expansion ${HOME}"}},
		{"special parameter", "A=$?\n", []string{"f:1: variable expansion $?"}},
		{"positional", "A=$1\n", []string{"f:1: variable expansion $1"}},
		{"command substitution", "A=$(hostname)\n", []string{"f:1: command substitution $(...)"}},
		{"command substitution in quotes", "A=\"$(hostname)\"\n", []string{"f:1: command substitution $(...)"}},
		{"backquotes", "A=`hostname`\n", []string{"f:1: command substitution with `"}},
		{"backquotes in quotes", "A=\"`x`\"\n", []string{"f:1: command substitution with `"}},
		{"ansi-c", "A=$'x'\n", []string{"f:1: ANSI-C quoting"}},
		{"locale", "A=$\"x\"\n", []string{"f:1: locale quoting"}},
		{"tilde", "A=~/x\n", []string{"f:1: tilde expansion"}},
		{"tilde after colon", "A=a:~/x\n", []string{"f:1: tilde expansion"}},
		{"append", "A+=1\n", []string{"f:1: A+= (append)"}},
		{"command", "echo hi\n", []string{`f:1: expected KEY=value, found "echo"`}},
		{"command after assignment", "A=1 cmd\n", []string{`f:1: expected KEY=value, found "cmd"`}},
		{"spaces around equals", "A = 1\n", []string{`f:1: expected KEY=value, found "A"`}},
		{"digit first", "1A=x\n", []string{`f:1: expected KEY=value, found "1A=x"`}},
		{"pipe", "A=1|x\n", []string{`f:1: shell operator '|'`}},
		{"redirect", "A=1>x\n", []string{`f:1: shell operator '>'`}},
		{"subshell", "A=(1 2)\n", []string{`f:1: shell operator '('`}},
		{"background", "A=1 &\n", []string{`f:1: expected KEY=value, found "&"`}},
		{"crlf", "A=1\r\nB=2\r\n", []string{"f:1: carriage return", "f:2: carriage return"}},
		{"unterminated double", "A=\"x\nB=1\n", []string{"f:1: unterminated double quote"}},
		{"unterminated single", "A=1\nB='x\n", []string{"f:2: unterminated single quote"}},
		{"export alone", "export\n", []string{`f:1: expected KEY=value, found "export"`}},
		{"export option", "export -n A\n", []string{`f:1: expected KEY=value, found "-n"`}},
		{"stray semicolon", ";\n", []string{"f:1: unexpected ';'"}},
		{"nul", "A=x\x00y\n", []string{"f:1: NUL byte"}},
		{"all bad lines reported", "A=$X\nB=ok\nC=`y`\n# fine\nD=$(z)\n",
			[]string{"f:1: variable expansion", "f:3: command substitution", "f:5: command substitution"}},
		{"error inside multi-line quote", "A=\"$X\nmore text\"\nB=1\nC=$Y\n",
			[]string{"f:1: variable expansion $X", "f:4: variable expansion $Y"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error; want %q", tt.in, tt.want)
			}
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					got = append(got, e.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Parse(%q) errors = %q; want %d errors like %q", tt.in, got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d = %q; want prefix %q", i, got[i], tt.want[i])
				}
			}
			var se *SyntaxError
			if !errors.As(err, &se) || se.File != "f" {
				t.Errorf("Parse(%q) error %v does not hold a *SyntaxError for file f", tt.in, err)
			}
		})
	}
}

func TestParseKeepsGoodLines(t *testing.T) {
	got, err := Parse("f", []byte("A=$X\nB=ok\n"))
	if err == nil {
		t.Fatal("want error")
	}
	if want := map[string]Value{"B": {"ok", 2}}; !maps.Equal(got, want) {
		t.Errorf("Parse = %v; want %v", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	got, err := Load(filepath.Join(dir, "missing"))
	if err != nil || len(got) != 0 {
		t.Errorf("Load(missing) = %v, %v; want empty map, nil", got, err)
	}
	path := filepath.Join(dir, "pveproxy")
	if err := os.WriteFile(path, []byte("POLICY=deny\nX=$Y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("Load error = %v; want prefix %q", err, path+":2: ")
	}
	if got["POLICY"].Value != "deny" {
		t.Errorf("Load POLICY = %q; want deny", got["POLICY"].Value)
	}
	if _, err := Load(dir); err == nil {
		t.Errorf("Load(directory) = nil error; want error")
	}
}

func TestLoadGolden(t *testing.T) {
	got, err := Load(filepath.Join("testdata", "pveproxy"))
	if err != nil {
		t.Fatalf("Load(testdata/pveproxy): %v", err)
	}
	want := map[string]Value{
		"ALLOW_FROM":   {"10.0.0.1-10.0.0.5,192.168.0.0/22", 5},
		"DENY_FROM":    {"all", 6},
		"POLICY":       {"allow", 7},
		"LISTEN_IP":    {"192.0.2.10", 9},
		"CIPHERS":      {"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384", 11},
		"COMPRESSION":  {"0", 13},
		"TLS_KEY_FILE": {"/etc/pve/local/custom key.pem", 14},
	}
	if !maps.Equal(got, want) {
		t.Errorf("Load(testdata/pveproxy) = %v; want %v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range validCases {
		f.Add([]byte(tt.in))
	}
	for _, s := range []string{"A=$X", "A=\"", "A='", "export", "A=\\", "A=\"\\", "A=$", "A=\"$", ";;", "A=${", "A=\"${x\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := Parse("fuzz", data)
		if vals == nil {
			t.Fatal("Parse returned a nil map")
		}
		nl := strings.Count(string(data), "\n") + 1
		for k, v := range vals {
			if v.Line < 1 || v.Line > nl {
				t.Errorf("%s on line %d; input has %d lines", k, v.Line, nl)
			}
		}
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz:") {
			t.Errorf("error %q lacks the file name", err)
		}
	})
}
