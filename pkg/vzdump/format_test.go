package vzdump

import (
	"strings"
	"testing"
	"time"
)

func TestArchiveNames(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	ts := time.Date(2026, 8, 24, 0, 30, 1, 0, time.UTC) // 02:30:01 in loc
	if got := ArchiveBase(100, ts, loc); got != "vzdump-qemu-100-2026_08_24-02_30_01" {
		t.Errorf("ArchiveBase: %s", got)
	}
	for _, tc := range []struct {
		name    string
		vmid    int
		comp    string
		wantErr bool
	}{
		{"vzdump-qemu-100-2026_08_24-02_30_01.vma.zst", 100, "zst", false},
		{"vzdump-qemu-999999999-2026_08_24-02_30_01.vma", 999999999, "", false},
		{"vzdump-qemu-100-2026_08_24-02_30_01.vma.gz", 100, "gz", false},
		{"vzdump-lxc-100-2026_08_24-02_30_01.tar.zst", 0, "", true},
		{"vzdump-qemu-99-2026_08_24-02_30_01.vma", 0, "", true},
		{"vzdump-qemu-100-2026_13_24-02_30_01.vma", 0, "", true},
		{"vzdump-qemu-100-2026_08_24-02_30_01.vma.zst.notes", 0, "", true},
		{"../vzdump-qemu-100-2026_08_24-02_30_01.vma", 0, "", true},
	} {
		info, err := ParseArchiveName(tc.name, loc)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err == nil && (info.VMID != tc.vmid || info.Compression != tc.comp || !info.CTime.Equal(ts)) {
			t.Errorf("%s: %+v", tc.name, info)
		}
	}
}

func TestCompressionSuffix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "", ""}, {"0", "", ""}, {"zstd", ".zst", ""}, {"gzip", ".gz", ""},
		{"lzo", "", "not implemented"}, {"1", "", "not implemented"}, {"bzip2", "", "unknown"},
	} {
		got, err := CompressionSuffix(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %q %v", tc.in, got, err)
		}
	}
}

func TestRendering(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatSize(1000), "0KB"},
		{formatSize(21 * 1024), "21KB"},
		{formatSize(881 << 20), "881MB"},
		{formatSize(3 << 30), "3.00GB"},
		{formatSize(5 << 40), "5.00TB"},
		{formatDuration(3*time.Hour + 4*time.Minute + 5*time.Second), "03:04:05"},
		{renderBytes(0), "0.00 B"},
		{renderBytes(1023), "1023.00 B"},
		{renderBytes(64 << 20), "64.00 MiB"},
		{renderBytes(1.5 * (1 << 30)), "1.50 GiB"},
		{renderDuration(0), "0s"},
		{renderDuration(65 * time.Second), "1m 5s"},
		{renderDuration(3601 * time.Second), "1h 1s"},
		{rate(0, time.Second), "0 B/s"},
		{rate(10<<20, 2*time.Second), "5.00 MiB/s"},
		{rate(10<<20, time.Millisecond), "10.00 MiB/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestExpandNotes(t *testing.T) {
	e := &Engine{Node: "n1", ClusterName: func() string { return "lab" }}
	for _, tc := range []struct{ tmpl, name, want string }{
		{`{{guestname}} ({{vmid}}) on {{node}}/{{cluster}}`, "web", "web (100) on n1/lab"},
		{`a\nb\\c {{unknown}} {{vmid`, "", "a\nb\\c {{unknown}} {{vmid"},
		{`{{guestname}}`, "", "VM 100"},
	} {
		if got := e.expandNotes(tc.tmpl, 100, tc.name); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}

func TestAssembleConfig(t *testing.T) {
	raw := "#my VM\nboot: order=scsi0\nlock: backup\nparent: snap1\nscsi0: store:100/vm-100-disk-0.qcow2,size=1G\n" +
		"unused0: store:100/vm-100-disk-1.raw\n#qmdump#map:old\n\n[PENDING]\nmemory: 512\n\n[snap1]\nmemory: 256\n"
	var infos []string
	got := assembleConfig(raw, []disk{{Key: "scsi0", Storage: "store", Format: "qcow2"}, {Key: "virtio1", Format: "raw"}},
		func(s string) { infos = append(infos, s) })
	want := "#my VM\nboot: order=scsi0\nscsi0: store:100/vm-100-disk-0.qcow2,size=1G\n\n" +
		"#qmdump#map:scsi0:drive-scsi0:store:qcow2:\n#qmdump#map:virtio1:drive-virtio1::raw:\n"
	if got != want {
		t.Errorf("assembled:\n%s\nwant:\n%s", got, want)
	}
	wantInfos := []string{
		"skip unused drive 'store:100/vm-100-disk-1.raw' (not included into backup)",
		"snapshots found (not included into backup)",
		"pending configuration changes found (not included into backup)",
	}
	if strings.Join(infos, "|") != strings.Join(wantInfos, "|") {
		t.Errorf("infos %q", infos)
	}
	maps, err := ParseDiskMaps(got)
	if err != nil || len(maps) != 2 || maps[1] != (DiskMap{"virtio1", "drive-virtio1", "", "raw"}) {
		t.Errorf("maps %+v %v", maps, err)
	}
	if _, err := ParseDiskMaps("#qmdump#map:scsi0:drive-scsi0:store:qcow2\n"); err == nil {
		t.Error("map line without trailing colon accepted")
	}
}

func FuzzParseArchiveName(f *testing.F) {
	f.Add("vzdump-qemu-100-2026_08_24-02_30_01.vma.zst")
	f.Add("vzdump-qemu-100-2026_02_30-25_61_61.vma")
	f.Fuzz(func(t *testing.T, name string) {
		info, err := ParseArchiveName(name, time.UTC)
		if err != nil {
			return
		}
		if info.VMID < 100 || !strings.HasPrefix(name, ArchiveBase(info.VMID, info.CTime, time.UTC)) {
			t.Errorf("%q parsed to %+v", name, info)
		}
	})
}

func FuzzParseDiskMaps(f *testing.F) {
	f.Add("#qmdump#map:scsi0:drive-scsi0:store:qcow2:\nname: x\n")
	f.Add("#qmdump#map::::\n")
	f.Fuzz(func(t *testing.T, conf string) {
		maps, err := ParseDiskMaps(conf)
		if err != nil {
			return
		}
		for _, m := range maps {
			if m.VirtDev == "" || m.DevName == "" || strings.Contains(m.Format, ":") {
				t.Errorf("%q: bad map %+v", conf, m)
			}
		}
	})
}

func FuzzAssembleConfig(f *testing.F) {
	f.Add("name: a\n[PENDING]\nlock: x\n")
	f.Fuzz(func(t *testing.T, raw string) {
		out := assembleConfig(raw, nil, func(string) {})
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "lock:") || strings.HasPrefix(line, "#qmdump#") || strings.HasPrefix(line, "[") && strings.HasSuffix(strings.TrimSpace(line), "]") {
				t.Errorf("%q kept %q", raw, line)
			}
		}
	})
}
