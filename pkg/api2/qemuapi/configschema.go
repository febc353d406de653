package qemuapi

import (
	"maps"

	"github.com/pvenode/pvenode/pkg/api"
)

// configProps are the VM config keys as API parameters (PVE:
// PVE::QemuServer::json_config_properties), shared by create and update.
// Numbered keys are declared once as "key[n]" with their count.
func configProps() map[string]*api.Schema {
	return map[string]*api.Schema{
		"acpi":               api.Bool().Def(1).Opt().TT("<boolean>"),
		"affinity":           api.Str().Fmt("pve-cpuset").Opt().TT("<string>"),
		"agent":              api.Str().Fmt(fmtAgent()).Opt().TT("[enabled=]<1|0> [,freeze-fs=<1|0>] [,fstrim_cloned_disks=<1|0>] [,type=<virtio|isa>]"),
		"allow-ksm":          api.Bool().Def(1).Opt().TT("<boolean>"),
		"amd-sev":            api.Str().Fmt("pve-qemu-sev-fmt").Opt().TT("[type=]<sev-type> [,allow-smt=<1|0>] [,kernel-hashes=<1|0>] [,no-debug=<1|0>] [,no-key-sharing=<1|0>]"),
		"arch":               api.Str().Enums("x86_64", "aarch64").Opt(),
		"args":               api.Str().Opt().TT("<string>"),
		"audio0":             api.Str().Fmt(fmtAudio0()).Opt().TT("device=<ich9-intel-hda|intel-hda|AC97> [,driver=<spice|none>]"),
		"autostart":          api.Bool().Def(0).Opt().TT("<boolean>"),
		"balloon":            api.Int().Min(0).Opt().TT("<integer> (0 - N)"),
		"bios":               api.Str().Enums("seabios", "ovmf").Def("seabios").Opt(),
		"boot":               api.Str().Fmt("pve-qm-boot").Opt().TT("[[legacy=]<[acdn]{1,4}>] [,order=<device[;device...]>]"),
		"bootdisk":           api.Str().Fmt("pve-qm-bootdisk").Pat("(ide|sata|scsi|virtio)\\d+").Opt(),
		"cdrom":              api.Str().Fmt("pve-qm-ide").Opt().TT("<volume>"),
		"cicustom":           api.Str().Fmt("pve-qm-cicustom").Opt().TT("[meta=<volume>] [,network=<volume>] [,user=<volume>] [,vendor=<volume>]"),
		"cipassword":         api.Str().Opt().TT("<string>"),
		"citype":             api.Str().Enums("configdrive2", "nocloud", "opennebula").Opt(),
		"ciupgrade":          api.Bool().Def(1).Opt().TT("<boolean>"),
		"ciuser":             api.Str().Opt().TT("<string>"),
		"cores":              api.Int().Min(1).Def(1).Opt().TT("<integer> (1 - N)"),
		"cpu":                api.Str().Fmt("pve-vm-cpu-conf").Opt().TT("[[cputype=]<string>] [,flags=<+FLAG[;-FLAG...]>] [,guest-phys-bits=<integer>] [,hidden=<1|0>] [,hv-vendor-id=<vendor-id>] [,phys-bits=<8-64|host>] [,reported-model=<enum>]"),
		"cpulimit":           api.Num().Range(0, 128).Def(0).Opt().TT("<number> (0 - 128)"),
		"cpuunits":           api.Int().Range(1, 262144).Def("cgroup v1: 1024, cgroup v2: 100").Opt().TT("<integer> (1 - 262144)"),
		"description":        api.Str().MaxLen(8192).Opt().TT("<string>"),
		"efidisk0":           api.Str().Fmt(fmtEfidisk0()).Opt().TT("[file=]<volume> [,efitype=<2m|4m>] [,format=<enum>] [,import-from=<source volume>] [,ms-cert=<enum>] [,pre-enrolled-keys=<1|0>] [,size=<DiskSize>]"),
		"freeze":             api.Bool().Opt().TT("<boolean>"),
		"hookscript":         api.Str().Fmt("pve-volume-id").Opt().TT("<string>"),
		"hostpci[n]":         api.Str().Fmt("pve-qm-hostpci").Opt().TT("[[host=]<HOSTPCIID[;HOSTPCIID2...]>] [,device-id=<hex id>] [,driver=<vfio|keep>] [,legacy-igd=<1|0>] [,mapping=<mapping-id>] [,mdev=<string>] [,pcie=<1|0>] [,rombar=<1|0>] [,romfile=<string>] [,sub-device-id=<hex id>] [,sub-vendor-id=<hex id>] [,vendor-id=<hex id>] [,x-vga=<1|0>]").Indexed(16),
		"hotplug":            api.Str().Fmt("pve-hotplug-features").Def("network,disk,usb").Opt().TT("<string>"),
		"hugepages":          api.Str().Enums("any", "2", "1024").Opt(),
		"ide[n]":             api.Str().Fmt(fmtIde()).Opt().TT("[file=]<volume> [,aio=<native|threads|io_uring>] [,backup=<1|0>] [,bps=<bps>] [,bps_max_length=<seconds>] [,bps_rd=<bps>] [,bps_rd_max_length=<seconds>] [,bps_wr=<bps>] [,bps_wr_max_length=<seconds>] [,cache=<enum>] [,detect_zeroes=<1|0>] [,discard=<ignore|on>] [,format=<enum>] [,import-from=<source volume>] [,iops=<iops>] [,iops_max=<iops>] [,iops_max_length=<seconds>] [,iops_rd=<iops>] [,iops_rd_max=<iops>] [,iops_rd_max_length=<seconds>] [,iops_wr=<iops>] [,iops_wr_max=<iops>] [,iops_wr_max_length=<seconds>] [,mbps=<mbps>] [,mbps_max=<mbps>] [,mbps_rd=<mbps>] [,mbps_rd_max=<mbps>] [,mbps_wr=<mbps>] [,mbps_wr_max=<mbps>] [,media=<cdrom|disk>] [,model=<model>] [,replicate=<1|0>] [,rerror=<ignore|report|stop>] [,serial=<serial>] [,shared=<1|0>] [,size=<DiskSize>] [,snapshot=<1|0>] [,ssd=<1|0>] [,werror=<enum>] [,wwn=<wwn>]").Indexed(4),
		"intel-tdx":          api.Str().Fmt("pve-qemu-tdx-fmt").Opt().TT("[type=]<tdx-type> ,attestation=<1|0> [,vsock-cid=<integer>] [,vsock-port=<integer>]"),
		"ipconfig[n]":        api.Str().Fmt("pve-qm-ipconfig").Opt().TT("[gw=<GatewayIPv4>] [,gw6=<GatewayIPv6>] [,ip=<IPv4Format/CIDR>] [,ip6=<IPv6Format/CIDR>]").Indexed(32),
		"ivshmem":            api.Str().Fmt(fmtIvshmem()).Opt().TT("size=<integer> [,name=<string>]"),
		"keephugepages":      api.Bool().Def(0).Opt().TT("<boolean>"),
		"keyboard":           api.Str().Enums("de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr").Def(api.NullDefault()).Opt(),
		"kvm":                api.Bool().Def(1).Opt().TT("<boolean>"),
		"localtime":          api.Bool().Opt().TT("<boolean>"),
		"lock":               api.Str().Enums("backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended").Opt(),
		"machine":            api.Str().Fmt(fmtMachine()).Opt().TT("[[type=]<machine type>] [,aw-bits=<number>] [,enable-s3=<1|0>] [,enable-s4=<1|0>] [,viommu=<intel|virtio>]"),
		"memory":             api.Str().Fmt(fmtMemory()).Opt().TT("[current=]<integer>"),
		"migrate_downtime":   api.Num().Min(0).Def(0.1).Opt().TT("<number> (0 - N)"),
		"migrate_speed":      api.Int().Min(0).Def(0).Opt().TT("<integer> (0 - N)"),
		"name":               api.Str().Fmt("dns-name").Opt().TT("<string>"),
		"nameserver":         api.Str().Fmt("address-list").Opt().TT("<string>"),
		"net[n]":             api.Str().Fmt(fmtNet()).Opt().TT("[model=]<enum> [,bridge=<bridge>] [,firewall=<1|0>] [,link_down=<1|0>] [,macaddr=<XX:XX:XX:XX:XX:XX>] [,mtu=<integer>] [,queues=<integer>] [,rate=<number>] [,tag=<integer>] [,trunks=<vlanid[;vlanid...]>] [,<model>=<macaddr>]").Indexed(32),
		"numa":               api.Bool().Def(0).Opt().TT("<boolean>"),
		"numa[n]":            api.Str().Fmt(fmtNuma()).Opt().TT("cpus=<id[-id];...> [,hostnodes=<id[-id];...>] [,memory=<number>] [,policy=<preferred|bind|interleave>]").Indexed(8),
		"onboot":             api.Bool().Def(0).Opt().TT("<boolean>"),
		"ostype":             api.Str().Enums("other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris").Def("other").Opt(),
		"parallel[n]":        api.Str().Pat("/dev/parport\\d+|/dev/usb/lp\\d+").Opt().Indexed(3),
		"protection":         api.Bool().Def(0).Opt().TT("<boolean>"),
		"reboot":             api.Bool().Def(1).Opt().TT("<boolean>"),
		"rng0":               api.Str().Fmt("pve-qm-rng").Opt().TT("[source=]</dev/urandom|/dev/random|/dev/hwrng> [,max_bytes=<integer>] [,period=<integer>]"),
		"sata[n]":            api.Str().Fmt(fmtSata()).Opt().TT("[file=]<volume> [,aio=<native|threads|io_uring>] [,backup=<1|0>] [,bps=<bps>] [,bps_max_length=<seconds>] [,bps_rd=<bps>] [,bps_rd_max_length=<seconds>] [,bps_wr=<bps>] [,bps_wr_max_length=<seconds>] [,cache=<enum>] [,detect_zeroes=<1|0>] [,discard=<ignore|on>] [,format=<enum>] [,import-from=<source volume>] [,iops=<iops>] [,iops_max=<iops>] [,iops_max_length=<seconds>] [,iops_rd=<iops>] [,iops_rd_max=<iops>] [,iops_rd_max_length=<seconds>] [,iops_wr=<iops>] [,iops_wr_max=<iops>] [,iops_wr_max_length=<seconds>] [,mbps=<mbps>] [,mbps_max=<mbps>] [,mbps_rd=<mbps>] [,mbps_rd_max=<mbps>] [,mbps_wr=<mbps>] [,mbps_wr_max=<mbps>] [,media=<cdrom|disk>] [,replicate=<1|0>] [,rerror=<ignore|report|stop>] [,serial=<serial>] [,shared=<1|0>] [,size=<DiskSize>] [,snapshot=<1|0>] [,ssd=<1|0>] [,werror=<enum>] [,wwn=<wwn>]").Indexed(6),
		"scsi[n]":            api.Str().Fmt(fmtScsi()).Opt().TT("[file=]<volume> [,aio=<native|threads|io_uring>] [,backup=<1|0>] [,bps=<bps>] [,bps_max_length=<seconds>] [,bps_rd=<bps>] [,bps_rd_max_length=<seconds>] [,bps_wr=<bps>] [,bps_wr_max_length=<seconds>] [,cache=<enum>] [,detect_zeroes=<1|0>] [,discard=<ignore|on>] [,format=<enum>] [,import-from=<source volume>] [,iops=<iops>] [,iops_max=<iops>] [,iops_max_length=<seconds>] [,iops_rd=<iops>] [,iops_rd_max=<iops>] [,iops_rd_max_length=<seconds>] [,iops_wr=<iops>] [,iops_wr_max=<iops>] [,iops_wr_max_length=<seconds>] [,iothread=<1|0>] [,mbps=<mbps>] [,mbps_max=<mbps>] [,mbps_rd=<mbps>] [,mbps_rd_max=<mbps>] [,mbps_wr=<mbps>] [,mbps_wr_max=<mbps>] [,media=<cdrom|disk>] [,product=<product>] [,queues=<integer>] [,replicate=<1|0>] [,rerror=<ignore|report|stop>] [,ro=<1|0>] [,scsiblock=<1|0>] [,serial=<serial>] [,shared=<1|0>] [,size=<DiskSize>] [,snapshot=<1|0>] [,ssd=<1|0>] [,vendor=<vendor>] [,werror=<enum>] [,wwn=<wwn>]").Indexed(31),
		"scsihw":             api.Str().Enums("lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi").Def("lsi").Opt(),
		"searchdomain":       api.Str().Opt().TT("<string>"),
		"serial[n]":          api.Str().Pat("(/dev/.+|socket)").Opt().Indexed(4),
		"shares":             api.Int().Range(0, 50000).Def(1000).Opt().TT("<integer> (0 - 50000)"),
		"smbios1":            api.Str().Fmt("pve-qm-smbios1").MaxLen(512).Opt().TT("[base64=<1|0>] [,family=<Base64 encoded string>] [,manufacturer=<Base64 encoded string>] [,product=<Base64 encoded string>] [,serial=<Base64 encoded string>] [,sku=<Base64 encoded string>] [,uuid=<UUID>] [,version=<Base64 encoded string>]"),
		"smp":                api.Int().Min(1).Def(1).Opt().TT("<integer> (1 - N)"),
		"sockets":            api.Int().Min(1).Def(1).Opt().TT("<integer> (1 - N)"),
		"spice_enhancements": api.Str().Fmt(fmtSpiceEnhancements()).Opt().TT("[foldersharing=<1|0>] [,videostreaming=<off|all|filter>]"),
		"sshkeys":            api.Str().Fmt("urlencoded").Opt().TT("<string>"),
		"startdate":          api.Str().Pat("(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)").Def("now").Opt().TT("(now | YYYY-MM-DD | YYYY-MM-DDTHH:MM:SS)"),
		"startup":            api.Str().Fmt("pve-startup-order").Opt().TT("[[order=]\\d+] [,up=\\d+] [,down=\\d+] "),
		"tablet":             api.Bool().Def(1).Opt().TT("<boolean>"),
		"tags":               api.Str().Fmt("pve-tag-list").Opt().TT("<string>"),
		"tdf":                api.Bool().Def(0).Opt().TT("<boolean>"),
		"template":           api.Bool().Def(0).Opt().TT("<boolean>"),
		"tpmstate0":          api.Str().Fmt(fmtTpmstate0()).Opt().TT("[file=]<volume> [,format=<raw|qcow2|vmdk>] [,import-from=<source volume>] [,size=<DiskSize>] [,version=<v1.2|v2.0>]"),
		"unused[n]":          api.Str().Fmt(fmtUnused()).Opt().TT("[file=]<volume>").Indexed(256),
		"usb[n]":             api.Str().Fmt(fmtUsb()).Opt().TT("[[host=]<HOSTUSBDEVICE|spice>] [,mapping=<mapping-id>] [,usb3=<1|0>]").Indexed(14),
		"vcpus":              api.Int().Min(1).Def(0).Opt().TT("<integer> (1 - N)"),
		"vga":                api.Str().Fmt(fmtVga()).Opt().TT("[[type=]<enum>] [,clipboard=<vnc>] [,memory=<integer>]"),
		"virtio[n]":          api.Str().Fmt(fmtVirtio()).Opt().TT("[file=]<volume> [,aio=<native|threads|io_uring>] [,backup=<1|0>] [,bps=<bps>] [,bps_max_length=<seconds>] [,bps_rd=<bps>] [,bps_rd_max_length=<seconds>] [,bps_wr=<bps>] [,bps_wr_max_length=<seconds>] [,cache=<enum>] [,detect_zeroes=<1|0>] [,discard=<ignore|on>] [,format=<enum>] [,import-from=<source volume>] [,iops=<iops>] [,iops_max=<iops>] [,iops_max_length=<seconds>] [,iops_rd=<iops>] [,iops_rd_max=<iops>] [,iops_rd_max_length=<seconds>] [,iops_wr=<iops>] [,iops_wr_max=<iops>] [,iops_wr_max_length=<seconds>] [,iothread=<1|0>] [,mbps=<mbps>] [,mbps_max=<mbps>] [,mbps_rd=<mbps>] [,mbps_rd_max=<mbps>] [,mbps_wr=<mbps>] [,mbps_wr_max=<mbps>] [,media=<cdrom|disk>] [,replicate=<1|0>] [,rerror=<ignore|report|stop>] [,ro=<1|0>] [,serial=<serial>] [,shared=<1|0>] [,size=<DiskSize>] [,snapshot=<1|0>] [,werror=<enum>]").Indexed(16),
		"virtiofs[n]":        api.Str().Fmt(fmtVirtiofs()).Opt().TT("[dirid=]<mapping-id> [,cache=<enum>] [,direct-io=<1|0>] [,expose-acl=<1|0>] [,expose-xattr=<1|0>]").Indexed(10),
		"vmgenid":            api.Str().Pat("(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])").Def("1 (autogenerated)").Opt(),
		"vmstatestorage":     api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>"),
		"watchdog":           api.Str().Fmt("pve-qm-watchdog").Opt().TT("[[model=]<i6300esb|ib700>] [,action=<enum>]"),
	}
}

