package nodestatus

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// UserHZ is the clock-tick rate of the counters in /proc/stat as the kernel
// exports them to user space (sysconf(_SC_CLK_TCK)); it is 100 on every Linux
// architecture PVE runs on, and PVE reports it as cpuinfo.user_hz.
const UserHZ = 100

// ErrMalformed is wrapped by the errors of the Parse functions when a file's
// content does not have the expected shape.
var ErrMalformed = errors.New("malformed content")

// CPUInfo is the "cpuinfo" object of the node status. PVE derives it from
// /proc/cpuinfo; the types follow PVE's JSON output (mhz, family and hvm are
// strings, hvm is "1" when the flags include vmx or svm and "" otherwise).
type CPUInfo struct {
	UserHZ  int    `json:"user_hz"`
	Vendor  string `json:"vendor"`
	Family  string `json:"family"`
	Model   string `json:"model"`
	MHz     string `json:"mhz"`
	CPUs    int    `json:"cpus"`
	Sockets int    `json:"sockets"`
	Cores   int    `json:"cores"`
	Flags   string `json:"flags"`
	HVM     string `json:"hvm"`
}

// Line patterns of /proc/cpuinfo, as PVE matches them (case-insensitive
// except for flags).
var (
	reProcessor   = regexp.MustCompile(`(?i)^processor\s*:\s*\d+\s*$`)
	reModelName   = regexp.MustCompile(`(?i)^model\s+name\s*:\s*(.*)$`)
	reVendorID    = regexp.MustCompile(`(?i)^vendor_id\s*:\s*(\S*)\s*$`)
	reFamily      = regexp.MustCompile(`(?i)^cpu family\s*:\s*(\d+)\s*$`)
	reMHz         = regexp.MustCompile(`(?i)^cpu\s+MHz\s*:\s*(\d+\.\d+)\s*$`)
	reFlags       = regexp.MustCompile(`^flags\s*:\s*(.*)$`)
	rePhysicalID  = regexp.MustCompile(`(?i)^physical id\s*:\s*(\d+)\s*$`)
	reCPUCores    = regexp.MustCompile(`(?i)^cpu cores\s*:\s*(\d+)\s*$`)
	reImplementer = regexp.MustCompile(`^CPU implementer\s*:\s*0x([0-9a-fA-F]+)\s*$`)
	rePart        = regexp.MustCompile(`^CPU part\s*:\s*0x([0-9a-fA-F]+)\s*$`)
	reHVM         = regexp.MustCompile(`\s(vmx|svm)\s`)
)

// armImplementers names the arm64 "CPU implementer" IDs (as lscpu does).
var armImplementers = map[uint64]string{
	0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu",
	0x48: "HiSilicon", 0x4e: "NVIDIA", 0x50: "APM", 0x51: "Qualcomm",
	0x53: "Samsung", 0x56: "Marvell", 0x61: "Apple", 0x69: "Intel",
	0x6d: "Microsoft", 0xc0: "Ampere",
}

// armParts names common arm64 server cores by implementer and "CPU part" ID.
var armParts = map[uint64]map[uint64]string{
	0x41: {
		0xd03: "Cortex-A53", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57",
		0xd08: "Cortex-A72", 0xd09: "Cortex-A73", 0xd0a: "Cortex-A75",
		0xd0b: "Cortex-A76", 0xd0d: "Cortex-A77", 0xd41: "Cortex-A78",
		0xd0c: "Neoverse-N1", 0xd49: "Neoverse-N2", 0xd40: "Neoverse-V1",
		0xd4f: "Neoverse-V2", 0xd8e: "Neoverse-N3", 0xd84: "Neoverse-V3",
	},
	0x46: {0x001: "A64FX"},
	0x48: {0xd01: "Kunpeng-920"},
	0xc0: {0xac3: "Ampere-1", 0xac4: "Ampere-1a"},
}

