package qemu

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func resolveLVM(v string) (string, string, error) {
	_, vol, _ := strings.Cut(v, ":")
	return "/dev/pve/" + vol, "raw", nil
}

// argAfter returns every value following flag.
func argAfter(args []string, flag string) []string {
	var vs []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			vs = append(vs, args[i+1])
		}
	}
	return vs
}

func TestCommandLineWebserver(t *testing.T) {
	raw, _ := os.ReadFile("testdata/100-webserver.conf")
	c, err := Parse(100, raw)
	if err != nil {
		t.Fatal(err)
	}
	args, err := CommandLine(c, Options{KVM: true, ResolveVolume: resolveLVM})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"qemu-system-x86_64", "-id", "100", "-name", "web01,debug-threads=on", "-no-shutdown",
		"-chardev", "socket,id=qmp,path=/var/run/qemu-server/100.qmp,server=on,wait=off",
		"-mon", "chardev=qmp,mode=control", "-pidfile", "/var/run/qemu-server/100.pid"}
	if !reflect.DeepEqual(args[:len(want)], want) {
		t.Errorf("leading args = %q, want %q", args[:len(want)], want)
	}
	for flag, wantVals := range map[string][]string{
		"-smp":     {"2,sockets=1,cores=2,maxcpus=2"},
		"-m":       {"2048"},
		"-cpu":     {"qemu64,+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3"},
		"-vnc":     {"unix:/var/run/qemu-server/100.vnc,password=on"},
		"-machine": {"accel=kvm,type=pc"},
		"-smbios":  {"type=1,uuid=3f8c2b6e-1d4a-4f7e-9c2b-5a6d7e8f9012"},
		"-netdev":  {"type=tap,id=net0,ifname=tap100i0,script=/usr/libexec/qemu-server/pve-bridge,downscript=/usr/libexec/qemu-server/pve-bridgedown,vhost=on"},
		"-drive": {
			"file=/dev/pve/iso/debian-12.5.0-amd64-netinst.iso,if=none,id=drive-ide2,media=cdrom,format=raw,aio=io_uring",
			"file=/dev/pve/vm-100-disk-0,if=none,id=drive-scsi0,format=raw,cache=none,aio=io_uring,detect-zeroes=on",
		},
		"-object": {"iothread,id=iothread-virtioscsi0"},
	} {
		if got := argAfter(args, flag); !reflect.DeepEqual(got, wantVals) {
			t.Errorf("%s = %q, want %q", flag, got, wantVals)
		}
	}
	devs := strings.Join(argAfter(args, "-device"), "\n")
	for _, d := range []string{
		"vmgenid,guid=0b7e4b7a-8d1c-4a6e-b5f3-2c9d8e7f6a15",
		"usb-tablet,id=tablet,bus=uhci.0,port=1",
		"VGA,id=vga,bus=pci.0,addr=0x2",
		"virtio-scsi-pci,id=virtioscsi0,iothread=iothread-virtioscsi0",
		"scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,bootindex=100",
		"ide-cd,bus=ide.1,unit=0,drive=drive-ide2,id=ide2,bootindex=101",
		"virtio-net-pci,mac=BC:24:11:5E:3A:01,netdev=net0,bus=pci.0,addr=0x12,id=net0,rx_queue_size=1024,tx_queue_size=256,bootindex=102",
		"virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
	} {
		if !strings.Contains(devs, d) {
			t.Errorf("missing -device %s in\n%s", d, devs)
		}
	}
	if argAfter(args, "-machine")[0] != args[len(args)-1] {
		t.Error("-machine is not last")
	}
}

func TestCommandLineTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		props   Props
		opts    Options
		want    []string // substrings of the joined command line
		notWant []string
		err     error
	}{
		{
			name:  "tcg defaults",
			props: Props{},
			opts:  Options{VMID: 7, Upstream: true, QMPSocket: "/s/q", PIDFile: "/s/p", VNCSocket: "/s/v"},
			want: []string{"-name vm7,debug-threads=on", "-smp 1,sockets=1,cores=1,maxcpus=1", "-m 512", "-cpu qemu64",
				"-machine accel=tcg,type=pc", "path=/s/q,server=on", "-pidfile /s/p", "-vnc unix:/s/v,password=on",
				"virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x3"},
			notWant: []string{"-id ", "-daemonize"},
		},
		{
			name:  "user net, legacy boot, sata, lsi",
			props: Props{"net0": "e1000=BC:24:11:00:00:01,bridge=vmbr0", "sata0": "local:vm-7-disk-0,ssd=1,serial=AB%2CC", "scsi8": "local:vm-7-disk-1,cache=writethrough,discard=on", "bootdisk": "sata0", "balloon": "0", "vga": "none", "daemon": "x"},
			opts:  Options{VMID: 7, NetBackend: "user", Daemonize: true, ResolveVolume: resolveLVM},
			want: []string{"-netdev type=user,id=net0,hostname=vm7", "e1000,mac=BC:24:11:00:00:01,netdev=net0,bus=pci.0,addr=0x12,id=net0,bootindex=300",
				"ahci,id=ahci0,multifunction=on,bus=pci.0,addr=0x7", "ide-hd,bus=ahci0.0,drive=drive-sata0,id=sata0,rotation_rate=1,bootindex=101,serial=AB,,C",
				"lsi,id=scsihw1,bus=pci.0,addr=0x6", "scsi-hd,bus=scsihw1.0,scsi-id=1,drive=drive-scsi8,id=scsi8",
				"id=drive-scsi8,cache=writethrough,discard=on,format=raw,aio=io_uring,detect-zeroes=unmap",
				"-vga none -nographic", "-daemonize"},
			notWant: []string{"balloon"}, // tablet stays with vga none, as in PVE
		},
		{
			name:  "q35 ide remap, machine suffix stripped, args",
			props: Props{"machine": "pc-q35-8.1+pve0", "ide1": "local:vm-7-disk-0", "args": `-global 'kvm-pit.lost_tick_policy=discard' -foo "a b"`},
			opts:  Options{VMID: 7, ResolveVolume: resolveLVM},
			want:  []string{"ide-hd,bus=ide.2,unit=0,drive=drive-ide1", "type=pc-q35-8.1", "-machine accel=tcg,type=pc-q35-8.1 -global kvm-pit.lost_tick_policy=discard -foo a b", "usb-tablet,id=tablet,bus=ehci.0"},
		},
		{
			name:  "qxl spice upstream",
			props: Props{"vga": "qxl"},
			opts: Options{VMID: 7, Upstream: true, SpicePort: 61000, SpiceKeyFile: "/etc/pve/local/pve-ssl.key",
				SpiceCertFile: "/etc/pve/local/pve-ssl.pem", SpiceCACertFile: "/etc/pve/pve-root-ca.pem"},
			want: []string{"-device qxl-vga,id=vga,max_outputs=4,bus=pci.0,addr=0x2",
				"-vnc unix:/var/run/qemu-server/7.vnc,password=on",
				"-device virtio-serial,id=spice,bus=pci.0,addr=0x9 -chardev spicevmc,id=vdagent,name=vdagent -device virtserialport,chardev=vdagent,name=com.redhat.spice.0 " +
					"-spice tls-port=61000,addr=127.0.0.1,tls-ciphers=HIGH,x509-key-file=/etc/pve/local/pve-ssl.key,x509-cert-file=/etc/pve/local/pve-ssl.pem,x509-cacert-file=/etc/pve/pve-root-ca.pem,seamless-migration=on -device virtio-balloon-pci"},
			notWant: []string{"usb-tablet", "-global"},
		},
		{
			name:  "qxl3 linux memory, enhancements, pve build",
			props: Props{"vga": "qxl3,memory=32", "ostype": "l26", "spice_enhancements": "foldersharing=1,videostreaming=filter"},
			opts:  Options{VMID: 7, SpicePort: 61005},
			want: []string{"-global qxl-vga.ram_size=402653184 -global qxl-vga.vram_size=201326592",
				"qxl-vga,id=vga,vgamem_mb=32,ram_size_mb=128,vram_size_mb=64,max_outputs=4,bus=pci.0,addr=0x2",
				"-chardev spiceport,id=foldershare,name=org.spice-space.webdav.0 -device virtserialport,chardev=foldershare,name=org.spice-space.webdav.0",
				"-spice tls-port=61005,addr=127.0.0.1,tls-ciphers=HIGH,seamless-migration=on,streaming-video=filter"},
			notWant: []string{"x509", "qxl,id=vga1"},
		},
		{
			name:  "qxl2 windows, tablet forced",
			props: Props{"vga": "qxl2", "ostype": "win11", "tablet": "1"},
			opts:  Options{VMID: 7, SpicePort: 61001},
			want: []string{"qxl-vga,id=vga,bus=pci.0,addr=0x2", "qxl,id=vga1,ram_size=67108864,vram_size=33554432,bus=pci.0,addr=0x18",
				"usb-tablet", "-spice tls-port=61001"},
			notWant: []string{"max_outputs", "-global"},
		},
		{
			name:    "virtio has spice",
			props:   Props{"vga": "virtio,memory=16"},
			opts:    Options{VMID: 7, SpicePort: 61002},
			want:    []string{"virtio-vga,id=vga,max_hostmem=16777216,bus=pci.0,addr=0x2", "spicevmc", "-spice tls-port=61002", "usb-tablet"},
			notWant: []string{"max_outputs"},
		},
		{
			name:    "vnc clipboard",
			props:   Props{"vga": "std,clipboard=vnc"},
			want:    []string{"VGA,id=vga", "-device virtio-serial,id=spice,bus=pci.0,addr=0x9 -chardev qemu-vdagent,id=vdagent,name=vdagent,clipboard=on -device virtserialport,chardev=vdagent,name=com.redhat.spice.0"},
			notWant: []string{"-spice", "spicevmc"},
		},
		{name: "spice without port", props: Props{"vga": "qxl"}},
		{name: "spice upstream without certs", props: Props{"vga": "qxl"}, opts: Options{Upstream: true, SpicePort: 61000}},
		{name: "bad videostreaming", props: Props{"vga": "qxl", "spice_enhancements": "videostreaming=x"}, opts: Options{SpicePort: 61000}},
		{name: "clipboard on serial", props: Props{"vga": "serial0,clipboard=vnc"}},
		{name: "virgl refused", props: Props{"vga": "virtio-gl"}, err: ErrUnsupported},
		{name: "ovmf refused", props: Props{"bios": "ovmf"}, err: ErrUnsupported},
		{name: "hostpci refused", props: Props{"hostpci0": "0000:01:00.0"}, err: ErrUnsupported},
		{name: "no resolver", props: Props{"scsi0": "local:vm-7-disk-0"}},
		{name: "no mac", props: Props{"net0": "virtio,bridge=vmbr0"}},
		{name: "bad backend", props: Props{}, opts: Options{NetBackend: "vde"}},
		{name: "host cpu without kvm", props: Props{"cpu": "host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := CommandLine(&Config{VMID: 7, Props: tc.props}, tc.opts)
			if tc.want == nil {
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
					t.Fatalf("CommandLine() error = %v; want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("missing %q in\n%s", w, line)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(line, w) {
					t.Errorf("unexpected %q in\n%s", w, line)
				}
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	got, err := splitArgs(` -a 'b c'  "d \"e\"" f\ g `)
	if want := []string{"-a", "b c", `d "e"`, "f g"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("splitArgs = %q, %v; want %q", got, err, want)
	}
	if _, err := splitArgs(`'open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
