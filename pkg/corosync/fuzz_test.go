package corosync

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// Marshal writes in a form Parse reads back to the same tree, which Marshal
// writes unchanged (the file PVE would write is stable).
func FuzzParse(f *testing.F) {
	ins, _ := filepath.Glob("testdata/pve/*.in")
	for _, in := range ins {
		if data, err := os.ReadFile(in); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: }\nb {\n}\n} {\nx: y\n}\n"))
	f.Add([]byte("nodelist { node { ring0_addr: x } node { } node { name: x } }"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data)
		if err != nil || c.Main == nil {
			return
		}
		// Typed access must not panic either.
		_, _ = c.Nodes()
		_, _ = c.ConfigVersion()
		_, _ = c.Verify()
		_ = c.Interfaces()

		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of parsed %q: %v", data, err)
		}
		c2, err := Parse("fuzz.conf", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))): %v\n%s", data, err, out)
		}
		if !c2.Main.Equal(c.Main) && !c2.Main.Equal(withWriteSections(c.Main)) {
			t.Fatalf("tree changed by Marshal and Parse\ninput %q\nwritten:\n%s", data, out)
		}
		out2, err := c2.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("Marshal not stable: %v\nfirst:\n%s\nsecond:\n%s", err, out, out2)
		}
	})
}

// withWriteSections returns s with the nodelist and totem sections Marshal
// adds when they are missing.
func withWriteSections(s *Section) *Section {
	c := s.Clone()
	_, _ = c.EnsureSection("nodelist")
	_, _ = c.EnsureSection("totem")
	return c
}
