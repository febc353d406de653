package qemu

import (
	"slices"
	"strconv"
)

// ParseSize is PVE's parse_size: a number with an optional K, M, G or T
// (binary units), in bytes.
func ParseSize(s string) (uint64, bool) {
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	return uint64(f * float64(mult)), true
}

// BootDiskSize is PVE's bootdisk_size: the size= of the first boot device
// when it is a disk (not a CD-ROM), from the config alone; 0 if none.
func (p Props) BootDiskSize() uint64 {
	isCDROM := func(key string) bool {
		d, ok, err := p.Drive(key)
		return err != nil || !ok || d.IsCDROM()
	}
	key := ""
	if order, err := p.BootOrder(); err == nil && order != nil {
		for _, dev := range order {
			if slices.Contains(DriveKeys(), dev) {
				key = dev
				break
			}
		}
	} else if bd := p["bootdisk"]; bd != "" {
		key = bd
	} else {
		for _, k := range DriveKeys() {
			if _, ok := p[k]; ok && !isCDROM(k) {
				key = k
				break
			}
		}
	}
	if key == "" || isCDROM(key) {
		return 0
	}
	d, _, _ := p.Drive(key)
	size, _ := d.Opts.Get("size")
	n, _ := ParseSize(size)
	return n
}

// CPUCount is the cpus figure of PVE's vmstatus: sockets × cores, at most
// hostCPUs (when > 0), replaced by vcpus when set.
func (p Props) CPUCount(hostCPUs int) float64 {
	sockets, _ := p.Sockets()
	cores, _ := p.Cores()
	n := float64(max(sockets, 1) * max(cores, 1))
	if hostCPUs > 0 && n > float64(hostCPUs) {
		n = float64(hostCPUs)
	}
	if v, err := strconv.Atoi(p["vcpus"]); err == nil && v > 0 {
		n = float64(v)
	}
	return n
}

// MaxMemBytes is the VM's memory in bytes (512 MiB when unset or invalid).
func (p Props) MaxMemBytes() uint64 {
	mem, err := p.Memory()
	if err != nil {
		mem = 512
	}
	return uint64(mem) << 20
}
