package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func vmidOf(t *testing.T, name string) int {
	t.Helper()
	id, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "-", 2)[0])
	if err != nil {
		t.Fatalf("testdata name %s: %v", name, err)
	}
	return id
}

// TestGoldenRoundTrip: files written by PVE come back byte for byte.
func TestGoldenRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.conf")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(vmidOf(t, f), raw)
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if got := string(c.Marshal()); got != string(raw) {
				t.Errorf("Marshal() differs\ngot:\n%s\nwant:\n%s", got, raw)
			}
		})
	}
}

// TestGoldenNormalise: a hand-edited file is written as PVE would write it.
func TestGoldenNormalise(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.conf.in")
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		want, err := os.ReadFile(strings.TrimSuffix(f, ".in") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(vmidOf(t, f), raw)
		if err != nil {
			t.Fatalf("Parse(%s) error = %v", f, err)
		}
		if got := string(c.Marshal()); got != string(want) {
			t.Errorf("Marshal(%s) =\n%s\nwant:\n%s", f, got, want)
		}
	}
}

func TestParseSections(t *testing.T) {
	raw, _ := os.ReadFile("testdata/101-snapshots-pending.conf")
	c, err := Parse(101, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Props["description"]; got != "Test VM for upgrades" {
		t.Errorf("description = %q", got)
	}
	if got := c.Pending["delete"]; got != "numa,tablet" {
		t.Errorf("pending delete = %q", got)
	}
	if d, ok := c.Pending["description"]; !ok || d != "" {
		t.Errorf("pending description = %q, %v; want empty, present", d, ok)
	}
	if got := c.Snapshots["before-upgrade"]["description"]; got != "Before apt full-upgrade\nkernel 6.1" {
		t.Errorf("snapshot description = %q", got)
	}
	if got := c.Snapshots["before-upgrade"]["parent"]; got != "fresh-install" {
		t.Errorf("snapshot parent = %q", got)
	}
	if len(c.Snapshots) != 2 {
		t.Errorf("snapshots = %d, want 2", len(c.Snapshots))
	}

	raw, _ = os.ReadFile("testdata/100-webserver.conf")
	c, _ = Parse(100, raw)
	if got, want := c.Props["description"], "Debian 12 web server\n\nOwner: ops team, 100% uptime expected"; got != want {
		t.Errorf("description = %q, want %q", got, want)
	}

	raw, _ = os.ReadFile("testdata/102-cloudinit.conf")
	c, _ = Parse(102, raw)
	if got := c.Special["cloudinit"]["ipconfig0"]; got != "ip=10.0.0.11/24,gw=10.0.0.1" {
		t.Errorf("special cloudinit ipconfig0 = %q", got)
	}
	// Without a cloud-init drive PVE drops [special:cloudinit] on write.
	delete(c.Props, "ide2")
	if strings.Contains(string(c.Marshal()), "[special:cloudinit]") {
		t.Error("Marshal kept [special:cloudinit] without a cloud-init drive")
	}
}

func TestDescriptionEncoding(t *testing.T) {
	c := &Config{VMID: 1, Props: Props{"description": "a:b 100%\nünïcode\ttab\n\n", "name": "x"}}
	want := "#a%3Ab 100%25\n#%C3%BCn%C3%AFcode%09tab\nname: x\n"
	if got := string(c.Marshal()); got != want {
		t.Fatalf("Marshal() = %q, want %q", got, want)
	}
	c2, err := Parse(1, []byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.Props["description"]; got != "a:b 100%\nünïcode\ttab" {
		t.Errorf("decoded description = %q", got)
	}
	// "description:" lines are read too.
	c3, _ := Parse(1, []byte("description: hello%3A world  \nname: y\n"))
	if got := c3.Props["description"]; got != "hello: world" {
		t.Errorf("description key = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		line int
		msg  string
	}{
		{"name: a\nthis is junk\n", 2, "unable to parse config"},
		{"name: a\n[bad section!]\n", 2, "unknown section"},
		{"name: a\n\n[s1]\nname: a\n[s1]\n", 5, "duplicate snapshot section"},
		{"[PENDING]\n[pending]\n", 2, "duplicate section"},
		{"delete: name\n", 1, "only allowed in [PENDING]"},
		{"Name: upper\n", 1, "unable to parse config"},
	} {
		_, err := Parse(105, []byte(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v; want *ParseError", tc.in, err)
			continue
		}
		if pe.File != "105.conf" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%q) error = %v; want 105.conf:%d: ...%s", tc.in, err, tc.line, tc.msg)
		}
	}
}

func TestDigest(t *testing.T) {
	raw, _ := os.ReadFile("testdata/100-webserver.conf")
	// sha1sum testdata/100-webserver.conf
	if got, want := Digest(raw), "a6dd4fb92434734e8ff60c47f3d536db4393802d"; got != want {
		t.Errorf("Digest() = %s, want %s", got, want)
	}
	if got, want := Digest(nil), "da39a3ee5e6b4b0d3255bfef95601890afd80709"; got != want {
		t.Errorf("Digest(nil) = %s, want %s", got, want)
	}
}

func TestParseDrive(t *testing.T) {
	d, err := ParseDrive("scsi0", "local-lvm:vm-100-disk-0,iothread=1,size=32G")
	if err != nil {
		t.Fatal(err)
	}
	if d.Interface != "scsi" || d.Index != 0 || d.Volume != "local-lvm:vm-100-disk-0" || d.IsCDROM() {
		t.Errorf("ParseDrive = %+v", d)
	}
	if got := d.Opts.Keys; !reflect.DeepEqual(got, []string{"file", "iothread", "size"}) {
		t.Errorf("keys = %v", got)
	}
	d, err = ParseDrive("ide2", "volume=local:iso/x.iso,media=cdrom")
	if err != nil || d.Volume != "local:iso/x.iso" || !d.IsCDROM() {
		t.Errorf("ParseDrive(volume=) = %+v, %v", d, err)
	}
	d, _ = ParseDrive("ide2", "local-lvm:vm-102-cloudinit,media=cdrom")
	if !d.IsCloudinit() {
		t.Error("cloudinit volume not recognised")
	}
	for _, bad := range []struct{ key, val string }{
		{"scsi0", "a,b"},
		{"scsi0", "a,size=1G,size=2G"},
		{"scsi0", "a,=x"},
		{"virtio0", "none,media=cdrom"},
		{"ide2", "local:iso/x.iso,media=cdrom,format=raw"},
		{"floppy0", "a"},
		{"scsi0", "size=1G"},
	} {
		if _, err := ParseDrive(bad.key, bad.val); err == nil {
			t.Errorf("ParseDrive(%s, %q) succeeded", bad.key, bad.val)
		}
	}
}

func TestParseNet(t *testing.T) {
	n, err := ParseNet("net0", "virtio=BC:24:11:5E:3A:01,bridge=vmbr0,firewall=1")
	if err != nil {
		t.Fatal(err)
	}
	if n.Model != "virtio" || n.MAC != "BC:24:11:5E:3A:01" || n.Bridge != "vmbr0" || !isTrue(n.Opts, "firewall") {
		t.Errorf("ParseNet = %+v", n)
	}
	n, err = ParseNet("net1", "model=e1000,macaddr=BC:24:11:00:00:03,link_down=1")
	if err != nil || n.Model != "e1000" || n.MAC != "BC:24:11:00:00:03" {
		t.Errorf("ParseNet(model=) = %+v, %v", n, err)
	}
	n, err = ParseNet("net2", "virtio,bridge=vmbr0")
	if err != nil || n.Model != "virtio" || n.MAC != "" {
		t.Errorf("ParseNet(bare model) = %+v, %v", n, err)
	}
	for _, bad := range []string{"foo=BC:24:11:00:00:03", "virtio=zz", "virtio=BC:24:11:00:00:03,model=e1000", "bridge=vmbr0"} {
		if _, err := ParseNet("net0", bad); err == nil {
			t.Errorf("ParseNet(%q) succeeded", bad)
		}
	}
}

func TestAccessors(t *testing.T) {
	raw, _ := os.ReadFile("testdata/100-webserver.conf")
	c, _ := Parse(100, raw)
	p := c.Props
	if m, err := p.Memory(); err != nil || m != 2048 {
		t.Errorf("Memory() = %d, %v", m, err)
	}
	if n, _ := p.Cores(); n != 2 {
		t.Errorf("Cores() = %d", n)
	}
	if n, _ := p.Sockets(); n != 1 {
		t.Errorf("Sockets() = %d", n)
	}
	if c.Name() != "web01" {
		t.Errorf("Name() = %s", c.Name())
	}
	order, _ := p.BootOrder()
	if !reflect.DeepEqual(order, []string{"scsi0", "ide2", "net0"}) {
		t.Errorf("BootOrder() = %v", order)
	}
	idx, _ := p.BootIndexes()
	if !reflect.DeepEqual(idx, map[string]int{"scsi0": 100, "ide2": 101, "net0": 102}) {
		t.Errorf("BootIndexes() = %v", idx)
	}
	ds, _ := p.Drives()
	if len(ds) != 2 || ds[0].Key != "ide2" || ds[1].Key != "scsi0" {
		t.Errorf("Drives() = %+v", ds)
	}
	if g, _ := p.VGA(); g.Type != "std" {
		t.Errorf("VGA() = %+v", g)
	}

	q := Props{"memory": "current=4096", "smp": "2", "cores": "3", "vcpus": "4", "vga": "qxl2,memory=32",
		"ide0": "local:vm-1-disk-0", "ide2": "none,media=cdrom", "sata0": "local:vm-1-disk-1", "bootdisk": "sata0",
		"net0": "e1000=BC:24:11:00:00:01", "net3": "virtio=BC:24:11:00:00:04"}
	if m, _ := q.Memory(); m != 4096 {
		t.Errorf("Memory(current=) = %d", m)
	}
	if s, _ := q.Sockets(); s != 2 {
		t.Errorf("Sockets(smp) = %d", s)
	}
	if v, _ := q.VCPUs(); v != 4 {
		t.Errorf("VCPUs() = %d", v)
	}
	if g, _ := q.VGA(); g.Type != "qxl2" || g.Memory != 32 || !g.IsSPICE() {
		t.Errorf("VGA() = %+v", g)
	}
	// Default legacy order "cdn": the bootdisk (counting every disk before it), then CD-ROMs, then NICs.
	idx, _ = q.BootIndexes()
	if want := map[string]int{"sata0": 101, "ide2": 200, "net0": 300, "net3": 301}; !reflect.DeepEqual(idx, want) {
		t.Errorf("BootIndexes(legacy) = %v, want %v", idx, want)
	}
	q["boot"] = "dc"
	idx, _ = q.BootIndexes()
	if want := map[string]int{"ide2": 100, "sata0": 201}; !reflect.DeepEqual(idx, want) {
		t.Errorf("BootIndexes(dc) = %v, want %v", idx, want)
	}
	if _, err := (Props{"memory": "8"}).Memory(); err == nil {
		t.Error("Memory(8) accepted")
	}
	if m, _ := (Props{}).Memory(); m != 512 {
		t.Errorf("default Memory() = %d", m)
	}
}

// keyLineRE is the pattern splitKeyLine implements by hand.
var keyLineRE = regexp.MustCompile(`^([a-z][a-z_\-]*\d*):\s*(.+?)\s*$`)

func FuzzSplitKeyLine(f *testing.F) {
	for _, s := range []string{"memory: 128", "scsi0: local:1,size=4G  ", "a:", "a: ", "a:\t\tb\t", "net10:x", "Ab: c", "a-b_c9: d", "9a: b", "a9b: c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			return
		}
		k, v, ok := splitKeyLine(line)
		m := keyLineRE.FindStringSubmatch(line)
		if ok != (m != nil) || ok && (k != m[1] || v != m[2]) {
			t.Errorf("%q: split (%q, %q, %v), regexp %q", line, k, v, ok, m)
		}
	})
}