// ParseCPUInfo parses /proc/cpuinfo. It never fails: missing lines leave
// PVE's defaults (model and vendor "unknown", one socket, one core). cpus is
// the number of "processor" lines (at least 1); sockets is the number of
// distinct "physical id" values and cores the sum of "cpu cores" over them.
// On arm64, which has no "model name", vendor and model come from the
// implementer and part IDs.
func ParseCPUInfo(data []byte) CPUInfo {
	ci := CPUInfo{
		UserHZ: UserHZ,
		Vendor: "unknown",
		Family: "0",
		Model:  "unknown",
		MHz:    "0",
	}
	count := 0
	cpuID := ""
	var socketOrder []string
	coresBySocket := map[string]int{}
	seenSocket := map[string]bool{}
	var implementer, part uint64
	haveImpl, havePart := false, false
	for _, line := range lines(data) {
		if reProcessor.MatchString(line) {
			count++
		} else if m := reModelName.FindStringSubmatch(line); m != nil {
			if ci.Model == "unknown" {
				ci.Model = m[1]
			}
		} else if m := reVendorID.FindStringSubmatch(line); m != nil {
			if ci.Vendor == "unknown" {
				ci.Vendor = m[1]
			}
		} else if m := reFamily.FindStringSubmatch(line); m != nil {
			if ci.Family == "0" {
				ci.Family = m[1]
			}
		} else if m := reMHz.FindStringSubmatch(line); m != nil {
			if ci.MHz == "0" {
				ci.MHz = m[1]
			}
		} else if m := reFlags.FindStringSubmatch(line); m != nil {
			if ci.Flags == "" {
				ci.Flags = m[1]
			}
		} else if m := rePhysicalID.FindStringSubmatch(line); m != nil {
			cpuID = m[1]
			if !seenSocket[cpuID] {
				seenSocket[cpuID] = true
				socketOrder = append(socketOrder, cpuID)
				coresBySocket[cpuID] = 1
			}
		} else if m := reCPUCores.FindStringSubmatch(line); m != nil {
			// "cpu cores" counts for the socket named by the preceding
			// "physical id"; without one it is ignored, as in PVE.
			if seenSocket[cpuID] {
				n, _ := strconv.Atoi(m[1])
				coresBySocket[cpuID] = n
			}
		} else if m := reImplementer.FindStringSubmatch(line); m != nil {
			if !haveImpl {
				implementer, _ = strconv.ParseUint(m[1], 16, 64)
				haveImpl = true
			}
		} else if m := rePart.FindStringSubmatch(line); m != nil {
			if !havePart {
				part, _ = strconv.ParseUint(m[1], 16, 64)
				havePart = true
			}
		}
	}
	if ci.Model == "unknown" && haveImpl {
		vendor, known := armImplementers[implementer]
		if known && ci.Vendor == "unknown" {
			ci.Vendor = vendor
		}
		if havePart {
			if name, ok := armParts[implementer][part]; ok {
				ci.Model = name
			} else {
				if !known {
					vendor = "ARM"
				}
				ci.Model = fmt.Sprintf("%s part 0x%03x", vendor, part)
			}
		}
	}
	if reHVM.MatchString(ci.Flags) {
		ci.HVM = "1"
	}
	ci.Sockets = max(len(socketOrder), 1)
	cores := 0
	for _, id := range socketOrder {
		cores += coresBySocket[id]
	}
	ci.Cores = max(cores, 1)
	ci.CPUs = max(count, 1)
	return ci
}

// CPUStat holds the aggregate "cpu" line of /proc/stat, in clock ticks
// (1/UserHZ s), and the number of per-CPU lines.
type CPUStat struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal, Guest, GuestNice uint64
	// CPUs is the number of "cpuN" lines (at least 1).
	CPUs int
}

// Busy returns the ticks spent doing work: everything except idle and
// iowait. Guest time is already contained in User and Nice.
func (s CPUStat) Busy() uint64 {
	return s.User + s.Nice + s.System + s.IRQ + s.SoftIRQ + s.Steal
}

// Total returns all ticks, busy or not (guest time counted once).
func (s CPUStat) Total() uint64 {
	return s.Busy() + s.Idle + s.IOWait
}

// ParseStat parses /proc/stat. The aggregate "cpu" line needs at least the
// eight fields every kernel since 2.6.11 has; guest fields are optional.
func ParseStat(data []byte) (CPUStat, error) {
	var st CPUStat
	found := false
	for _, line := range lines(data) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				st.CPUs++
			}
			continue
		}
		if len(f) < 9 {
			return CPUStat{}, fmt.Errorf("aggregate cpu line has %d fields, want at least 8: %w", len(f)-1, ErrMalformed)
		}
		var v [10]uint64
		for i := 0; i < 10 && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return CPUStat{}, fmt.Errorf("aggregate cpu line field %d %q: %w", i+1, f[i+1], ErrMalformed)
			}
			v[i] = n
		}
		st.User, st.Nice, st.System, st.Idle, st.IOWait = v[0], v[1], v[2], v[3], v[4]
		st.IRQ, st.SoftIRQ, st.Steal, st.Guest, st.GuestNice = v[5], v[6], v[7], v[8], v[9]
		found = true
	}
	if !found {
		return CPUStat{}, fmt.Errorf("no aggregate cpu line: %w", ErrMalformed)
	}
	st.CPUs = max(st.CPUs, 1)
	return st, nil
}

