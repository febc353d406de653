package qemu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Limits of PVE 9 (PVE::QemuServer::Drive, PVE::QemuServer).
const (
	MaxIDE    = 4
	MaxSCSI   = 31
	MaxVirtio = 16
	MaxSATA   = 6
	MaxNets   = 32
	MaxSerial = 4
)

// DriveKeys returns the drive keys in PVE's order (valid_drive_names):
// ide0-3, scsi0-30, virtio0-15, sata0-5, efidisk0, tpmstate0.
func DriveKeys() []string {
	var keys []string
	for _, b := range []struct {
		prefix string
		n      int
	}{{"ide", MaxIDE}, {"scsi", MaxSCSI}, {"virtio", MaxVirtio}, {"sata", MaxSATA}} {
		for i := range b.n {
			keys = append(keys, b.prefix+strconv.Itoa(i))
		}
	}
	return append(keys, "efidisk0", "tpmstate0")
}

// Drive is one disk or CD-ROM entry (ide/scsi/virtio/sata/efidisk/tpmstate/unused).
type Drive struct {
	Key       string // "scsi0"
	Interface string // "scsi"
	Index     int
	// Volume is the backing volume: a volume ID ("local-lvm:vm-100-disk-0"),
	// an absolute path, "none" (empty CD-ROM) or "cdrom" (the host's drive).
	Volume string
	Opts   PropString // every option as written, the volume under "file"
}

// Media is "cdrom" or "disk" (the default).
func (d Drive) Media() string {
	if m, ok := d.Opts.Get("media"); ok {
		return m
	}
	return "disk"
}

// IsCDROM reports media=cdrom.
func (d Drive) IsCDROM() bool { return d.Media() == "cdrom" }

var cloudinitRE = regexp.MustCompile(`[:/](?:vm-\d+-)?cloudinit(?:\.(?:raw|qcow|qcow2|qed|vmdk|cloop))?$`)

// IsCloudinit reports whether the volume is a cloud-init image (drive_is_cloudinit).
func (d Drive) IsCloudinit() bool { return cloudinitRE.MatchString(d.Volume) }

var driveKeyRE = regexp.MustCompile(`^(ide|scsi|virtio|sata|efidisk|tpmstate|unused)(\d+)$`)

var driveFormat = propFormat{defaultKey: "file", aliases: map[string]string{"volume": "file"}}

// ParseDrive parses the value of a drive key (parse_drive).
func ParseDrive(key, value string) (Drive, error) {
	m := driveKeyRE.FindStringSubmatch(key)
	if m == nil {
		return Drive{}, fmt.Errorf("invalid drive key: %s", key)
	}
	idx, _ := strconv.Atoi(m[2])
	opts, err := parsePropString(driveFormat, value)
	if err != nil {
		return Drive{}, fmt.Errorf("%s: %w", key, err)
	}
	d := Drive{Key: key, Interface: m[1], Index: idx, Opts: opts}
	d.Volume, _ = opts.Get("file")
	if d.Volume == "" {
		return Drive{}, fmt.Errorf("%s: missing volume", key)
	}
	if d.IsCDROM() {
		if opts.Has("format") || opts.Has("snapshot") && isTrue(opts, "snapshot") {
			return Drive{}, fmt.Errorf("%s: format and snapshot are not allowed with media=cdrom", key)
		}
		if d.Interface == "virtio" {
			return Drive{}, fmt.Errorf("%s: virtio does not support media=cdrom", key)
		}
	}
	return d, nil
}

func isTrue(p PropString, key string) bool {
	v, ok := p.Bool(key)
	return ok && v
}

// Drive returns the parsed drive under key, if present.
func (p Props) Drive(key string) (Drive, bool, error) {
	v, ok := p[key]
	if !ok {
		return Drive{}, false, nil
	}
	d, err := ParseDrive(key, v)
	return d, true, err
}

// Drives returns the drives present, in PVE's order (see DriveKeys); unused
// volumes are not included.
func (p Props) Drives() ([]Drive, error) {
	var ds []Drive
	for _, k := range DriveKeys() {
		d, ok, err := p.Drive(k)
		if err != nil {
			return nil, err
		}
		if ok {
			ds = append(ds, d)
		}
	}
	return ds, nil
}

