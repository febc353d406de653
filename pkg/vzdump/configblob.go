package vzdump

import (
	"regexp"
	"strings"
)

var (
	sectionRE = regexp.MustCompile(`^\[(.*)\]\s*$`)
	unusedRE  = regexp.MustCompile(`^unused\d+:\s*(\S+)`)
)

// disk is one drive included in a backup.
type disk struct {
	Key     string // "scsi0"
	Volid   string
	Path    string // file the disk is read from (stopped VM)
	Format  string // raw, qcow2, ...
	Storage string // "" for an absolute path
	Size    int64  // virtual size in bytes
}

// devName is the archive device name of the drive (PVE's qmdevice).
func (d disk) devName() string { return "drive-" + d.Key }

// assembleConfig is PVE's assemble: the VM's config without snapshots,
// pending and special sections, unused volumes, lock and parent, then one
// "#qmdump#map" line per included disk. skipped reports what was left out.
func assembleConfig(raw string, disks []disk, info func(string)) string {
	var b strings.Builder
	var inSection, snap, pending, special bool
	for _, line := range strings.SplitAfter(raw, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#vzdump#") || strings.HasPrefix(line, "#qmdump#") {
			continue
		}
		if m := sectionRE.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			inSection = true
			switch {
			case strings.EqualFold(m[1], "PENDING"):
				pending = true
			case strings.HasPrefix(m[1], "special:"):
				special = true
			default:
				snap = true
			}
		}
		if inSection {
			continue
		}
		if m := unusedRE.FindStringSubmatch(line); m != nil {
			info("skip unused drive '" + m[1] + "' (not included into backup)")
			continue
		}
		if strings.HasPrefix(line, "lock:") || strings.HasPrefix(line, "parent:") {
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		b.WriteString(line)
	}
	for _, d := range disks {
		b.WriteString("#qmdump#map:" + d.Key + ":" + d.devName() + ":" + d.Storage + ":" + d.Format + ":\n")
	}
	if special {
		info("special config section found (not included into backup)")
	}
	if snap {
		info("snapshots found (not included into backup)")
	}
	if pending {
		info("pending configuration changes found (not included into backup)")
	}
	return b.String()
}
