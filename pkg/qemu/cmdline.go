package qemu

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/pvetext"
)

// DefaultRunDir is where PVE keeps the per-VM sockets and pid file.
const DefaultRunDir = "/var/run/qemu-server"

// Options are the host-side inputs of CommandLine.
type Options struct {
	VMID int
	// Binary is the QEMU executable; default "qemu-system-x86_64".
	Binary string
	// KVM selects hardware virtualisation (-machine accel=kvm); false
	// selects software emulation (accel=tcg), as PVE does for kvm: 0.
	KVM bool
	// RunDir holds the default socket and pid paths; default DefaultRunDir.
	RunDir string
	// QMPSocket, PIDFile and VNCSocket default to RunDir/VMID.{qmp,pid,vnc}.
	QMPSocket string
	PIDFile   string
	VNCSocket string
	// Daemonize adds -daemonize, as PVE does. Off by default: the caller
	// then owns the process (and sees its exit and stderr).
	Daemonize bool
	// ResolveVolume maps a drive's volume ID (or absolute path) to the path
	// QEMU opens and its format ("raw", "qcow2", ...). Required if the config
	// has drives with a volume other than "none" and "cdrom".
	ResolveVolume func(volid string) (path, format string, err error)
	// NetBackend is "user" (slirp, needs no privileges or bridges; PVE's
	// choice for a NIC without bridge) or "tap" (PVE's tapVMIDiN with the
	// pve-bridge scripts). Default "tap".
	NetBackend string
	// Upstream says the binary is upstream QEMU (e.g. Debian's) rather than
	// PVE's pve-qemu-kvm: options only PVE's build knows (-id) are left out.
	Upstream bool
	// BootSplash, if set, is passed as the boot menu splash image (PVE uses
	// /usr/share/qemu-server/bootsplash.jpg).
	BootSplash string
	// SpicePort is the TLS port of the SPICE server, for displays with
	// SPICE (see SpiceDisplay); required for them (PVE's next_spice_port,
	// allocated by the caller).
	SpicePort int
	// SpiceKeyFile, SpiceCertFile and SpiceCACertFile are the node's TLS key,
	// certificate and CA certificate for SPICE (PVE: /etc/pve/local/pve-ssl.key,
	// /etc/pve/local/pve-ssl.pem, /etc/pve/pve-root-ca.pem, which PVE's QEMU
	// build uses by default). Required for SPICE displays with Upstream QEMU.
	SpiceKeyFile    string
	SpiceCertFile   string
	SpiceCACertFile string
}

// SpiceAddr is the address QEMU's SPICE server listens on (PVE: localhost
// of the node's address family; IPv4 here).
const SpiceAddr = "127.0.0.1"

// SpiceDisplay reports whether p's display runs a SPICE server (PVE's
// is_spice in config_to_command: qxl, qxl2-4 and virtio; virtio-gl is
// refused by CommandLine).
func SpiceDisplay(p Props) (bool, error) {
	vga, err := p.VGA()
	if err != nil {
		return false, err
	}
	return vga.IsSPICE() || strings.HasPrefix(vga.Type, "virtio"), nil
}

// ErrUnsupported marks config features CommandLine does not implement yet.
var ErrUnsupported = errors.New("not supported")

func unsupported(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrUnsupported)
}

// pciAddr is PVE's fixed slot map for bus pci.0 of the i440fx machine
// (PVE::QemuServer::PCI::get_pci_addr_map), for the devices we place.
var pciAddr = map[string]int{
	"vga": 2, "balloon0": 3, "watchdog": 4, "scsihw0": 5, "scsihw1": 6, "ahci0": 7,
	"qga0": 8, "virtio0": 10, "virtio1": 11, "virtio2": 12, "virtio3": 13, "virtio4": 14, "virtio5": 15,
	"spice": 9, "net0": 18, "net1": 19, "net2": 20, "net3": 21, "net4": 22, "net5": 23,
	"vga1": 24, "vga2": 25, "vga3": 26,
}

var vgaDevice = map[string]string{"cirrus": "cirrus-vga", "std": "VGA", "vmware": "vmware-svga", "virtio": "virtio-vga"}

type cmdBuilder struct {
	cfg  *Config
	p    Props
	opts Options
	q35  bool
	cmd  []string // options in PVE's leading part
	devs []string // devices, appended after the leading part
}

func (b *cmdBuilder) addr(id string) string {
	if b.q35 {
		return "" // no pve-q35 readconfig here: let QEMU place devices on pcie.0
	}
	if slot, ok := pciAddr[id]; ok {
		return fmt.Sprintf(",bus=pci.0,addr=0x%x", slot)
	}
	return ""
}