func fmtAgent() api.PropertyFormat {
	return api.PropertyFormat{
		"enabled":             api.Bool().Def(0).DefKey(),
		"freeze-fs":           api.Bool().Def(1).Opt(),
		"freeze-fs-on-backup": api.AliasOf("freeze-fs"),
		"fstrim_cloned_disks": api.Bool().Def(0).Opt(),
		"guest-fsfreeze":      api.AliasOf("freeze-fs"),
		"type":                api.Str().Enums("virtio", "isa").Def("virtio").Opt(),
	}
}

func fmtAudio0() api.PropertyFormat {
	return api.PropertyFormat{
		"device": api.Str().Enums("ich9-intel-hda", "intel-hda", "AC97"),
		"driver": api.Str().Enums("spice", "none").Def("spice").Opt(),
	}
}

func fmtEfidisk0() api.PropertyFormat {
	return api.PropertyFormat{
		"efitype":           api.Str().Enums("2m", "4m").Def("2m").Opt(),
		"file":              api.Str().Fmt("pve-volume-id-or-qm-path").DefKey(),
		"format":            api.Str().Enums("raw", "qcow", "qed", "qcow2", "vmdk", "cloop").Opt(),
		"import-from":       api.Str().Fmt("pve-volume-id-or-absolute-path").Opt(),
		"ms-cert":           api.Str().Enums("2011", "2023", "2023w", "2023k").Def("2011").Opt(),
		"pre-enrolled-keys": api.Bool().Def(0).Opt(),
		"size":              api.Str().Fmt("disk-size").Opt(),
		"volume":            api.AliasOf("file"),
	}
}

