package nodestatus

import "golang.org/x/sys/unix"

// Status is the answer of GET /nodes/{node}/status. Integers are byte
// counts or seconds; CPU and Wait are fractions between 0 and 1.
type Status struct {
	Uptime        int64     `json:"uptime"`
	Idle          int64     `json:"idle"`
	LoadAvg       [3]string `json:"loadavg"`
	KVersion      string    `json:"kversion"`
	CurrentKernel Kernel    `json:"current-kernel"`
	BootInfo      BootInfo  `json:"boot-info"`
	CPUInfo       CPUInfo   `json:"cpuinfo"`
	CPU           float64   `json:"cpu"`
	Wait          float64   `json:"wait"`
	Memory        Memory    `json:"memory"`
	KSM           KSM       `json:"ksm"`
	Swap          Swap      `json:"swap"`
	PVEVersion    string    `json:"pveversion"`
	RootFS        RootFS    `json:"rootfs"`
}

// Kernel is the "current-kernel" object: the fields of uname(2).
type Kernel struct {
	Sysname string `json:"sysname"`
	Release string `json:"release"`
	Version string `json:"version"`
	Machine string `json:"machine"`
}

// KVersion returns the legacy "kversion" string: "<sysname> <release> <version>".
func (k Kernel) KVersion() string {
	return k.Sysname + " " + k.Release + " " + k.Version
}

// KernelFromUtsname converts the result of uname(2).
func KernelFromUtsname(u *unix.Utsname) Kernel {
	return Kernel{
		Sysname: unix.ByteSliceToString(u.Sysname[:]),
		Release: unix.ByteSliceToString(u.Release[:]),
		Version: unix.ByteSliceToString(u.Version[:]),
		Machine: unix.ByteSliceToString(u.Machine[:]),
	}
}

// Boot modes reported in BootInfo.Mode.
const (
	BootEFI    = "efi"
	BootLegacy = "legacy-bios"
)

// BootInfo is the "boot-info" object. SecureBoot is 1 or 0 (PVE's boolean
// encoding) and is present only when booted through EFI and the SecureBoot
// variable is readable.
type BootInfo struct {
	Mode       string `json:"mode"`
	SecureBoot *int   `json:"secureboot,omitempty"`
}

// Memory is the "memory" object, in bytes. Used is Total minus Available.
type Memory struct {
	Total     int64 `json:"total"`
	Used      int64 `json:"used"`
	Free      int64 `json:"free"`
	Available int64 `json:"available"`
}

// Swap is the "swap" object, in bytes.
type Swap struct {
	Total int64 `json:"total"`
	Used  int64 `json:"used"`
	Free  int64 `json:"free"`
}

// KSM is the "ksm" object: Shared is the memory KSM saves, in bytes
// (pages_sharing times the page size).
type KSM struct {
	Shared int64 `json:"shared"`
}

// RootFS is the "rootfs" object, in bytes, as df(1) counts: Used is every
// block that is not free, Free the blocks free for root and Avail those free
// for unprivileged users.
type RootFS struct {
	Total int64 `json:"total"`
	Used  int64 `json:"used"`
	Free  int64 `json:"free"`
	Avail int64 `json:"avail"`
}

// RootFSFromStatfs converts the result of statfs(2).
func RootFSFromStatfs(st *unix.Statfs_t) RootFS {
	bs := int64(st.Frsize)
	if bs == 0 {
		bs = int64(st.Bsize)
	}
	total := int64(st.Blocks) * bs
	free := int64(st.Bfree) * bs
	return RootFS{
		Total: total,
		Used:  total - free,
		Free:  free,
		Avail: int64(st.Bavail) * bs,
	}
}

// Summary is this node's entry in GET /nodes (and the node figures of
// /cluster/resources): PVE fills it from the status pvestatd broadcasts; here
// it comes from the same readings as Status. SSLFingerprint is left for the
// caller to fill in from the node certificate.
type Summary struct {
	ID             string  `json:"id"`
	Type           string  `json:"type"`
	Node           string  `json:"node"`
	Status         string  `json:"status"`
	Level          string  `json:"level"`
	Uptime         int64   `json:"uptime"`
	CPU            float64 `json:"cpu"`
	MaxCPU         int     `json:"maxcpu"`
	Mem            int64   `json:"mem"`
	MaxMem         int64   `json:"maxmem"`
	Disk           int64   `json:"disk"`
	MaxDisk        int64   `json:"maxdisk"`
	SSLFingerprint string  `json:"ssl_fingerprint,omitempty"`
}

// Summary condenses s into the GET /nodes entry of the node named node,
// reported as online with no subscription level.
func (s *Status) Summary(node string) Summary {
	return Summary{
		ID:      "node/" + node,
		Type:    "node",
		Node:    node,
		Status:  "online",
		Level:   "",
		Uptime:  s.Uptime,
		CPU:     s.CPU,
		MaxCPU:  s.CPUInfo.CPUs,
		Mem:     s.Memory.Used,
		MaxMem:  s.Memory.Total,
		Disk:    s.RootFS.Used,
		MaxDisk: s.RootFS.Total,
	}
}