// CommandLine builds the QEMU invocation for cfg's current configuration in
// the layout of PVE's config_to_command: -id, -name, -no-shutdown, the QMP
// chardev/monitor, -pidfile, (-daemonize), -smbios, -smp, -nodefaults,
// -boot, the display (-vnc unix socket or -nographic), -cpu, -m, then the
// devices (USB tablet, VGA, balloon, controllers, -drive/-device pairs,
// -netdev/-device pairs) and finally -machine and the config's args.
//
// Differences from PVE, on purpose: the machine type is the config's (minus
// any +pveN suffix) or plain "pc"/"q35" rather than a pinned version, drives
// use -drive (PVE's layout before machine 10.0) rather than -blockdev, and on
// q35 there is no pve-q35 readconfig, so QEMU places the PCI devices.
// A SPICE display (qxl, qxl2-4, virtio) gets PVE's devices and -spice with
// TLS on Options.SpicePort; with Upstream QEMU the certificate files are
// named (PVE's QEMU build defaults to them).
// Features that need host services (VirGL, OVMF, TPM, PCI/USB passthrough,
// NUMA, hotplug of CPUs and memory, guest agent, qmeventd) are refused with
// ErrUnsupported rather than silently dropped.
func CommandLine(cfg *Config, opts Options) ([]string, error) {
	if cfg == nil || cfg.Props == nil {
		return nil, fmt.Errorf("build command line: no config")
	}
	if opts.VMID <= 0 {
		opts.VMID = cfg.VMID
	}
	if opts.Binary == "" {
		opts.Binary = "qemu-system-x86_64"
	}
	if opts.RunDir == "" {
		opts.RunDir = DefaultRunDir
	}
	id := strconv.Itoa(opts.VMID)
	if opts.QMPSocket == "" {
		opts.QMPSocket = filepath.Join(opts.RunDir, id+".qmp")
	}
	if opts.PIDFile == "" {
		opts.PIDFile = filepath.Join(opts.RunDir, id+".pid")
	}
	if opts.VNCSocket == "" {
		opts.VNCSocket = filepath.Join(opts.RunDir, id+".vnc")
	}
	switch opts.NetBackend {
	case "":
		opts.NetBackend = "tap"
	case "user", "tap":
	default:
		return nil, fmt.Errorf("build command line: unknown net backend '%s'", opts.NetBackend)
	}
	b := &cmdBuilder{cfg: cfg, p: cfg.Props, opts: opts}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("build command line for VM %d: %w", opts.VMID, err)
	}
	return append(b.cmd, b.devs...), nil
}