// fmtDrive holds the keys that the ide, sata, scsi and virtio drive
// formats share.
func fmtDrive() api.PropertyFormat {
	return api.PropertyFormat{
		"aio":                api.Str().Enums("native", "threads", "io_uring").Opt(),
		"backup":             api.Bool().Opt(),
		"bps":                api.Int().Opt(),
		"bps_max_length":     api.Int().Min(1).Opt(),
		"bps_rd":             api.Int().Opt(),
		"bps_rd_length":      api.AliasOf("bps_rd_max_length"),
		"bps_rd_max_length":  api.Int().Min(1).Opt(),
		"bps_wr":             api.Int().Opt(),
		"bps_wr_length":      api.AliasOf("bps_wr_max_length"),
		"bps_wr_max_length":  api.Int().Min(1).Opt(),
		"cache":              api.Str().Enums("none", "writethrough", "writeback", "unsafe", "directsync").Opt(),
		"detect_zeroes":      api.Bool().Opt(),
		"discard":            api.Str().Enums("ignore", "on").Opt(),
		"file":               api.Str().Fmt("pve-volume-id-or-qm-path").DefKey(),
		"format":             api.Str().Enums("raw", "qcow", "qed", "qcow2", "vmdk", "cloop").Opt(),
		"import-from":        api.Str().Fmt("pve-volume-id-or-absolute-path").Opt(),
		"iops":               api.Int().Opt(),
		"iops_max":           api.Int().Opt(),
		"iops_max_length":    api.Int().Min(1).Opt(),
		"iops_rd":            api.Int().Opt(),
		"iops_rd_length":     api.AliasOf("iops_rd_max_length"),
		"iops_rd_max":        api.Int().Opt(),
		"iops_rd_max_length": api.Int().Min(1).Opt(),
		"iops_wr":            api.Int().Opt(),
		"iops_wr_length":     api.AliasOf("iops_wr_max_length"),
		"iops_wr_max":        api.Int().Opt(),
		"iops_wr_max_length": api.Int().Min(1).Opt(),
		"mbps":               api.Num().Opt(),
		"mbps_max":           api.Num().Opt(),
		"mbps_rd":            api.Num().Opt(),
		"mbps_rd_max":        api.Num().Opt(),
		"mbps_wr":            api.Num().Opt(),
		"mbps_wr_max":        api.Num().Opt(),
		"media":              api.Str().Enums("cdrom", "disk").Def("disk").Opt(),
		"replicate":          api.Bool().Def(1).Opt(),
		"rerror":             api.Str().Enums("ignore", "report", "stop").Opt(),
		"serial":             api.Str().Fmt("urlencoded").MaxLen(60).Opt(),
		"shared":             api.Bool().Def(0).Opt(),
		"size":               api.Str().Fmt("disk-size").Opt(),
		"snapshot":           api.Bool().Opt(),
		"volume":             api.AliasOf("file"),
		"werror":             api.Str().Enums("enospc", "ignore", "report", "stop").Opt(),
	}
}

