package vzdump

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ArchiveBase is the archive name without extension:
// vzdump-qemu-<vmid>-<YYYY_MM_DD-hh_mm_ss> with t in loc.
func ArchiveBase(vmid int, t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.Local
	}
	return fmt.Sprintf("vzdump-qemu-%d-%s", vmid, t.In(loc).Format("2006_01_02-15_04_05"))
}

// CompressionSuffix returns the file name suffix of a compress setting
// ("" for none); lzo ("1", "lzo") is not implemented in this build.
func CompressionSuffix(compress string) (string, error) {
	switch compress {
	case "", "0":
		return "", nil
	case "zstd":
		return ".zst", nil
	case "gzip":
		return ".gz", nil
	case "1", "lzo":
		return "", fmt.Errorf("compress=%s: not implemented: lzo compression (use zstd or gzip)", compress)
	}
	return "", fmt.Errorf("compress=%s: unknown compression", compress)
}

// archiveRE is PVE's standard backup name (archive_info), VMA only.
var archiveRE = regexp.MustCompile(`^vzdump-(qemu)-([1-9][0-9]{2,8})-(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)\.vma(\.(gz|zst|lzo))?$`)

// ArchiveInfo is what a standard archive name says.
type ArchiveInfo struct {
	VMID        int
	CTime       time.Time // from the name, in the location given to ParseArchiveName
	Compression string    // "", "gz", "zst", "lzo"
}

// ParseArchiveName parses a standard VMA archive file name (no directory).
func ParseArchiveName(name string, loc *time.Location) (ArchiveInfo, error) {
	m := archiveRE.FindStringSubmatch(name)
	if m == nil {
		return ArchiveInfo{}, fmt.Errorf("'%s' is not a standard VMA backup archive name", name)
	}
	if loc == nil {
		loc = time.Local
	}
	vmid, _ := strconv.Atoi(m[2])
	t, err := time.ParseInLocation("2006_01_02-15_04_05", strings.Join(m[3:6], "_")+"-"+strings.Join(m[6:9], "_"), loc)
	if err != nil {
		return ArchiveInfo{}, fmt.Errorf("archive '%s': bad time stamp: %w", name, err)
	}
	return ArchiveInfo{VMID: vmid, CTime: t, Compression: m[10]}, nil
}

// formatSize is PVE::VZDump's format_size (archive file size line).
func formatSize(size int64) string {
	kb := float64(size) / 1024
	if kb < 1024 {
		return strconv.FormatInt(int64(kb), 10) + "KB"
	}
	mb := kb / 1024
	if mb < 1024 {
		return strconv.FormatInt(int64(mb), 10) + "MB"
	}
	gb := mb / 1024
	if gb < 1024 {
		return fmt.Sprintf("%.2fGB", gb)
	}
	return fmt.Sprintf("%.2fTB", gb/1024)
}

// formatDuration is format_time: hh:mm:ss.
func formatDuration(d time.Duration) string {
	s := int64(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// renderBytes is PVE::Format::render_bytes with precision 2.
func renderBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	u := 0
	if v > 1023 {
		u = min(int(math.Log(v)/math.Log(1024)), len(units)-1)
		v /= math.Pow(1024, float64(u))
	}
	return fmt.Sprintf("%.2f %s", v, units[u])
}

// renderDuration is PVE::Format::render_duration ("1m 5s", "0s").
func renderDuration(d time.Duration) string {
	rest := int64(math.Round(d.Seconds()))
	if rest <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		name string
		n    int64
	}{{"w", 7 * 86400}, {"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}} {
		if v := rest / u.n; v > 0 {
			parts = append(parts, strconv.FormatInt(v, 10)+u.name)
			rest -= v * u.n
		}
	}
	return strings.Join(parts, " ")
}

// rate renders bytes per duration as render_bytes(...)/s.
func rate(n int64, d time.Duration) string {
	if n <= 0 {
		return "0 B/s"
	}
	s := d.Seconds()
	if s < 1 {
		s = 1
	}
	return renderBytes(math.Floor(float64(n)/s)) + "/s"
}
