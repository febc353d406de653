package storage

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestGoldenRoundTrip(t *testing.T) {
	for _, name := range []string{"fresh.cfg", "cluster.cfg"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(name, data)
		if err != nil {
			t.Fatalf("Parse(%s) error = %v", name, err)
		}
		if got := cfg.Marshal(); !bytes.Equal(got, data) {
			t.Errorf("Marshal(Parse(%s)) =\n%s\nwant byte-identical\n%s", name, got, data)
		}
	}
}

func TestGoldenCanonical(t *testing.T) {
	in, _ := os.ReadFile("testdata/hand.in")
	want, _ := os.ReadFile("testdata/hand.golden")
	cfg, err := Parse("hand.in", in)
	if err != nil {
		t.Fatalf("Parse error = %v", err)
	}
	if got := cfg.Marshal(); !bytes.Equal(got, want) {
		t.Errorf("Marshal =\n%q\nwant\n%q", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		wantIDs           []string
	}{
		{"bad id", "dir: 1x\n\tpath /a\n", "storage.cfg:1: skip section '1x': storage ID '1x' contains illegal characters", []string{"local"}},
		{"short id", "dir: a\n\tpath /a\n", "cannot be shorter than 2 characters", []string{"local"}},
		{"bad bool", "dir: aa\n\tpath /a\n\tshared yes\n", "storage.cfg:3: section 'aa': unable to parse value of 'shared': type check ('boolean') failed - got 'yes'", []string{"local", "aa"}},
		{"unknown key", "dir: aa\n\tpath /a\n\tfoo 1\n", "unexpected property 'foo'", []string{"local", "aa"}},
		{"dup key", "dir: aa\n\tpath /a\n\tpath /b\n", "storage.cfg:3: section 'aa': unable to parse value of 'path': duplicate attribute", []string{"local", "aa"}},
		{"missing path", "dir: aa\n\tcontent iso\n", "skip section 'aa': missing value for required option 'path'", []string{"local"}},
		{"illegal path", "dir: aa\n\tpath /a b\n", "illegal path for directory storage", []string{"local"}},
		{"none combined", "dir: aa\n\tpath /a\n\tcontent none,iso\n", "unable to combine 'none'", []string{"local"}},
		{"bad content", "dir: aa\n\tpath /a\n\tcontent iso,foo\n", "invalid content type 'foo'", []string{"local", "aa"}},
		{"stray line", "garbage\n", "storage.cfg:1: ignore config line: garbage", []string{"local"}},
		{"no blank line", "dir: aa\n\tpath /a\ndir: bb\n\tpath /b\n", "storage.cfg:3: section 'aa': ignore config line: dir: bb", []string{"local", "aa"}},
		{"bad prune", "dir: aa\n\tpath /a\n\tprune-backups keep-all=1,keep-last=2\n", "keep-all cannot be set together", []string{"local", "aa"}},
		{"bad int", "dir: aa\n\tpath /a\n\tmax-protected-backups -2\n", "minimum value of -1", []string{"local", "aa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("storage.cfg", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v; want containing %q", err, tt.wantErr)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is not a *ParseError: %T", err)
			}
			var ids []string
			for _, s := range cfg.Sections {
				ids = append(ids, s.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("sections = %v; want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestLocalForced(t *testing.T) {
	cfg, err := Parse("s", []byte("dir: local\n\tpath /other\n\tcontent iso\n\nlvm: foo\n\tvgname x\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := cfg.Lookup("local")
	if s.Options["path"] != LocalPath || cfg.Sections[0].ID != "local" || cfg.Sections[1].ID != "foo" {
		t.Errorf("local not forced: %+v", cfg.Sections[0])
	}
	cfg, _ = Parse("s", []byte("dir: local\n\tpath /var/lib/vz\n\tnodes a,b\n\tcontent iso\n\n"))
	if _, ok := cfg.Sections[0].Options["nodes"]; ok {
		t.Errorf("local kept its nodes")
	}
}

func TestUpdateHelpers(t *testing.T) {
	cfg, err := Parse("s", []byte(DefaultConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Add("dir", "local", map[string]string{"path": "/x"}); !errors.Is(err, ErrExists) {
		t.Errorf("Add(local) error = %v; want ErrExists", err)
	}
	if err := cfg.Add("dir", "x", map[string]string{"path": "/x"}); err == nil {
		t.Errorf("Add(x) succeeded; want short-id error")
	}
	if err := cfg.Add("zfs", "tank", nil); err == nil || !strings.Contains(err.Error(), "unknown section type") {
		t.Errorf("Add(zfs) error = %v", err)
	}
	if err := cfg.Add("dir", "store", map[string]string{"content": "iso"}); err == nil || !strings.Contains(err.Error(), "missing value for required option 'path'") {
		t.Errorf("Add without path error = %v", err)
	}
	if err := cfg.Add("dir", "store", map[string]string{"path": "/srv/store//", "content": "iso,backup,iso", "shared": "1"}); err != nil {
		t.Fatalf("Add error = %v", err)
	}
	if err := cfg.Update("store", map[string]string{"path": "/y"}, nil); err == nil || !strings.Contains(err.Error(), "can't change value of fixed parameter 'path'") {
		t.Errorf("Update(path) error = %v", err)
	}
	if err := cfg.Update("store", nil, []string{"path"}); err == nil || !strings.Contains(err.Error(), "unable to delete required option 'path'") {
		t.Errorf("Update(del path) error = %v", err)
	}
	if err := cfg.Update("store", map[string]string{"shared": "0"}, []string{"shared"}); err == nil {
		t.Errorf("Update(set+del) succeeded")
	}
	if err := cfg.Update("store", map[string]string{"disable": "1", "nodes": "pve1"}, []string{"shared"}); err != nil {
		t.Fatalf("Update error = %v", err)
	}
	if err := cfg.Update("nope", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(nope) error = %v", err)
	}
	want := DefaultConfig + "dir: store\n\tdisable\n\tpath /srv/store\n\tcontent iso,backup\n\tnodes pve1\n\n"
	if got := string(cfg.Marshal()); got != want {
		t.Errorf("Marshal =\n%q\nwant\n%q", got, want)
	}
	s, _ := cfg.Lookup("store")
	if s.Enabled("pve1") || !s.HasContent("backup") {
		t.Errorf("Enabled/HasContent wrong")
	}
	if err := cfg.Delete("store"); err != nil {
		t.Fatal(err)
	}
	if string(cfg.Marshal()) != DefaultConfig {
		t.Errorf("Delete left %q", cfg.Marshal())
	}
	if err := cfg.Delete("store"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete error = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"fresh.cfg", "cluster.cfg", "hand.in"} {
		d, _ := os.ReadFile("testdata/" + n)
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _ := Parse("f", data)
		out := cfg.Marshal()
		// What we write must read back without error and write identically.
		cfg2, err := Parse("f", out)
		if err != nil {
			t.Fatalf("re-parse of Marshal output failed: %v\n%q", err, out)
		}
		if out2 := cfg2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("Marshal not idempotent:\n%q\n%q", out, out2)
		}
	})
}