// withKeys adds extra to f and returns f.
func withKeys(f, extra map[string]*api.Schema) map[string]*api.Schema {
	maps.Copy(f, extra)
	return f
}

func fmtIde() api.PropertyFormat {
	return withKeys(fmtDrive(), api.PropertyFormat{
		"model": api.Str().Fmt("urlencoded").MaxLen(120).Opt(),
		"ssd":   api.Bool().Opt(),
		"wwn":   api.Str().Pat("(?^:^(0x)[0-9a-fA-F]{16})").Opt(),
	})
}

func fmtIvshmem() api.PropertyFormat {
	return api.PropertyFormat{
		"name": api.Str().Pat("[a-zA-Z0-9\\-]+").Opt(),
		"size": api.Int().Min(1),
	}
}

func fmtMachine() api.PropertyFormat {
	return api.PropertyFormat{
		"aw-bits":   api.Num().Range(32, 64).Opt(),
		"enable-s3": api.Bool().Opt(),
		"enable-s4": api.Bool().Opt(),
		"type":      api.Str().Pat("(pc|pc(-i440fx)?-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|q35|pc-q35-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|virt(?:-\\d+(\\.\\d+)+)?(\\+pve\\d+)?)").MaxLen(40).DefKey().Opt(),
		"viommu":    api.Str().Enums("intel", "virtio").Opt(),
	}
}