// Meminfo holds the /proc/meminfo figures the node status uses, in bytes.
type Meminfo struct {
	MemTotal, MemFree, MemAvailable, SwapTotal, SwapFree int64
}

// MemUsed returns total minus available memory, PVE's definition of used
// memory (page cache the kernel can drop does not count as used).
func (m Meminfo) MemUsed() int64 { return m.MemTotal - m.MemAvailable }

// SwapUsed returns total minus free swap.
func (m Meminfo) SwapUsed() int64 { return m.SwapTotal - m.SwapFree }

var reMeminfo = regexp.MustCompile(`(?i)^(\S+):\s+(\d+)\s*kB`)

// ParseMeminfo parses /proc/meminfo. MemTotal, MemFree and MemAvailable must
// be present; missing swap lines count as no swap.
func ParseMeminfo(data []byte) (Meminfo, error) {
	vals := map[string]int64{}
	for _, line := range lines(data) {
		m := reMeminfo.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return Meminfo{}, fmt.Errorf("%s value %q: %w", m[1], m[2], ErrMalformed)
		}
		vals[strings.ToLower(m[1])] = n * 1024
	}
	var missing []string
	for _, k := range []string{"MemTotal", "MemFree", "MemAvailable"} {
		if _, ok := vals[strings.ToLower(k)]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Meminfo{}, fmt.Errorf("no %s line: %w", strings.Join(missing, ", "), ErrMalformed)
	}
	return Meminfo{
		MemTotal:     vals["memtotal"],
		MemFree:      vals["memfree"],
		MemAvailable: vals["memavailable"],
		SwapTotal:    vals["swaptotal"],
		SwapFree:     vals["swapfree"],
	}, nil
}

var reLoadavg = regexp.MustCompile(`^(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+\d+/\d+\s+\d+\s*$`)

// ParseLoadavg parses /proc/loadavg into the 1, 5 and 15 minute load
// averages, kept as the decimal strings the kernel prints (PVE returns them
// as strings).
func ParseLoadavg(data []byte) ([3]string, error) {
	m := reLoadavg.FindStringSubmatch(firstLine(data))
	if m == nil {
		return [3]string{}, fmt.Errorf("loadavg line %q: %w", firstLine(data), ErrMalformed)
	}
	return [3]string{m[1], m[2], m[3]}, nil
}

var reUptime = regexp.MustCompile(`^(\d+)\.\d+\s+(\d+)\.\d+\s*$`)

// ParseUptime parses /proc/uptime into whole seconds since boot and whole
// seconds all CPUs together spent idle (both truncated, as PVE does).
func ParseUptime(data []byte) (uptime, idle int64, err error) {
	m := reUptime.FindStringSubmatch(firstLine(data))
	if m == nil {
		return 0, 0, fmt.Errorf("uptime line %q: %w", firstLine(data), ErrMalformed)
	}
	uptime, err1 := strconv.ParseInt(m[1], 10, 64)
	idle, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("uptime line %q: %w", firstLine(data), ErrMalformed)
	}
	return uptime, idle, nil
}

// ParseCount parses a sysfs file holding one non-negative integer, such as
// /sys/kernel/mm/ksm/pages_sharing.
func ParseCount(data []byte) (int64, error) {
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("count %q: %w", s, ErrMalformed)
	}
	return n, nil
}

// ParseSecureBoot parses the SecureBoot EFI variable as efivarfs presents
// it (four attribute bytes, then the one-byte value) and returns 1 when
// secure boot is enabled and 0 otherwise.
func ParseSecureBoot(data []byte) (int, error) {
	if len(data) < 5 {
		return 0, fmt.Errorf("SecureBoot variable has %d bytes, want 5: %w", len(data), ErrMalformed)
	}
	if data[4] == 1 {
		return 1, nil
	}
	return 0, nil
}

// lines splits data into lines without their line ends.
func lines(data []byte) []string {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// firstLine returns the first line of data without its line end.
func firstLine(data []byte) string {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return string(data[:i])
	}
	return string(data)
}
