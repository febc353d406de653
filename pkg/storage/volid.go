package storage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Volume types (vtype) as PVE's parse_volname returns them.
const (
	VTypeImages   = "images"
	VTypeRootdir  = "rootdir"
	VTypeISO      = "iso"
	VTypeVZTmpl   = "vztmpl"
	VTypeBackup   = "backup"
	VTypeSnippets = "snippets"
	VTypeImport   = "import"
)

// Volume is a parsed volume name (the part of a volume ID after "storage:").
type Volume struct {
	VType    string
	Name     string // file name (for a linked clone, the clone's name)
	VMID     int    // owner; 0 when the name carries none
	BaseName string // linked clone: the base image's name
	BaseVMID int    // linked clone: the base image's owner
	IsBase   bool
	Format   string // raw, qcow2, vmdk, subvol; "raw" for iso/vztmpl/backup/snippets; import: ova, ovf, "ova+qcow2"...

	// owner and baseOwner are the VMIDs as written ("0100" stays "0100"),
	// because PVE builds paths from the text, not the number.
	owner, baseOwner string
}

var volumeIDRE = regexp.MustCompile(`^(?i:([a-z][a-z0-9\-_.]*[a-z0-9])):(.+)$`)

// ParseVolumeID splits "storage:volname" with PVE's rule.
func ParseVolumeID(volid string) (storage, volname string, err error) {
	m := volumeIDRE.FindStringSubmatch(volid)
	if m == nil {
		return "", "", fmt.Errorf("unable to parse volume ID '%s'", volid)
	}
	return m[1], m[2], nil
}

// FormatVolumeID joins a storage ID and a volume name.
func FormatVolumeID(storage, volname string) string { return storage + ":" + volname }

// ParseVMID parses a VMID with PVE's parse_vmid rule (digits only).
func ParseVMID(s string) (int, error) {
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("VMID '%s' contains illegal characters", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" {
		return 0, fmt.Errorf("VMID '%s' contains illegal characters", s)
	}
	return n, nil
}

var (
	nameDirRE  = regexp.MustCompile(`^((vm-|base-|subvol-)(\d+)-[^/\s]+\.(raw|qcow2|vmdk|subvol))$`)
	snapNameRE = regexp.MustCompile(`^snap-.*\.qcow2$`)
	nameDir2RE = regexp.MustCompile(`^((base-)?[^/\s]+\.(raw|qcow2|vmdk|subvol))$`)

	linkedRE   = regexp.MustCompile(`^(\d+)/(\S+)/(\d+)/(\S+)$`)
	imageRE    = regexp.MustCompile(`^(\d+)/(\S+)$`)
	isoRE      = regexp.MustCompile(`^iso/([^/]+\.(?i:iso|img))$`)
	vztmplRE   = regexp.MustCompile(`^vztmpl/([^/]+\.(?i:tar|tar\.(?:gz|xz|zst|bz2)))$`)
	backupRE   = regexp.MustCompile(`^backup/([^/]+\.(?:tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?))$`)
	vzdumpRE   = regexp.MustCompile(`^vzdump-(?:openvz|lxc|qemu)-(\d+)-.+`)
	snippetsRE = regexp.MustCompile(`^snippets/([^/]+)$`)
	ovaRE      = regexp.MustCompile(`^import/([ a-zA-Z0-9\-.+=_]+\.ova/[ a-zA-Z0-9\-.+=_]+\.(qcow2|raw|vmdk))$`)
	importRE   = regexp.MustCompile(`^import/([ a-zA-Z0-9\-.+=_]+\.(ova|ovf|qcow2|raw|vmdk))$`)
)