func TestSummaryFigures(t *testing.T) {
	for _, tc := range []struct {
		props    Props
		disk     uint64
		cpus     float64
		maxmem   uint64
		hostCPUs int
	}{
		{Props{"scsi0": "local:100/a.qcow2,size=32G", "boot": "order=scsi0;net0", "cores": "2", "memory": "2048"}, 32 << 30, 2, 2 << 30, 8},
		{Props{"ide2": "none,media=cdrom", "scsi0": "local:100/a.raw,size=512M", "boot": "order=ide2;scsi0"}, 0, 1, 512 << 20, 8},
		{Props{"virtio0": "local:100/a.raw,size=1T", "sockets": "2", "cores": "8"}, 1 << 40, 4, 512 << 20, 4},
		{Props{"virtio0": "local:100/a.raw,size=1.5G", "bootdisk": "virtio0", "vcpus": "3", "cores": "4"}, 3 << 29, 3, 512 << 20, 0},
		{Props{}, 0, 1, 512 << 20, 2},
	} {
		if got := tc.props.BootDiskSize(); got != tc.disk {
			t.Errorf("%v: boot disk %d, want %d", tc.props, got, tc.disk)
		}
		if got := tc.props.CPUCount(tc.hostCPUs); got != tc.cpus {
			t.Errorf("%v: cpus %v, want %v", tc.props, got, tc.cpus)
		}
		if got := tc.props.MaxMemBytes(); got != tc.maxmem {
			t.Errorf("%v: maxmem %d, want %d", tc.props, got, tc.maxmem)
		}
	}
}
