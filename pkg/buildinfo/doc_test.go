package buildinfo

import "testing"

func TestPathsFor(t *testing.T) {
	for _, tt := range []struct{ prefix, want string }{
		{"", "/etc/pve"},
		{"/tmp/x", "/tmp/x/etc/pve"},
	} {
		if got := PathsFor(tt.prefix).ConfigRoot; got != tt.want {
			t.Errorf("PathsFor(%q).ConfigRoot = %q; want %q", tt.prefix, got, tt.want)
		}
	}
	if got := PathsFor("").PIDFile("pveproxy"); got != "/run/pveproxy/pveproxy.pid" {
		t.Errorf("PIDFile = %q", got)
	}
}