// ParseNameDir checks an image file name (PVE's parse_name_dir) and returns
// its format and whether it is a base image.
func ParseNameDir(name string) (format string, isBase bool, err error) {
	if m := nameDirRE.FindStringSubmatch(name); m != nil {
		return m[4], m[2] == "base-", nil
	}
	if snapNameRE.MatchString(name) {
		return "", false, fmt.Errorf("'%s' is a snapshot filename, not a volume!", name)
	}
	if m := nameDir2RE.FindStringSubmatch(name); m != nil {
		return m[3], m[2] != "", nil
	}
	return "", false, fmt.Errorf("unable to parse volume filename '%s'", name)
}

// ParseVolname parses a dir-storage volume name (PVE's Plugin parse_volname).
// Beyond PVE it refuses names that are "." or ".." or contain NUL, so that no
// volume name can leave its content directory.
func ParseVolname(volname string) (*Volume, error) {
	bad := func() (*Volume, error) {
		return nil, fmt.Errorf("unable to parse directory volume name '%s'", volname)
	}
	if strings.ContainsRune(volname, 0) {
		return bad()
	}
	if m := linkedRE.FindStringSubmatch(volname); m != nil {
		if _, _, err := ParseNameDir(m[2]); err != nil {
			return nil, err
		}
		format, isBase, err := ParseNameDir(m[4])
		if err != nil {
			return nil, err
		}
		bvmid, err1 := strconv.Atoi(m[1])
		vmid, err2 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil {
			return bad()
		}
		return &Volume{VType: VTypeImages, Name: m[4], VMID: vmid, BaseName: m[2], BaseVMID: bvmid, IsBase: isBase, Format: format,
			owner: m[3], baseOwner: m[1]}, nil
	}
	if m := imageRE.FindStringSubmatch(volname); m != nil {
		format, isBase, err := ParseNameDir(m[2])
		if err != nil {
			return nil, err
		}
		vmid, err := strconv.Atoi(m[1])
		if err != nil {
			return bad()
		}
		return &Volume{VType: VTypeImages, Name: m[2], VMID: vmid, IsBase: isBase, Format: format, owner: m[1]}, nil
	}
	simple := func(vt, name, format string) (*Volume, error) {
		if name == "." || name == ".." {
			return bad()
		}
		return &Volume{VType: vt, Name: name, Format: format}, nil
	}
	if m := isoRE.FindStringSubmatch(volname); m != nil {
		return simple(VTypeISO, m[1], "raw")
	}
	if m := vztmplRE.FindStringSubmatch(volname); m != nil {
		return simple(VTypeVZTmpl, m[1], "raw")
	}
	if m := backupRE.FindStringSubmatch(volname); m != nil {
		v, err := simple(VTypeBackup, m[1], "raw")
		if err == nil {
			if bm := vzdumpRE.FindStringSubmatch(m[1]); bm != nil {
				v.VMID, _ = strconv.Atoi(bm[1])
			}
		}
		return v, err
	}
	if m := snippetsRE.FindStringSubmatch(volname); m != nil {
		return simple(VTypeSnippets, m[1], "raw")
	}
	if m := ovaRE.FindStringSubmatch(volname); m != nil {
		return simple(VTypeImport, m[1], "ova+"+m[2])
	}
	if m := importRE.FindStringSubmatch(volname); m != nil {
		return simple(VTypeImport, m[1], m[2])
	}
	return bad()
}

// Volname returns the volume name for v (the inverse of ParseVolname).
func (v *Volume) Volname() string {
	switch v.VType {
	case VTypeImages:
		if v.BaseName != "" {
			return fmt.Sprintf("%s/%s/%s/%s", v.baseOwnerDir(), v.BaseName, v.ownerDir(), v.Name)
		}
		return fmt.Sprintf("%s/%s", v.ownerDir(), v.Name)
	default:
		return v.VType + "/" + v.Name
	}
}

// ownerDir is the owner directory name below images/.
func (v *Volume) ownerDir() string {
	if v.owner != "" {
		return v.owner
	}
	return strconv.Itoa(v.VMID)
}

func (v *Volume) baseOwnerDir() string {
	if v.baseOwner != "" {
		return v.baseOwner
	}
	return strconv.Itoa(v.BaseVMID)
}