func fmtMemory() api.PropertyFormat {
	return api.PropertyFormat{
		"current": api.Int().Min(16).Def(512).DefKey(),
	}
}

func fmtNet() api.PropertyFormat {
	return api.PropertyFormat{
		"bridge":        api.Str().Fmt("pve-bridge-id").Opt(),
		"e1000":         api.KeyAliasOf("macaddr", "model"),
		"e1000-82540em": api.KeyAliasOf("macaddr", "model"),
		"e1000-82544gc": api.KeyAliasOf("macaddr", "model"),
		"e1000-82545em": api.KeyAliasOf("macaddr", "model"),
		"e1000e":        api.KeyAliasOf("macaddr", "model"),
		"firewall":      api.Bool().Opt(),
		"i82551":        api.KeyAliasOf("macaddr", "model"),
		"i82557b":       api.KeyAliasOf("macaddr", "model"),
		"i82559er":      api.KeyAliasOf("macaddr", "model"),
		"link_down":     api.Bool().Opt(),
		"macaddr":       api.Str().Fmt("mac-addr").Opt(),
		"model":         api.Str().Enums("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3").DefKey(),
		"mtu":           api.Int().Range(1, 65520).Opt(),
		"ne2k_isa":      api.KeyAliasOf("macaddr", "model"),
		"ne2k_pci":      api.KeyAliasOf("macaddr", "model"),
		"pcnet":         api.KeyAliasOf("macaddr", "model"),
		"queues":        api.Int().Range(0, 64).Opt(),
		"rate":          api.Num().Min(0).Opt(),
		"rtl8139":       api.KeyAliasOf("macaddr", "model"),
		"tag":           api.Int().Range(1, 4094).Opt(),
		"trunks":        api.Str().Pat("(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)").Opt(),
		"virtio":        api.KeyAliasOf("macaddr", "model"),
		"vmxnet3":       api.KeyAliasOf("macaddr", "model"),
	}
}