func (p Props) hasCloudinit() bool {
	ds, _ := p.Drives()
	for _, d := range ds {
		if d.IsCloudinit() {
			return true
		}
	}
	return false
}

// NICModels are the accepted net models (PVE::QemuServer::Network).
var NICModels = []string{
	"e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
	"i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3",
}

var netFormat = func() propFormat {
	f := propFormat{defaultKey: "model", keyAliases: map[string]bool{}, keyAliasOf: "model", keyAliasTarget: "macaddr"}
	for _, m := range NICModels {
		f.keyAliases[m] = true
	}
	return f
}()

// Net is one netN entry ("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1").
type Net struct {
	Key    string // "net0"
	Index  int
	Model  string
	MAC    string // empty if the config has none (PVE would generate one)
	Bridge string
	Queues int
	Opts   PropString
}

var macRE = regexp.MustCompile(`^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$`)

// ParseNet parses the value of a netN key (parse_net, without MAC generation).
func ParseNet(key, value string) (Net, error) {
	idx, err := strconv.Atoi(strings.TrimPrefix(key, "net"))
	if !strings.HasPrefix(key, "net") || err != nil || idx < 0 || idx >= MaxNets {
		return Net{}, fmt.Errorf("invalid net key: %s", key)
	}
	opts, err := parsePropString(netFormat, value)
	if err != nil {
		return Net{}, fmt.Errorf("%s: %w", key, err)
	}
	n := Net{Key: key, Index: idx, Opts: opts}
	n.Model, _ = opts.Get("model")
	if !contains(NICModels, n.Model) {
		return Net{}, fmt.Errorf("%s: unknown model '%s'", key, n.Model)
	}
	n.MAC, _ = opts.Get("macaddr")
	if n.MAC != "" && !macRE.MatchString(n.MAC) {
		return Net{}, fmt.Errorf("%s: invalid MAC address '%s'", key, n.MAC)
	}
	n.Bridge, _ = opts.Get("bridge")
	if q, ok := opts.Get("queues"); ok {
		if n.Queues, err = strconv.Atoi(q); err != nil || n.Queues < 0 || n.Queues > 64 {
			return Net{}, fmt.Errorf("%s: invalid queues '%s'", key, q)
		}
	}
	return n, nil
}

