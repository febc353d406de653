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
	for name, want := range map[string]string{
		"pveproxy":   "/run/pveproxy/pveproxy.pid",
		"spiceproxy": "/run/pveproxy/spiceproxy.pid",
		"pvedaemon":  "/run/pvedaemon.pid",
		"pvestatd":   "/run/pvestatd.pid",
	} {
		if got := PathsFor("").PIDFile(name); got != want {
			t.Errorf("PIDFile(%s) = %q; want %q", name, got, want)
		}
	}
}