func fmtNuma() api.PropertyFormat {
	return api.PropertyFormat{
		"cpus":      api.Str().Pat("(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)"),
		"hostnodes": api.Str().Pat("(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)").Opt(),
		"memory":    api.Num().Opt(),
		"policy":    api.Str().Enums("preferred", "bind", "interleave").Opt(),
	}
}

func fmtSata() api.PropertyFormat {
	return withKeys(fmtDrive(), api.PropertyFormat{
		"ssd": api.Bool().Opt(),
		"wwn": api.Str().Pat("(?^:^(0x)[0-9a-fA-F]{16})").Opt(),
	})
}

func fmtScsi() api.PropertyFormat {
	return withKeys(fmtDrive(), api.PropertyFormat{
		"iothread":  api.Bool().Opt(),
		"product":   api.Str().Pat("[A-Za-z0-9\\-_\\s]{,16}").Opt(),
		"queues":    api.Int().Min(2).Opt(),
		"ro":        api.Bool().Opt(),
		"scsiblock": api.Bool().Def(0).Opt(),
		"ssd":       api.Bool().Opt(),
		"vendor":    api.Str().Pat("[A-Za-z0-9\\-_\\s]{,8}").Opt(),
		"wwn":       api.Str().Pat("(?^:^(0x)[0-9a-fA-F]{16})").Opt(),
	})
}