func (b *cmdBuilder) build() error {
	p, opts := b.p, b.opts
	for _, k := range []string{"hostpci0", "usb0", "numa0", "tpmstate0", "rng0", "audio0", "ivshmem", "virtiofs0", "amd-sev", "intel-tdx", "affinity", "hookscript"} {
		if _, ok := p[k]; ok {
			return unsupported("option %s", k)
		}
	}
	if p["bios"] == "ovmf" {
		return unsupported("bios ovmf")
	}
	if isTrue1(p["numa"]) {
		return unsupported("numa")
	}
	if hp, ok := p["hotplug"]; ok && (strings.Contains(hp, "cpu") || strings.Contains(hp, "memory")) {
		return unsupported("hotplug of cpu or memory")
	}
	machine := strings.TrimSpace(p["machine"])
	if machine != "" {
		ps, err := ParsePropString(machine, "type")
		if err != nil {
			return fmt.Errorf("invalid machine '%s': %w", machine, err)
		}
		if len(ps.Keys) > 1 {
			return unsupported("machine options %s", machine)
		}
		machine, _ = ps.Get("type")
		if i := strings.Index(machine, "+pve"); i >= 0 {
			machine = machine[:i]
		}
	}
	if machine == "" {
		machine = "pc"
	}
	b.q35 = strings.Contains(machine, "q35")

	b.cmd = append(b.cmd, opts.Binary)
	if !opts.Upstream {
		b.cmd = append(b.cmd, "-id", strconv.Itoa(opts.VMID))
	}
	b.cmd = append(b.cmd, "-name", b.cfg.Name()+",debug-threads=on", "-no-shutdown",
		"-chardev", "socket,id=qmp,path="+opts.QMPSocket+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-pidfile", opts.PIDFile)
	if opts.Daemonize {
		b.cmd = append(b.cmd, "-daemonize")
	}
	if s, ok := p["smbios1"]; ok {
		arg, err := smbiosArg(s)
		if err != nil {
			return err
		}
		b.cmd = append(b.cmd, "-smbios", arg)
	}
	if g := p["vmgenid"]; g != "" && g != "0" {
		b.devs = append(b.devs, "-device", "vmgenid,guid="+g)
	}

	vga, err := p.VGA()
	if err != nil {
		return err
	}
	if vga.Type == "virtio-gl" {
		return unsupported("vga %s (VirGL)", p["vga"])
	}
	if vga.Clipboard != "" {
		if vga.Clipboard != "vnc" {
			return fmt.Errorf("invalid vga clipboard '%s'", vga.Clipboard)
		}
		if !vgaClipboardRE.MatchString(vga.Type) {
			return fmt.Errorf("vga type %s is not compatible with VNC clipboard", vga.Type)
		}
	}
	qxlnum := 0
	if vga.IsSPICE() {
		qxlnum = 1
		if n := strings.TrimPrefix(vga.Type, "qxl"); n != "" {
			qxlnum, _ = strconv.Atoi(n)
		}
	}
	serialVGA := strings.HasPrefix(vga.Type, "serial")

	tablet := !serialVGA && qxlnum == 0 // PVE: not needed with SPICE
	if v, ok := p["tablet"]; ok {
		tablet = isTrue1(v)
	}
	if tablet {
		if b.q35 {
			b.devs = append(b.devs, "-device", "usb-ehci,id=ehci", "-device", "usb-tablet,id=tablet,bus=ehci.0,port=1")
		} else {
			b.devs = append(b.devs, "-device", "piix3-usb-uhci,id=uhci,bus=pci.0,addr=0x1.0x2", "-device", "usb-tablet,id=tablet,bus=uhci.0,port=1")
		}
	}

	boot, err := p.BootIndexes()
	if err != nil {
		return err
	}

	for i := range MaxSerial {
		k := "serial" + strconv.Itoa(i)
		v, ok := p[k]
		if !ok {
			continue
		}
		if v != "socket" {
			return unsupported("%s %s (host serial device)", k, v)
		}
		sock := filepath.Join(opts.RunDir, fmt.Sprintf("%d.%s", opts.VMID, k))
		b.devs = append(b.devs, "-chardev", "socket,id="+k+",path="+sock+",server=on,wait=off", "-device", "isa-serial,chardev="+k)
	}

	sockets, err := p.Sockets()
	if err != nil {
		return err
	}
	cores, err := p.Cores()
	if err != nil {
		return err
	}
	vcpus, err := p.VCPUs()
	if err != nil {
		return err
	}
	b.cmd = append(b.cmd, "-smp", fmt.Sprintf("%d,sockets=%d,cores=%d,maxcpus=%d", vcpus, sockets, cores, sockets*cores))
	b.cmd = append(b.cmd, "-nodefaults")
	bootArg := "menu=on,strict=on,reboot-timeout=1000"
	if opts.BootSplash != "" {
		bootArg += ",splash=" + opts.BootSplash
	}
	b.cmd = append(b.cmd, "-boot", bootArg)

	var machineFlags []string
	if v, ok := p["acpi"]; ok && !isTrue1(v) {
		machineFlags = append(machineFlags, "acpi=off")
	}
	if v, ok := p["reboot"]; ok && !isTrue1(v) {
		b.cmd = append(b.cmd, "-no-reboot")
	}

	if vga.Type != "none" && !serialVGA {
		s, err := b.vgaDevice(vga, 0, qxlnum)
		if err != nil {
			return err
		}
		b.devs = append(b.devs, "-device", s)
		b.cmd = append(b.cmd, "-vnc", "unix:"+opts.VNCSocket+",password=on")
	} else {
		if vga.Type == "none" {
			b.cmd = append(b.cmd, "-vga", "none")
		}
		b.cmd = append(b.cmd, "-nographic")
	}

	cpu, err := cpuArg(p["cpu"], opts.KVM)
	if err != nil {
		return err
	}
	b.cmd = append(b.cmd, "-cpu", cpu)

	mem, err := p.Memory()
	if err != nil {
		return err
	}
	b.cmd = append(b.cmd, "-m", strconv.Itoa(mem))
	if isTrue1(p["freeze"]) {
		b.cmd = append(b.cmd, "-S")
	}
	if k, ok := p["keyboard"]; ok {
		b.cmd = append(b.cmd, "-k", k)
	}

	if err := b.spice(vga, qxlnum); err != nil {
		return err
	}

	if v, ok := p["balloon"]; !ok || v != "0" {
		b.devs = append(b.devs, "-device", "virtio-balloon-pci,id=balloon0"+b.addr("balloon0")+",free-page-reporting=on")
	}
	if wd, ok := p["watchdog"]; ok {
		ps, err := ParsePropString(wd, "model")
		if err != nil {
			return fmt.Errorf("invalid watchdog '%s': %w", wd, err)
		}
		model, _ := ps.Get("model")
		if model == "" {
			model = "i6300esb"
		}
		b.devs = append(b.devs, "-device", model+b.addr("watchdog"))
		if a, ok := ps.Get("action"); ok {
			b.devs = append(b.devs, "-watchdog-action", a)
		}
	}

	if err := b.agent(); err != nil {
		return err
	}
	if err := b.drives(boot); err != nil {
		return err
	}
	if err := b.nets(boot); err != nil {
		return err
	}

	if opts.KVM {
		machineFlags = append(machineFlags, "accel=kvm")
	} else {
		machineFlags = append(machineFlags, "accel=tcg")
	}
	machineFlags = append(machineFlags, "type="+machine)
	b.devs = append(b.devs, "-machine", strings.Join(machineFlags, ","))

	if a := p["args"]; a != "" {
		extra, err := splitArgs(a)
		if err != nil {
			return fmt.Errorf("invalid args: %w", err)
		}
		b.devs = append(b.devs, extra...)
	}
	return nil
}

var vgaClipboardRE = regexp.MustCompile(`^(std|cirrus|vmware|virtio|qxl)`)

// vgaDevice follows print_vga_device: display id (0 for the first) of a
// display with qxlnum qxl heads (0: not qxl).
func (b *cmdBuilder) vgaDevice(vga VGA, id, qxlnum int) (string, error) {
	dev, ok := vgaDevice[vga.Type]
	maxOutputs := ""
	if qxlnum > 0 {
		dev, ok = "qxl-vga", true
		if id > 0 {
			dev = "qxl"
		}
		if ost := b.p["ostype"]; ost == "" || ost == "other" || (len(ost) == 3 && ost[0] == 'l') {
			maxOutputs = ",max_outputs=4" // machine version >= 4.1
		}
	}
	if !ok {
		return "", unsupported("vga %s", vga.Type)
	}
	vgaid := "vga"
	if id > 0 {
		vgaid += strconv.Itoa(id)
	}
	s := dev + ",id=" + vgaid
	switch {
	case vga.Memory > 0 && strings.HasPrefix(vga.Type, "virtio"):
		s += ",max_hostmem=" + strconv.Itoa(vga.Memory*1024*1024)
	case vga.Memory > 0 && qxlnum > 0:
		s += fmt.Sprintf(",vgamem_mb=%d,ram_size_mb=%d,vram_size_mb=%d", vga.Memory, vga.Memory*4, vga.Memory*2)
	case vga.Memory > 0:
		s += ",vgamem_mb=" + strconv.Itoa(vga.Memory)
	case qxlnum > 0 && id > 0:
		s += ",ram_size=67108864,vram_size=33554432"
	}
	s += maxOutputs + b.addr(vgaid)
	if dev == "VGA" && isWindows(b.p["ostype"]) {
		s += ",edid=off"
	}
	return s, nil
}

// spiceVideoStreaming are the values of spice_enhancements' videostreaming.
var spiceVideoStreaming = map[string]bool{"off": true, "all": true, "filter": true}

// spice adds PVE's SPICE devices: further qxl heads, the virtio-serial
// port of the SPICE (or VNC clipboard) agent, folder sharing, and -spice.
func (b *cmdBuilder) spice(vga VGA, qxlnum int) error {
	isSpice := qxlnum > 0 || strings.HasPrefix(vga.Type, "virtio")
	vncClip := vga.Clipboard == "vnc"
	if !isSpice && !vncClip {
		return nil // PVE ignores spice_enhancements without a SPICE display
	}
	if qxlnum > 1 {
		if isWindows(b.p["ostype"]) {
			for i := 1; i < qxlnum; i++ {
				s, err := b.vgaDevice(vga, i, qxlnum)
				if err != nil {
					return err
				}
				b.devs = append(b.devs, "-device", s)
			}
		} else {
			ram, vram := "134217728", "67108864"
			if vga.Memory > 0 {
				ram = strconv.Itoa(qxlnum * 4 * vga.Memory * 1024 * 1024)
				vram = strconv.Itoa(qxlnum * 2 * vga.Memory * 1024 * 1024)
			}
			b.cmd = append(b.cmd, "-global", "qxl-vga.ram_size="+ram, "-global", "qxl-vga.vram_size="+vram)
		}
	}
	b.devs = append(b.devs, "-device", "virtio-serial,id=spice"+b.addr("spice"))
	if vncClip {
		b.devs = append(b.devs, "-chardev", "qemu-vdagent,id=vdagent,name=vdagent,clipboard=on")
	} else {
		b.devs = append(b.devs, "-chardev", "spicevmc,id=vdagent,name=vdagent")
	}
	b.devs = append(b.devs, "-device", "virtserialport,chardev=vdagent,name=com.redhat.spice.0")
	if !isSpice {
		return nil
	}
	if b.opts.SpicePort <= 0 || b.opts.SpicePort > 65535 {
		return fmt.Errorf("display %s needs a SPICE port", vga.Type)
	}
	ps, err := ParsePropString(b.p["spice_enhancements"], "")
	if err != nil {
		return fmt.Errorf("invalid spice_enhancements '%s': %w", b.p["spice_enhancements"], err)
	}
	for _, k := range ps.Keys {
		if k != "foldersharing" && k != "videostreaming" {
			return fmt.Errorf("invalid spice_enhancements key '%s'", k)
		}
	}
	fs, ok := ps.Bool("foldersharing")
	if _, has := ps.Values["foldersharing"]; has && !ok {
		return fmt.Errorf("invalid spice_enhancements foldersharing '%s'", ps.Values["foldersharing"])
	}
	if fs {
		b.devs = append(b.devs, "-chardev", "spiceport,id=foldershare,name=org.spice-space.webdav.0",
			"-device", "virtserialport,chardev=foldershare,name=org.spice-space.webdav.0")
	}
	opts := fmt.Sprintf("tls-port=%d,addr=%s,tls-ciphers=HIGH", b.opts.SpicePort, SpiceAddr)
	if b.opts.Upstream || b.opts.SpiceKeyFile != "" {
		if b.opts.SpiceKeyFile == "" || b.opts.SpiceCertFile == "" || b.opts.SpiceCACertFile == "" {
			return fmt.Errorf("display %s needs the SPICE TLS key, certificate and CA files", vga.Type)
		}
		opts += ",x509-key-file=" + qemuEscape(b.opts.SpiceKeyFile) + ",x509-cert-file=" + qemuEscape(b.opts.SpiceCertFile) +
			",x509-cacert-file=" + qemuEscape(b.opts.SpiceCACertFile)
	}
	opts += ",seamless-migration=on"
	if v, ok := ps.Get("videostreaming"); ok && v != "" {
		if !spiceVideoStreaming[v] {
			return fmt.Errorf("invalid spice_enhancements videostreaming '%s'", v)
		}
		opts += ",streaming-video=" + v
	}
	b.devs = append(b.devs, "-spice", opts)
	return nil
}

func isTrue1(v string) bool {
	t, ok := parseBool(v)
	return ok && t
}

// agent adds the guest agent channel (socket RunDir/VMID.qga) for "agent: 1".
func (b *cmdBuilder) agent() error {
	v, ok := b.p["agent"]
	if !ok {
		return nil
	}
	ps, err := ParsePropString(v, "enabled")
	if err != nil {
		return fmt.Errorf("invalid agent '%s': %w", v, err)
	}
	if !isTrue(ps, "enabled") {
		return nil
	}
	sock := filepath.Join(b.opts.RunDir, strconv.Itoa(b.opts.VMID)+".qga")
	b.devs = append(b.devs, "-chardev", "socket,path="+sock+",server=on,wait=off,id=qga0")
	switch typ, _ := ps.Get("type"); typ {
	case "", "virtio":
		b.devs = append(b.devs, "-device", "virtio-serial,id=qga0"+b.addr("qga0"),
			"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0")
	case "isa":
		b.devs = append(b.devs, "-device", "isa-serial,chardev=qga0")
	default:
		return fmt.Errorf("invalid agent type '%s'", typ)
	}
	return nil
}

// builtinCPU are PVE's own x86 models: QEMU's qemu64 plus flags
// (CPUConfig.pm, builtin_models_by_arch).
var builtinCPU = map[string]string{
	"x86-64-v2":     "+popcnt,+pni,+sse4.1,+sse4.2,+ssse3",
	"x86-64-v2-AES": "+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3",
	"x86-64-v3":     "+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3,+avx,+avx2,+bmi1,+bmi2,+f16c,+fma,+abm,+movbe,+xsave",
	"x86-64-v4": "+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3,+avx,+avx2,+bmi1,+bmi2,+f16c,+fma,+abm,+movbe,+xsave," +
		"+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl",
}

func isWindows(ostype string) bool {
	return ostype == "wxp" || ostype == "w2k" || ostype == "w2k3" || ostype == "w2k8" || ostype == "wvista" ||
		ostype == "win7" || ostype == "win8" || ostype == "win10" || ostype == "win11"
}

// cpuArg builds -cpu from the model of the "cpu" key (flags are not
// translated yet); defaults as PVE: kvm64 under KVM, qemu64 under TCG.
func cpuArg(v string, kvm bool) (string, error) {
	model := "qemu64"
	if kvm {
		model = "kvm64"
	}
	if v == "" {
		return model, nil
	}
	ps, err := ParsePropString(v, "cputype")
	if err != nil {
		return "", fmt.Errorf("invalid cpu '%s': %w", v, err)
	}
	if len(ps.Keys) > 1 {
		return "", unsupported("cpu options %s", v)
	}
	t, _ := ps.Get("cputype")
	if strings.HasPrefix(t, "custom-") {
		return "", unsupported("custom cpu model %s", t)
	}
	if t == "host" && !kvm {
		return "", fmt.Errorf("cpu type host needs KVM")
	}
	if flags, ok := builtinCPU[t]; ok {
		return "qemu64," + flags, nil
	}
	return t, nil
}

// smbiosArg renders "-smbios type=1,..." from smbios1: keys sorted, base64
// values decoded, commas doubled, empty values dropped.
func smbiosArg(v string) (string, error) {
	ps, err := ParsePropString(v, "")
	if err != nil {
		return "", fmt.Errorf("invalid smbios1 '%s': %w", v, err)
	}
	isB64 := isTrue(ps, "base64")
	var keys []string
	for _, k := range ps.Keys {
		if k != "base64" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	s := "type=1"
	for _, k := range keys {
		val := ps.Values[k]
		if isB64 && k != "uuid" {
			d, err := base64.StdEncoding.DecodeString(val)
			if err != nil {
				return "", fmt.Errorf("invalid smbios1 %s: %w", k, err)
			}
			val = string(d)
		}
		val = strings.ReplaceAll(val, ",", ",,")
		if val != "" && val != "0" {
			s += "," + k + "=" + val
		}
	}
	return s, nil
}

func (b *cmdBuilder) drives(boot map[string]int) error {
	ds, err := b.p.Drives()
	if err != nil {
		return err
	}
	scsihw := b.p["scsihw"]
	if scsihw == "" {
		scsihw = "lsi"
	}
	scsiCtl := map[int]bool{}
	ahciCtl := map[int]bool{}
	for _, d := range ds {
		switch d.Interface {
		case "efidisk":
			continue // only used with OVMF, refused above
		case "tpmstate":
			return unsupported("tpmstate0")
		}
		path, format, err := b.resolve(d)
		if err != nil {
			return err
		}
		if d.Interface == "scsi" {
			maxdev := 256
			prefix := "scsihw"
			switch {
			case strings.HasPrefix(scsihw, "lsi"):
				maxdev = 7
			case scsihw == "virtio-scsi-single":
				maxdev, prefix = 1, "virtioscsi"
			}
			ctl := d.Index / maxdev
			if !scsiCtl[ctl] {
				scsiCtl[ctl] = true
				typ := scsihw
				if typ == "virtio-scsi-single" {
					typ = "virtio-scsi-pci"
				}
				id := prefix + strconv.Itoa(ctl)
				s := typ + ",id=" + id + b.addr(id)
				if scsihw == "virtio-scsi-single" {
					if isTrue(d.Opts, "iothread") {
						s += ",iothread=iothread-" + id
						b.cmd = append(b.cmd, "-object", "iothread,id=iothread-"+id)
					}
					if q, ok := d.Opts.Get("queues"); ok {
						s += ",num_queues=" + q
					}
				}
				b.devs = append(b.devs, "-device", s)
			}
		}
		if d.Interface == "sata" {
			ctl := d.Index / MaxSATA
			if !ahciCtl[ctl] {
				ahciCtl[ctl] = true
				id := "ahci" + strconv.Itoa(ctl)
				b.devs = append(b.devs, "-device", "ahci,id="+id+",multifunction=on"+b.addr(id))
			}
		}
		if d.Interface == "virtio" && isTrue(d.Opts, "iothread") {
			b.cmd = append(b.cmd, "-object", "iothread,id=iothread-"+d.Key)
		}
		b.devs = append(b.devs, "-drive", driveArg(d, path, format))
		dev, err := b.driveDevice(d, scsihw, boot[d.Key])
		if err != nil {
			return err
		}
		b.devs = append(b.devs, "-device", dev)
	}
	return nil
}

func (b *cmdBuilder) resolve(d Drive) (path, format string, err error) {
	switch d.Volume {
	case "none":
		return "", "", nil
	case "cdrom":
		return "/dev/cdrom", "", nil
	}
	if b.opts.ResolveVolume == nil {
		return "", "", fmt.Errorf("%s: no volume resolver for '%s'", d.Key, d.Volume)
	}
	path, format, err = b.opts.ResolveVolume(d.Volume)
	if err != nil {
		return "", "", fmt.Errorf("%s: resolve volume '%s': %w", d.Key, d.Volume, err)
	}
	if f, ok := d.Opts.Get("format"); ok {
		format = f
	}
	return path, format, nil
}

// driveArg follows print_drive_commandline_full.
func driveArg(d Drive, path, format string) string {
	var s strings.Builder
	if path != "" {
		s.WriteString("file=" + strings.ReplaceAll(path, ",", ",,") + ",")
	}
	s.WriteString("if=none,id=drive-" + d.Key)
	for _, o := range []string{"media", "cache", "rerror", "werror", "discard"} {
		if v, ok := d.Opts.Get(o); ok {
			s.WriteString("," + o + "=" + v)
		}
	}
	if v, ok := d.Opts.Bool("snapshot"); ok {
		s.WriteString(",snapshot=" + onOff(v))
	}
	if v, ok := d.Opts.Bool("ro"); ok {
		s.WriteString(",readonly=" + onOff(v))
	}
	for _, t := range []struct{ dir, qmp string }{{"", "-total"}, {"_rd", "-read"}, {"_wr", "-write"}} {
		if v, err := strconv.ParseFloat(d.Opts.Values["mbps"+t.dir], 64); err == nil && v != 0 {
			fmt.Fprintf(&s, ",throttling.bps%s=%d", t.qmp, int64(v*1024*1024))
		}
		if v, err := strconv.ParseFloat(d.Opts.Values["mbps"+t.dir+"_max"], 64); err == nil && v != 0 {
			fmt.Fprintf(&s, ",throttling.bps%s-max=%d", t.qmp, int64(v*1024*1024))
		}
		for _, o := range []struct{ key, qmp string }{
			{"bps" + t.dir + "_max_length", "bps" + t.qmp + "-max-length"},
			{"iops" + t.dir, "iops" + t.qmp},
			{"iops" + t.dir + "_max", "iops" + t.qmp + "-max"},
			{"iops" + t.dir + "_max_length", "iops" + t.qmp + "-max-length"},
		} {
			if v := d.Opts.Values[o.key]; v != "" && v != "0" {
				s.WriteString(",throttling." + o.qmp + "=" + v)
			}
		}
	}
	if format != "" {
		s.WriteString(",format=" + format)
	}
	if cache, _ := d.Opts.Get("cache"); cache == "" && !d.IsCDROM() {
		s.WriteString(",cache=none") // drive_uses_cache_direct
	}
	aio, ok := d.Opts.Get("aio")
	if !ok {
		aio = "io_uring" // storage_allows_io_uring_default for dir/zfs/nfs-like storages
	}
	s.WriteString(",aio=" + aio)
	if !d.IsCDROM() {
		dz := "on"
		if v, ok := d.Opts.Bool("detect_zeroes"); ok && !v {
			dz = "off"
		} else if disc, ok := d.Opts.Get("discard"); ok && disc != "" {
			if disc == "on" {
				dz = "unmap"
			}
		}
		s.WriteString(",detect-zeroes=" + dz)
	}
	return s.String()
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// driveDevice follows print_drivedevice_full (layout before machine 10.0).
func (b *cmdBuilder) driveDevice(d Drive, scsihw string, bootindex int) (string, error) {
	var s string
	switch d.Interface {
	case "virtio":
		s = "virtio-blk-pci,drive=drive-" + d.Key + ",id=" + d.Key + b.addr(d.Key)
		if isTrue(d.Opts, "iothread") {
			s += ",iothread=iothread-" + d.Key
		}
	case "scsi":
		maxdev, prefix := 256, "scsihw"
		switch {
		case strings.HasPrefix(scsihw, "lsi"):
			maxdev = 7
		case scsihw == "virtio-scsi-single":
			maxdev, prefix = 1, "virtioscsi"
		}
		ctl, unit := d.Index/maxdev, d.Index%maxdev
		typ := "hd"
		if d.IsCDROM() {
			typ = "cd"
		}
		bus := prefix + strconv.Itoa(ctl) + ".0"
		if strings.HasPrefix(scsihw, "lsi") || scsihw == "pvscsi" {
			s = fmt.Sprintf("scsi-%s,bus=%s,scsi-id=%d", typ, bus, unit)
		} else {
			s = fmt.Sprintf("scsi-%s,bus=%s,channel=0,scsi-id=0,lun=%d", typ, bus, d.Index)
		}
		s += ",drive=drive-" + d.Key + ",id=" + d.Key
		if isTrue(d.Opts, "ssd") && typ == "hd" {
			s += ",rotation_rate=1"
		}
		if w := d.Opts.Values["wwn"]; w != "" {
			s += ",wwn=" + w
		}
		for _, o := range []string{"vendor", "product"} {
			if v := d.Opts.Values[o]; v != "" {
				s += "," + o + "=" + v
			}
		}
	case "ide", "sata":
		maxdev := 2
		if d.Interface == "sata" {
			maxdev = MaxSATA
		}
		ctl, unit := d.Index/maxdev, d.Index%maxdev
		if b.q35 && d.Interface == "ide" {
			ctl += 2 * (unit % 2)
			unit = 0
		}
		typ := "hd"
		if d.IsCDROM() {
			typ = "cd"
		}
		s = "ide-" + typ
		if d.Interface == "ide" {
			s += fmt.Sprintf(",bus=ide.%d,unit=%d", ctl, unit)
		} else {
			s += fmt.Sprintf(",bus=ahci%d.%d", ctl, unit)
		}
		s += ",drive=drive-" + d.Key + ",id=" + d.Key
		if typ == "hd" {
			if m := d.Opts.Values["model"]; m != "" {
				s += ",model=" + qemuEscape(pvetext.Decode(m))
			}
			if isTrue(d.Opts, "ssd") {
				s += ",rotation_rate=1"
			}
		}
		if w := d.Opts.Values["wwn"]; w != "" {
			s += ",wwn=" + w
		}
	default:
		return "", unsupported("drive interface %s", d.Interface)
	}
	if bootindex > 0 {
		s += ",bootindex=" + strconv.Itoa(bootindex)
	}
	if serial := d.Opts.Values["serial"]; serial != "" {
		s += ",serial=" + qemuEscape(pvetext.Decode(serial))
	}
	return s, nil
}

func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func (b *cmdBuilder) nets(boot map[string]int) error {
	ns, err := b.p.Nets()
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.MAC == "" {
			return fmt.Errorf("%s: no MAC address", n.Key)
		}
		var netdev string
		if b.opts.NetBackend == "user" {
			netdev = "type=user,id=" + n.Key + ",hostname=" + qemuEscape(b.cfg.Name())
		} else {
			if n.Bridge == "" {
				netdev = "type=user,id=" + n.Key + ",hostname=" + qemuEscape(b.cfg.Name())
			} else {
				ifname := fmt.Sprintf("tap%di%d", b.opts.VMID, n.Index)
				if len(ifname) >= 16 {
					return fmt.Errorf("interface name '%s' is too long (max 15 character)", ifname)
				}
				netdev = "type=tap,id=" + n.Key + ",ifname=" + ifname +
					",script=/usr/libexec/qemu-server/pve-bridge,downscript=/usr/libexec/qemu-server/pve-bridgedown"
				if b.opts.KVM && n.Model == "virtio" {
					netdev += ",vhost=on"
				}
			}
		}
		if n.Queues > 0 && n.Model == "virtio" && strings.HasPrefix(netdev, "type=tap") {
			netdev += ",queues=" + strconv.Itoa(n.Queues) // user netdevs have no queues
		}
		b.devs = append(b.devs, "-netdev", netdev)

		dev := n.Model
		if dev == "virtio" {
			dev = "virtio-net-pci"
		}
		s := dev + ",mac=" + n.MAC + ",netdev=" + n.Key + b.addr(n.Key) + ",id=" + n.Key
		if n.Model == "virtio" {
			if n.Queues > 1 {
				s += fmt.Sprintf(",vectors=%d,mq=on,packed=on", 2*n.Queues+2)
			}
			s += ",rx_queue_size=1024,tx_queue_size=256"
		}
		if bi := boot[n.Key]; bi > 0 {
			s += ",bootindex=" + strconv.Itoa(bi)
		}
		b.devs = append(b.devs, "-device", s)
	}
	return nil
}

// splitArgs splits the "args" value into words as a POSIX shell would for
// plain words, single and double quotes and backslashes (no expansion).
func splitArgs(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
