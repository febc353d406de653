package corosync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPVEGolden compares Parse and Marshal with PVE's own parse_conf and
// write_conf: testdata/pve/NAME.pve is what PVE writes after reading
// NAME.in, or PVE's error (see testdata/README.md). Inputs named
// deviation-* are those PVE accepts and Parse refuses on purpose (see the
// package documentation).
func TestPVEGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/pve/*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".pve")
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(name+".conf", data)
			var got []byte
			if err == nil {
				got, err = c.Marshal()
			}
			pveErr := strings.HasPrefix(string(want), "ERROR: ")
			switch {
			case strings.HasPrefix(name, "deviation-"):
				if pveErr {
					t.Fatalf("golden file says PVE fails too; rename the input")
				}
				if err == nil {
					t.Errorf("Parse+Marshal succeeded; want an error (PVE writes:\n%s)", want)
				}
			case pveErr:
				if err == nil {
					t.Errorf("Parse+Marshal succeeded:\n%s\nwant an error as PVE's %s", got, want)
				}
			case err != nil:
				t.Errorf("Parse+Marshal: %v; PVE writes:\n%s", err, want)
			case string(got) != string(want):
				t.Errorf("Marshal:\n%s\nPVE writes:\n%s", got, want)
			}
		})
	}
}

// TestPVEWrittenRoundTrip checks that files PVE wrote come out unchanged.
func TestPVEWrittenRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/pve/*.pve")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(data), "ERROR: ") || strings.HasPrefix(filepath.Base(f), "deviation-") {
			continue
		}
		n++
		c, err := Parse(filepath.Base(f), data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		got, err := c.Marshal()
		if err != nil || string(got) != string(data) {
			t.Errorf("%s: Marshal(Parse(x)) = %q, %v; want x", f, got, err)
		}
	}
	if n < 10 {
		t.Errorf("only %d PVE-written files", n)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"totem {\n  cluster_name: two words\n}\n", "c.conf:2: missing ':' after key 'words'"},
		{"totem {\n  a: b\n}\n\ntotem {\n}\n", "c.conf:5: section 'totem' already exists and not marked as array"},
		{"a: b\na {\n}\n", "c.conf:2: section 'a' already exists and not marked as array"},
		{"totem {\n}\n}\n", "c.conf:3: unexpected '}'"},
		{"totem {\n  version 2\n}\n", "c.conf:2: missing ':' after key 'version'"},
		{"totem {\n\n  version:", "c.conf:3: no value for 'version'"},
		{"# c\nnodelist: x\n", "c.conf:2: 'nodelist' is a key, not a section"},
		{"totem: x\n", "c.conf:1: 'totem' is a key, not a section"},
		{"nodelist {\n  node: x\n}\n", "c.conf:2: nodelist: 'node' is a key, not a section"},
		{"logging {\n  node: x\n  node {\n  }\n}\n", "c.conf:3: 'node' is a key, it cannot start a section"},
		{"totem {\n  interface {\n    linknumber: 0\n", "c.conf:2: section 'interface' is not closed"},
		{"totem {\n  a: b\n", "c.conf:1: section 'totem' is not closed"},
		{"nodelist {\n  node {\n    name {\n    }\n  }\n}\n", "c.conf:3: nodelist node: 'name' is a section, not a key"},
		{"totem {\n interface {\n  ringnumber {\n  }\n }\n}\n", "c.conf:3: totem interface: 'ringnumber' is a section, not a key"},
	} {
		_, err := Parse("c.conf", []byte(tt.in))
		var pe *ParseError
		if err == nil || err.Error() != tt.want || !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v; want %s", tt.in, err, tt.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	// PVE reads a false value as no configuration; white space alone
	// gives an empty main section.
	for _, in := range []string{"", "0"} {
		c, err := Parse("c", []byte(in))
		if err != nil || c.Main != nil {
			t.Errorf("Parse(%q) = %+v, %v; want no main section", in, c, err)
		}
		if _, err := c.Marshal(); !errors.Is(err, ErrNoMain) {
			t.Errorf("Marshal of %q: %v; want ErrNoMain", in, err)
		}
	}
	c, err := Parse("c", []byte(" \n"))
	if err != nil || c.Main == nil || len(c.Main.Names()) != 0 {
		t.Errorf("Parse(white space) = %+v, %v; want an empty main section", c, err)
	}
}

func TestParseDigest(t *testing.T) {
	// PVE's digest is the SHA-1 of the raw file.
	c, err := Parse("c", []byte("a: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "3edb5ce145cf1d1e2413e02b8bed70f1ae3ed105"; c.Digest != want {
		t.Errorf("Digest = %q", c.Digest)
	}
	c2, _ := Parse("c", []byte("a: b  \n"))
	if c2.Digest == c.Digest {
		t.Errorf("digest ignores white space; PVE's does not")
	}
}

func TestParseLines(t *testing.T) {
	c, err := Parse("c", []byte("# x\r\ntotem {\r\n  config_version: 3 # c\r\n}\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	tot := c.Totem()
	if tot.Line() != 2 || tot.KeyLine("config_version") != 3 {
		t.Errorf("lines: totem %d, config_version %d; want 2, 3", tot.Line(), tot.KeyLine("config_version"))
	}
	if v, _ := tot.Get("config_version"); v != "3" {
		t.Errorf("config_version = %q", v)
	}
}
