package pvefs

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPath checks that Path only ever answers a path strictly inside the
// root for a clean relative name, and ErrBadName otherwise.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"user.cfg", "priv/shadow.cfg", "nodes/pve1/qemu-server/100.conf", "", "/etc/passwd",
		"../x", "a/../../x", "a//b", "./a", "..", "a/..", "...", "a/.../b", ".locks/x", "a\x00b", `a\..\b`} {
		f.Add(s)
	}
	r, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := r.Path(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("Path(%q) error = %v; want ErrBadName", name, err)
			}
			return
		}
		rel, err := filepath.Rel(r.Dir(), p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("Path(%q) = %q, outside the root %q", name, p, r.Dir())
		}
		if rel != name {
			t.Fatalf("Path(%q) = %q; the name changed to %q", name, p, rel)
		}
	})
}