// Nets returns net0..net31 in index order.
func (p Props) Nets() ([]Net, error) {
	var ns []Net
	for i := range MaxNets {
		k := "net" + strconv.Itoa(i)
		v, ok := p[k]
		if !ok {
			continue
		}
		n, err := ParseNet(k, v)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// intKey reads an integer key, def if absent.
func (p Props) intKey(key string, def, minV, maxV int) (int, error) {
	v, ok := p[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minV || n > maxV {
		return 0, fmt.Errorf("invalid %s '%s'", key, v)
	}
	return n, nil
}

// Memory returns the memory in MiB: "memory: [current=]N", 512 if absent.
func (p Props) Memory() (int, error) {
	v, ok := p["memory"]
	if !ok {
		return 512, nil
	}
	ps, err := ParsePropString(v, "current")
	if err != nil {
		return 0, fmt.Errorf("invalid memory '%s': %w", v, err)
	}
	cur, ok := ps.Get("current")
	n, err := strconv.Atoi(cur)
	if !ok || err != nil || n < 16 {
		return 0, fmt.Errorf("invalid memory '%s'", v)
	}
	return n, nil
}

// Cores returns cores per socket (default 1).
func (p Props) Cores() (int, error) { return p.intKey("cores", 1, 1, 1024) }

// Sockets returns the socket count: sockets, else the old smp, else 1.
func (p Props) Sockets() (int, error) {
	if _, ok := p["sockets"]; ok {
		return p.intKey("sockets", 1, 1, 4096)
	}
	return p.intKey("smp", 1, 1, 4096)
}

// VCPUs returns the vCPUs online at start (vcpus, default sockets*cores).
func (p Props) VCPUs() (int, error) {
	s, err := p.Sockets()
	if err != nil {
		return 0, err
	}
	c, err := p.Cores()
	if err != nil {
		return 0, err
	}
	v, err := p.intKey("vcpus", s*c, 1, s*c)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		v = s * c
	}
	return v, nil
}

// Name returns the VM name, "vmVMID" if unset (as in config_to_command).
func (c *Config) Name() string {
	if n := c.Props["name"]; n != "" {
		return n
	}
	return "vm" + strconv.Itoa(c.VMID)
}

// BootOrder returns the devices of "boot: order=dev1;dev2", in order. It is
// nil for the legacy form ("boot: cdn") or when boot is unset.
func (p Props) BootOrder() ([]string, error) {
	v, ok := p["boot"]
	if !ok {
		return nil, nil
	}
	ps, err := ParsePropString(v, "legacy")
	if err != nil {
		return nil, fmt.Errorf("invalid boot '%s': %w", v, err)
	}
	if ps.Has("legacy") {
		return nil, nil
	}
	order, _ := ps.Get("order")
	var devs []string
	for _, d := range strings.FieldsFunc(order, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' }) {
		devs = append(devs, d)
	}
	return devs, nil
}

var legacyBootRE = regexp.MustCompile(`^[acdn]{1,4}$`)

// BootIndexes maps devices to their QEMU bootindex as device_bootorder does:
// order= gives 100, 101, ...; the legacy form (also the default "cdn")
// gives a hundred per letter: c the bootdisk, d every CD-ROM, n every NIC.
func (p Props) BootIndexes() (map[string]int, error) {
	res := map[string]int{}
	legacy := "cdn"
	if v, ok := p["boot"]; ok {
		ps, err := ParsePropString(v, "legacy")
		if err != nil {
			return nil, fmt.Errorf("invalid boot '%s': %w", v, err)
		}
		if l, ok := ps.Get("legacy"); ok {
			if !legacyBootRE.MatchString(l) {
				return nil, fmt.Errorf("invalid boot '%s'", v)
			}
			legacy = l
		} else {
			order, _ := p.BootOrder()
			for i, d := range order {
				res[d] = 100 + i
			}
			return res, nil
		}
	}
	idx := map[rune]int{}
	for i, r := range legacy {
		idx[r] = (i + 1) * 100
	}
	ds, err := p.Drives()
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.Interface == "efidisk" || d.Interface == "tpmstate" {
			continue
		}
		if d.IsCDROM() && !d.IsCloudinit() {
			if idx['d'] != 0 {
				res[d.Key] = idx['d']
				idx['d']++
			}
		} else if idx['c'] != 0 {
			if p["bootdisk"] == d.Key {
				res[d.Key] = idx['c']
			}
			idx['c']++
		}
	}
	if idx['n'] != 0 {
		for i := range MaxNets {
			k := "net" + strconv.Itoa(i)
			if p[k] != "" {
				res[k] = idx['n']
				idx['n']++
			}
		}
	}
	return res, nil
}

// VGA is the parsed "vga" key.
type VGA struct {
	Type      string // std (default), cirrus, vmware, qxl, qxl2-4, virtio, virtio-gl, serial0-3, none
	Memory    int    // MiB, 0 if unset
	Clipboard string
}

var vgaTypeRE = regexp.MustCompile(`^(cirrus|qxl|qxl2|qxl3|qxl4|none|serial0|serial1|serial2|serial3|std|virtio|virtio-gl|vmware)$`)

// VGA returns the display settings; Type is "std" when unset (x86, not Windows < 6).
func (p Props) VGA() (VGA, error) {
	g := VGA{Type: "std"}
	v, ok := p["vga"]
	if !ok {
		return g, nil
	}
	ps, err := ParsePropString(v, "type")
	if err != nil {
		return VGA{}, fmt.Errorf("invalid vga '%s': %w", v, err)
	}
	if t, ok := ps.Get("type"); ok {
		if !vgaTypeRE.MatchString(t) {
			return VGA{}, fmt.Errorf("invalid vga type '%s'", t)
		}
		g.Type = t
	}
	if m, ok := ps.Get("memory"); ok {
		if g.Memory, err = strconv.Atoi(m); err != nil || g.Memory < 4 || g.Memory > 512 {
			return VGA{}, fmt.Errorf("invalid vga memory '%s'", m)
		}
	}
	g.Clipboard, _ = ps.Get("clipboard")
	return g, nil
}

// IsSPICE reports a qxl display (SPICE).
func (g VGA) IsSPICE() bool { return strings.HasPrefix(g.Type, "qxl") }