func fmtSpiceEnhancements() api.PropertyFormat {
	return api.PropertyFormat{
		"foldersharing":  api.Bool().Def("0").Opt(),
		"videostreaming": api.Str().Enums("off", "all", "filter").Def("off").Opt(),
	}
}

func fmtTpmstate0() api.PropertyFormat {
	return api.PropertyFormat{
		"file":        api.Str().Fmt("pve-volume-id-or-qm-path").DefKey(),
		"format":      api.Str().Enums("raw", "qcow2", "vmdk").Opt(),
		"import-from": api.Str().Fmt("pve-volume-id-or-absolute-path").Opt(),
		"size":        api.Str().Fmt("disk-size").Opt(),
		"version":     api.Str().Enums("v1.2", "v2.0").Def("v1.2").Opt(),
		"volume":      api.AliasOf("file"),
	}
}

func fmtUnused() api.PropertyFormat {
	return api.PropertyFormat{
		"file":   api.Str().Fmt("pve-volume-id").DefKey(),
		"volume": api.AliasOf("file"),
	}
}

func fmtUsb() api.PropertyFormat {
	return api.PropertyFormat{
		"host":    api.Str().Pat("(?^:(?:(?:(?^:(0x)?([0-9A-Fa-f]{4}):(0x)?([0-9A-Fa-f]{4})))|(?:(?^:(\\d+)\\-(\\d+(\\.\\d+)*)))|[Ss][Pp][Ii][Cc][Ee]))").DefKey().Opt(),
		"mapping": api.Str().Fmt("pve-configid").Opt(),
		"usb3":    api.Bool().Def(0).Opt(),
	}
}

func fmtVga() api.PropertyFormat {
	return api.PropertyFormat{
		"clipboard": api.Str().Enums("vnc").Opt(),
		"memory":    api.Int().Range(4, 512).Opt(),
		"type":      api.Str().Enums("cirrus", "qxl", "qxl2", "qxl3", "qxl4", "none", "serial0", "serial1", "serial2", "serial3", "std", "virtio", "virtio-gl", "vmware").Def("std").DefKey().Opt(),
	}
}

func fmtVirtio() api.PropertyFormat {
	return withKeys(fmtDrive(), api.PropertyFormat{
		"iothread": api.Bool().Opt(),
		"ro":       api.Bool().Opt(),
	})
}

func fmtVirtiofs() api.PropertyFormat {
	return api.PropertyFormat{
		"cache":        api.Str().Enums("auto", "always", "metadata", "never").Def("auto").Opt(),
		"direct-io":    api.Bool().Def(0).Opt(),
		"dirid":        api.Str().Fmt("pve-configid").DefKey(),
		"expose-acl":   api.Bool().Def(0).Opt(),
		"expose-xattr": api.Bool().Def(0).Opt(),
	}
}

// configOnlyReturnProps are the keys GET config returns beyond the
// parameters (snapshot and runtime keys).
func configOnlyReturnProps() map[string]*api.Schema {
	return map[string]*api.Schema{
		"digest":                api.Str(),
		"meta":                  api.Str().Fmt(fmtMeta()).Opt(),
		"parent":                api.Str().Fmt("pve-configid").MaxLen(40).Opt(),
		"running-nets-host-mtu": api.Str().Pat("net\\d+=\\d+(,net\\d+=\\d+)*").Opt(),
		"runningcpu":            api.Str().Pat("(?^:^((?>[+-]?[\\w\\-\\._=]+,?)+)$)").Opt(),
		"runningmachine":        api.Str().Fmt(fmtMachine()).Opt(),
		"snaptime":              api.Int().Min(0).Opt(),
		"vmstate":               api.Str().Fmt("pve-volume-id").Opt(),
	}
}

func fmtMeta() api.PropertyFormat {
	return api.PropertyFormat{
		"creation-qemu": api.Str().Pat("\\d+(\\.\\d+)+").Opt(),
		"ctime":         api.Int().Min(0).Opt(),
	}
}
