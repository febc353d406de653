package storage

import (
	"strings"
	"testing"
)

func TestParseVolumeID(t *testing.T) {
	tests := []struct{ in, sid, vol, err string }{
		{"local:100/vm-100-disk-0.qcow2", "local", "100/vm-100-disk-0.qcow2", ""},
		{"Local.1:iso/a.iso", "Local.1", "iso/a.iso", ""},
		{"l:iso/a.iso", "", "", "unable to parse volume ID 'l:iso/a.iso'"},
		{"local", "", "", "unable to parse volume ID"},
		{"local:", "", "", "unable to parse volume ID"},
		{"1local:x", "", "", "unable to parse volume ID"},
	}
	for _, tt := range tests {
		sid, vol, err := ParseVolumeID(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseVolumeID(%q) error = %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || sid != tt.sid || vol != tt.vol {
			t.Errorf("ParseVolumeID(%q) = %q, %q, %v", tt.in, sid, vol, err)
		}
	}
}

func TestParseVolname(t *testing.T) {
	tests := []struct {
		in   string
		want Volume
		err  string
	}{
		{in: "100/vm-100-disk-0.qcow2", want: Volume{VType: "images", Name: "vm-100-disk-0.qcow2", VMID: 100, Format: "qcow2"}},
		{in: "100/base-100-disk-1.raw", want: Volume{VType: "images", Name: "base-100-disk-1.raw", VMID: 100, IsBase: true, Format: "raw"}},
		{in: "100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2", want: Volume{VType: "images", Name: "vm-101-disk-0.qcow2", VMID: 101, BaseName: "base-100-disk-0.qcow2", BaseVMID: 100, Format: "qcow2"}},
		{in: "100/mydisk.vmdk", want: Volume{VType: "images", Name: "mydisk.vmdk", VMID: 100, Format: "vmdk"}},
		{in: "iso/debian.ISO", want: Volume{VType: "iso", Name: "debian.ISO", Format: "raw"}},
		{in: "vztmpl/debian-12.tar.zst", want: Volume{VType: "vztmpl", Name: "debian-12.tar.zst", Format: "raw"}},
		{in: "backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst", want: Volume{VType: "backup", Name: "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst", VMID: 100, Format: "raw"}},
		{in: "snippets/user.yaml", want: Volume{VType: "snippets", Name: "user.yaml", Format: "raw"}},
		{in: "import/x.ova/disk1.vmdk", want: Volume{VType: "import", Name: "x.ova/disk1.vmdk", Format: "ova+vmdk"}},
		{in: "100/snap-s1-vm-100-disk-0.qcow2", err: "is a snapshot filename, not a volume!"},
		{in: "100/vm-100-disk-0.txt", err: "unable to parse volume filename 'vm-100-disk-0.txt'"},
		{in: "iso/../../etc/passwd.iso", err: "unable to parse directory volume name"},
		{in: "snippets/..", err: "unable to parse directory volume name"},
		{in: "snippets/.", err: "unable to parse directory volume name"},
		{in: "snippets/a\x00b", err: "unable to parse directory volume name"},
		{in: "/etc/passwd", err: "unable to parse directory volume name"},
		{in: "100/../vm-100-disk-0.raw", err: "unable to parse volume filename"},
		{in: "vztmpl/a.tar.gz.tar.bad", err: "unable to parse directory volume name"},
	}
	for _, tt := range tests {
		v, err := ParseVolname(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseVolname(%q) error = %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err == nil {
			v.owner, v.baseOwner = "", ""
		}
		if err != nil || *v != tt.want {
			t.Errorf("ParseVolname(%q) = %+v, %v; want %+v", tt.in, v, err, tt.want)
			continue
		}
		v, _ = ParseVolname(tt.in)
		if v.Volname() != tt.in {
			t.Errorf("Volname() = %q; want %q", v.Volname(), tt.in)
		}
	}
}

func FuzzVolumeID(f *testing.F) {
	for _, s := range []string{"local:100/vm-100-disk-0.qcow2", "s1:iso/a.iso", "s1:snippets/..", "s1:100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2", "s1:backup/vzdump-lxc-100-x.tar.zst", "s1:import/a.ova/b.raw"} {
		f.Add(s)
	}
	sec := &Section{Type: "dir", ID: "s1", Options: map[string]string{"path": "/srv/st", "content-dirs": "iso=my/iso"}}
	d, _ := NewDir(sec, DirOptions{})
	f.Fuzz(func(t *testing.T, volid string) {
		sid, volname, err := ParseVolumeID(volid)
		if err != nil {
			return
		}
		if FormatVolumeID(sid, volname) != volid {
			t.Fatalf("format round trip of %q", volid)
		}
		v, err := ParseVolname(volname)
		if err != nil {
			return
		}
		if v.Volname() != volname {
			t.Fatalf("Volname() = %q; want %q", v.Volname(), volname)
		}
		p, _, err := d.Path(volname)
		if err != nil {
			t.Fatalf("Path(%q) error = %v after ParseVolname succeeded", volname, err)
		}
		if !strings.HasPrefix(p, "/srv/st/") || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") {
			t.Fatalf("Path(%q) = %q escapes or is not canonical", volname, p)
		}
	})
}
