package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// vtypeSubdirs is PVE's default layout below a dir storage's path.
var vtypeSubdirs = map[string]string{
	VTypeImages:   "images",
	VTypeRootdir:  "private",
	VTypeISO:      "template/iso",
	VTypeVZTmpl:   "template/cache",
	VTypeBackup:   "dump",
	VTypeSnippets: "snippets",
	VTypeImport:   "import",
}

// maxVolumesPerGuest is PVE's $MAX_VOLUMES_PER_GUEST.
const maxVolumesPerGuest = 1024

// DirOptions are the host collaborators of a Dir. The zero value is PVE's
// behaviour on a real node.
type DirOptions struct {
	QemuImg QemuImg
	// LockDir holds the per-storage flock files (PVE: /var/lock/pve-manager);
	// empty means no cross-process lock.
	LockDir string
	// MountsFile is read for is_mountpoint (default /proc/mounts).
	MountsFile string
	// IsContainer reports whether vmid is a container, so that its images
	// list as "rootdir" (PVE looks it up in the cluster VM list). Nil: never.
	IsContainer func(vmid int) bool
	// InfoTimeout bounds each qemu-img info during listing (default 10s).
	InfoTimeout time.Duration
	// StatTimeout bounds statfs and directory checks (PVE: 2s).
	StatTimeout time.Duration
}

// Dir is a storage of type "dir".
type Dir struct {
	ID      string
	Section *Section
	opt     DirOptions
}

// NewDir returns the dir plugin for section s.
func NewDir(s *Section, opt DirOptions) (*Dir, error) {
	if s.Type != "dir" {
		return nil, fmt.Errorf("storage '%s' is of type '%s', not 'dir'", s.ID, s.Type)
	}
	if s.Options["path"] == "" {
		return nil, fmt.Errorf("storage definition has no path")
	}
	if opt.MountsFile == "" {
		opt.MountsFile = "/proc/mounts"
	}
	if opt.InfoTimeout == 0 {
		opt.InfoTimeout = 10 * time.Second
	}
	if opt.StatTimeout == 0 {
		opt.StatTimeout = 2 * time.Second
	}
	return &Dir{ID: s.ID, Section: s, opt: opt}, nil
}

// Root is the storage's path.
func (d *Dir) Root() string { return d.Section.Options["path"] }

// SubDir is the directory of a content type (content-dirs override or PVE's
// default layout).
func (d *Dir) SubDir(vtype string) (string, error) {
	def, ok := vtypeSubdirs[vtype]
	if !ok {
		return "", fmt.Errorf("unknown vtype '%s'", vtype)
	}
	sub := def
	for _, e := range splitList(d.Section.Options["content-dirs"]) {
		if k, v, ok := strings.Cut(e, "="); ok && k == vtype {
			sub = v
		}
	}
	return d.Root() + "/" + sub, nil
}

// Path returns the file system path of volname (PVE's filesystem_path). The
// result is always inside the storage's path: names are checked by
// ParseVolname and the joined path is checked lexically.
func (d *Dir) Path(volname string) (string, *Volume, error) {
	v, err := ParseVolname(volname)
	if err != nil {
		return "", nil, err
	}
	dir, err := d.SubDir(v.VType)
	if err != nil {
		return "", nil, err
	}
	if v.VType == VTypeImages {
		dir += "/" + v.ownerDir()
	}
	p := dir + "/" + v.Name
	root := filepath.Clean(d.Root())
	if c := filepath.Clean(p); !strings.HasPrefix(c, root+"/") || c == filepath.Clean(dir) {
		return "", nil, fmt.Errorf("volume '%s' resolves outside storage '%s'", volname, d.ID)
	}
	return p, v, nil
}

// VolumePath is Path for a full volume ID of this storage.
func (d *Dir) VolumePath(volid string) (string, *Volume, error) {
	sid, volname, err := ParseVolumeID(volid)
	if err != nil {
		return "", nil, err
	}
	if sid != d.ID {
		return "", nil, fmt.Errorf("storage ID mismatch (%s != %s)", sid, d.ID)
	}
	return d.Path(volname)
}

// VolumeInfo is one entry of a content listing, with PVE's field names.
type VolumeInfo struct {
	VolID     string `json:"volid"`
	Format    string `json:"format"`
	Size      int64  `json:"size"`
	Used      *int64 `json:"used,omitempty"`
	VMID      int    `json:"vmid,omitempty"`
	CTime     int64  `json:"ctime,omitempty"`
	Content   string `json:"content"`
	Parent    string `json:"parent,omitempty"`
	Subtype   string `json:"subtype,omitempty"`
	Notes     string `json:"notes,omitempty"`
	Protected bool   `json:"protected,omitempty"`
}

// ListOptions filter List. Content empty means every content type the
// storage allows; VMID 0 means any owner (iso and vztmpl are listed only
// then, as in PVE).
type ListOptions struct {
	Content []string
	VMID    int
}

// listOrder is PVE's volume_list content order.
var listOrder = []string{VTypeRootdir, VTypeImages, VTypeVZTmpl, VTypeISO, VTypeBackup, VTypeSnippets, VTypeImport}

// List returns the volumes of the storage, sorted by lower-cased volid
// (PVE's volume_list with list_volumes).
func (d *Dir) List(ctx context.Context, o ListOptions) ([]VolumeInfo, error) {
	cts := o.Content
	if len(cts) == 0 {
		cts = listOrder
	}
	var res []VolumeInfo
	for _, ct := range cts {
		if !d.Section.HasContent(ct) {
			continue
		}
		var items []VolumeInfo
		var err error
		switch ct {
		case VTypeImages, VTypeRootdir:
			items, err = d.listImages(ctx, o.VMID)
			if err != nil {
				return nil, err
			}
			kept := items[:0]
			for _, it := range items {
				it.Content = VTypeImages
				if d.opt.IsContainer != nil && d.opt.IsContainer(it.VMID) {
					it.Content = VTypeRootdir
				}
				if it.Content == ct {
					kept = append(kept, it)
				}
			}
			items = kept
		case VTypeISO, VTypeVZTmpl:
			if o.VMID != 0 {
				continue
			}
			fallthrough
		case VTypeBackup, VTypeSnippets, VTypeImport:
			items, err = d.listFiles(ct, o.VMID)
			if err != nil {
				return nil, err
			}
			for i := range items {
				items[i].Content = ct
			}
		default:
			return nil, fmt.Errorf("invalid content type '%s'", ct)
		}
		res = append(res, items...)
	}
	slices.SortStableFunc(res, func(a, b VolumeInfo) int {
		return strings.Compare(strings.ToLower(a.VolID), strings.ToLower(b.VolID))
	})
	return res, nil
}

var (
	imageFileRE  = regexp.MustCompile(`^[^/]+\.(qcow2|raw|subvol|vmdk)$`)
	parentRE     = regexp.MustCompile(`^\.\./(\d+)/([^/]+\.(?:qcow2|raw|subvol|vmdk))$`)
	ownerDirRE   = regexp.MustCompile(`^\d+$`)
	isoFileRE    = regexp.MustCompile(`^[^/]+\.(?i:iso|img)$`)
	vztmplFileRE = regexp.MustCompile(`^[^/]+\.(?i:(tar)|tar\.(gz|xz|zst|bz2))$`)
	backupFileRE = regexp.MustCompile(`^[^/]+\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$`)
	importFileRE = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(?i:(ova|ovf|qcow2|raw|vmdk))$`)
	archiveRE    = regexp.MustCompile(`^vzdump-(lxc|openvz|qemu)-`)
	stdArchiveRE = regexp.MustCompile(`^vzdump-(?:lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.`)
)

// globNames lists dir like a shell glob "*": no dot files, sorted.
func globNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (d *Dir) listImages(ctx context.Context, vmid int) ([]VolumeInfo, error) {
	imgdir, err := d.SubDir(VTypeImages)
	if err != nil {
		return nil, err
	}
	var res []VolumeInfo
	for _, owner := range globNames(imgdir) {
		// PVE globs [0-9][0-9]* and keeps all-digit owners.
		if len(owner) < 2 || !ownerDirRE.MatchString(owner) {
			continue
		}
		ovmid, err := strconv.Atoi(owner)
		if err != nil || (vmid != 0 && ovmid != vmid) {
			continue
		}
		for _, name := range globNames(imgdir + "/" + owner) {
			m := imageFileRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			if _, _, err := ParseNameDir(name); err != nil {
				continue
			}
			format := m[1]
			fn := imgdir + "/" + owner + "/" + name
			info, ctime, err := d.fileSizeInfo(ctx, fn, format)
			if errors.Is(err, ErrWrongFormat) {
				info, ctime, err = d.fileSizeInfo(ctx, fn, "raw")
				format = "invalid"
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fs.ErrNotExist) {
					continue // PVE skips an image it could not size
				}
				return nil, err
			}
			volid := FormatVolumeID(d.ID, owner+"/"+name)
			if pm := parentRE.FindStringSubmatch(info.BackingFilename); pm != nil {
				volid = FormatVolumeID(d.ID, pm[1]+"/"+pm[2]+"/"+owner+"/"+name)
			}
			used := info.ActualSize
			res = append(res, VolumeInfo{
				VolID: volid, Format: format, Size: info.VirtualSize, Used: &used,
				VMID: ovmid, Parent: info.BackingFilename, CTime: ctime,
			})
		}
	}
	return res, nil
}

// fileSizeInfo is PVE's file_size_info for trusted files: a directory is a
// subvol of size 0, anything else is asked to qemu-img.
func (d *Dir) fileSizeInfo(ctx context.Context, fn, format string) (*ImageInfo, int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fn, &st); err != nil {
		return nil, 0, &fs.PathError{Op: "stat", Path: fn, Err: err}
	}
	ctime := st.Ctim.Sec
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if format != "subvol" {
			return nil, ctime, fmt.Errorf("expected format '%s', but '%s' is a directory", format, fn)
		}
		return &ImageInfo{Format: "subvol"}, ctime, nil
	}
	if format == "subvol" {
		return nil, ctime, fmt.Errorf("expected format '%s', but '%s' is not a directory", format, fn)
	}
	q := d.opt.QemuImg
	ictx, cancel := context.WithTimeout(ctx, d.opt.InfoTimeout)
	defer cancel()
	info, err := q.Info(ictx, fn, format)
	return info, ctime, err
}

func (d *Dir) listFiles(ct string, vmid int) ([]VolumeInfo, error) {
	dir, err := d.SubDir(ct)
	if err != nil {
		return nil, err
	}
	var res []VolumeInfo
	for _, name := range globNames(dir) {
		fn := dir + "/" + name
		var st unix.Stat_t
		if unix.Stat(fn, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue
		}
		info := VolumeInfo{Size: st.Size}
		switch ct {
		case VTypeISO:
			if !isoFileRE.MatchString(name) {
				continue
			}
			info.VolID, info.Format = FormatVolumeID(d.ID, "iso/"+name), "iso"
		case VTypeVZTmpl:
			m := vztmplFileRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			info.VolID, info.Format = FormatVolumeID(d.ID, "vztmpl/"+name), "tar"
			if m[1] == "" {
				info.Format = "t" + m[2]
			}
		case VTypeBackup:
			m := backupFileRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			if vmid != 0 && !strings.Contains(name, "-"+strconv.Itoa(vmid)+"-") {
				continue
			}
			info.VolID, info.Format = FormatVolumeID(d.ID, "backup/"+name), m[1]
			info.Subtype = "unknown"
			if am := archiveRE.FindStringSubmatch(name); am != nil {
				info.Subtype = am[1]
				if sm := stdArchiveRE.FindStringSubmatch(name); sm != nil && strings.HasSuffix(name, "."+m[1]) && len(name) == len(sm[0])+len(m[1]) {
					n := make([]int, 6)
					for i := range n {
						n[i], _ = strconv.Atoi(sm[i+2])
					}
					info.CTime = time.Date(n[0], time.Month(n[1]), n[2], n[3], n[4], n[5], 0, time.Local).Unix()
				}
			}
			if vmid != 0 {
				info.VMID = vmid
			} else if vm := regexp.MustCompile(`-([1-9][0-9]{2,8})-[^/]+\.` + regexp.QuoteMeta(m[1]) + `$`).FindStringSubmatch(name); vm != nil {
				info.VMID, _ = strconv.Atoi(vm[1])
			}
			if notes, err := os.ReadFile(fn + ".notes"); err == nil {
				first, _, _ := strings.Cut(string(notes), "\n")
				info.Notes = first
			}
			if _, err := os.Lstat(fn + ".protected"); err == nil {
				info.Protected = true
			}
		case VTypeSnippets:
			info.VolID, info.Format = FormatVolumeID(d.ID, "snippets/"+name), "snippet"
		case VTypeImport:
			m := importFileRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			info.VolID, info.Format = FormatVolumeID(d.ID, "import/"+name), m[1]
		}
		if info.CTime == 0 {
			info.CTime = st.Ctim.Sec
		}
		res = append(res, info)
	}
	return res, nil
}

// lock runs fn under PVE's local storage lock (flock on
// LockDir/pve-storage-ID, 10 s timeout) when LockDir is set.
func (d *Dir) lock(ctx context.Context, fn func() error) error {
	if d.opt.LockDir == "" {
		return fn()
	}
	_ = os.MkdirAll(d.opt.LockDir, 0o755)
	lp := filepath.Join(d.opt.LockDir, "pve-storage-"+d.ID)
	f, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("can't lock file '%s' - %v", lp, err)
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("can't lock file '%s' - %v", lp, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("can't lock file '%s' - got timeout", lp)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("can't lock file '%s' - %w", lp, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}

// DefaultFormat is the storage's default image format ("format" or raw).
func (d *Dir) DefaultFormat() string {
	if f := d.Section.Options["format"]; f != "" {
		return f
	}
	return "raw"
}

// PreallocationOpt is PVE's preallocation_cmd_opt: the -o preallocation value
// for format, or "" when none is passed.
func PreallocationOpt(setting, format string) (string, error) {
	switch format {
	case "qcow2":
		if setting == "" {
			setting = "metadata"
		}
		if !slices.Contains([]string{"off", "metadata", "falloc", "full"}, setting) {
			return "", fmt.Errorf("preallocation mode '%s' not supported by format '%s'", setting, format)
		}
		return setting, nil
	case "raw":
		if setting == "" || setting == "metadata" {
			setting = "off"
		}
		if !slices.Contains([]string{"off", "falloc", "full"}, setting) {
			return "", fmt.Errorf("preallocation mode '%s' not supported by format '%s'", setting, format)
		}
		return setting, nil
	}
	return "", nil
}

var diskNumRE = regexp.MustCompile(`(?:vm|base|subvol|basevol)-(\d+)-disk-(\d+)`)

// nextDiskName is PVE's find_free_diskname for a dir storage (which allows
// subvol, so a disk number is taken whatever its format).
func (d *Dir) nextDiskName(imgdir string, vmid int, format string) (string, error) {
	used := map[int]bool{}
	for _, n := range globNames(imgdir) {
		if _, _, err := ParseNameDir(n); err != nil {
			continue
		}
		for _, m := range diskNumRE.FindAllStringSubmatch(n, -1) {
			if m[1] == strconv.Itoa(vmid) {
				k, _ := strconv.Atoi(m[2])
				used[k] = true
				break
			}
		}
	}
	prefix := "vm"
	if format == "subvol" {
		prefix = "subvol"
	}
	for i := 0; i < maxVolumesPerGuest; i++ {
		if !used[i] {
			return fmt.Sprintf("%s-%d-disk-%d.%s", prefix, vmid, i, format), nil
		}
	}
	return "", fmt.Errorf("unable to allocate an image name for VM %d in storage '%s'", vmid, d.ID)
}

// Alloc creates a disk image for vmid (PVE's vdisk_alloc with alloc_image):
// format "" is the storage default, name "" picks the next free
// vm-VMID-disk-N.FMT, sizeKiB is in KiB (1024 bytes). It activates the
// storage first and returns the volume ID.
func (d *Dir) Alloc(ctx context.Context, vmid int, format, name string, sizeKiB uint64) (string, error) {
	if vmid <= 0 {
		return "", fmt.Errorf("no VMID specified")
	}
	if format == "" {
		format = d.DefaultFormat()
	}
	if !slices.Contains([]string{"raw", "qcow2", "vmdk", "subvol"}, format) {
		return "", fmt.Errorf("unsupported format '%s'", format)
	}
	if name != "" {
		if !strings.HasPrefix(name, fmt.Sprintf("vm-%d-", vmid)) && !strings.HasPrefix(name, fmt.Sprintf("base-%d-", vmid)) &&
			!(format == "subvol" && strings.HasPrefix(name, fmt.Sprintf("subvol-%d-", vmid))) {
			return "", fmt.Errorf("illegal name '%s' - should be 'vm-%d-*'", name, vmid)
		}
	}
	if err := d.Activate(ctx); err != nil {
		return "", err
	}
	var volid string
	err := d.lock(ctx, func() error {
		imgdir, err := d.SubDir(VTypeImages)
		if err != nil {
			return err
		}
		imgdir += "/" + strconv.Itoa(vmid)
		if err := os.MkdirAll(imgdir, 0o740); err != nil {
			return fmt.Errorf("mkdir %s: %v", imgdir, err)
		}
		if name == "" {
			if name, err = d.nextDiskName(imgdir, vmid, format); err != nil {
				return err
			}
		}
		tmpfmt, _, err := ParseNameDir(name)
		if err != nil {
			return err
		}
		if tmpfmt != format {
			return fmt.Errorf("illegal name '%s' - wrong extension for format ('%s != '%s')", name, tmpfmt, format)
		}
		path := imgdir + "/" + name
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("disk image '%s' already exists", path)
		}
		if format == "subvol" {
			if sizeKiB != 0 {
				return fmt.Errorf("storage does not support subvol quotas")
			}
			if err := os.Mkdir(path, 0o755); err != nil {
				return fmt.Errorf("unable to create subvol '%s' - %v", path, err)
			}
		} else {
			prealloc, err := PreallocationOpt(d.Section.Options["preallocation"], format)
			if err != nil {
				return err
			}
			if err := d.opt.QemuImg.Create(ctx, format, sizeKiB, path, prealloc); err != nil {
				_ = os.Remove(path)
				_ = os.Remove(imgdir)
				return err
			}
			_ = os.Chmod(path, 0o640) // PVE runs this under umask 0037
		}
		volid = FormatVolumeID(d.ID, strconv.Itoa(vmid)+"/"+name)
		return nil
	})
	return volid, err
}

// ErrProtected is returned (wrapped) by Free for a protected backup.
var ErrProtected = errors.New("volume is protected")

// Free deletes a volume (PVE's vdisk_free with free_image). A missing file is
// not an error, as in PVE. The file itself is unlinked, never a symlink's
// target; the emptied parent directory is removed like PVE does.
func (d *Dir) Free(ctx context.Context, volname string) error {
	path, v, err := d.Path(volname)
	if err != nil {
		return err
	}
	if err := d.Activate(ctx); err != nil {
		return err
	}
	return d.lock(ctx, func() error {
		if v.VType == VTypeBackup {
			if _, err := os.Lstat(path + ".protected"); err == nil {
				return fmt.Errorf("cannot remove protected volume '%s' on '%s': %w", volname, d.ID, ErrProtected)
			}
		}
		if v.Format == "subvol" {
			if err := os.RemoveAll(path); err != nil {
				return err
			}
		} else {
			st, err := os.Lstat(path)
			if err != nil || !(st.Mode().IsRegular() || st.Mode()&fs.ModeSymlink != 0) {
				return nil // PVE: warn "disk image does not exist"
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("unlink '%s' failed - %v", path, err)
			}
		}
		_ = os.Remove(filepath.Dir(path)) // rmdir, only succeeds when empty
		return nil
	})
}

// Status is a storage's usage in bytes (PVE's status via statfs).
type Status struct {
	Total  uint64 `json:"total"`
	Used   uint64 `json:"used"`
	Avail  uint64 `json:"avail"`
	Active bool   `json:"active"`
}

// Status returns total/used/avail from statfs of the path. A storage whose
// is_mountpoint is not mounted, or whose statfs fails or times out, is
// inactive with zero sizes (PVE returns undef then), not an error.
func (d *Dir) Status(ctx context.Context) (Status, error) {
	if mp := d.mountpoint(); mp != "" {
		ok, err := d.isMounted(mp)
		if err != nil {
			return Status{}, err
		}
		if !ok {
			return Status{}, nil
		}
	}
	var st unix.Statfs_t
	err := d.withTimeout(ctx, func() error { return unix.Statfs(d.Root(), &st) })
	if err != nil || st.Blocks == 0 {
		return Status{}, nil
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return Status{
		Total:  st.Blocks * bs,
		Used:   (st.Blocks - st.Bfree) * bs,
		Avail:  st.Bavail * bs,
		Active: true,
	}, nil
}

// withTimeout runs a possibly hanging file system call with StatTimeout; on
// timeout the call's goroutine is abandoned (PVE forks a child instead).
func (d *Dir) withTimeout(ctx context.Context, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d.opt.StatTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mountpoint is PVE's parse_is_mountpoint: "" when not configured.
func (d *Dir) mountpoint() string {
	v, ok := d.Section.Options["is_mountpoint"]
	if !ok {
		return ""
	}
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return d.Root()
	case "0", "off", "no", "false":
		return ""
	}
	return v
}

func (d *Dir) isMounted(mp string) (bool, error) {
	real, err := filepath.EvalSymlinks(mp)
	if err != nil {
		return false, nil
	}
	f, err := os.Open(d.opt.MountsFile)
	if err != nil {
		return false, fmt.Errorf("read %s: %v", d.opt.MountsFile, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && unescapeMount(fields[1]) == real {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMount decodes the octal escapes (\040) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Activate prepares the storage as PVE's activate_storage for dir: refuses an
// unmounted is_mountpoint, creates the base path (create-base-path, else
// mkdir, default yes), checks it is a directory, creates the content
// subdirectories (create-subdirs and mkdir, default yes; "dump" also for
// rootdir), and refuses two content types resolving to one directory.
func (d *Dir) Activate(ctx context.Context) error {
	if mp := d.mountpoint(); mp != "" {
		ok, err := d.isMounted(mp)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("unable to activate storage '%s' - directory is expected to be a mount point but is not mounted: '%s'", d.ID, mp)
		}
	}
	o := d.Section.Options
	createBase := true
	if v, ok := o["create-base-path"]; ok {
		createBase = v == "1"
	} else if v, ok := o["mkdir"]; ok {
		createBase = v == "1"
	}
	if createBase {
		_ = os.MkdirAll(d.Root(), 0o755) // PVE's mkpath ignores errors here
	}
	err := d.withTimeout(ctx, func() error {
		st, err := os.Stat(d.Root())
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return errors.New("not a directory")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unable to activate storage '%s' - directory '%s' does not exist or is unreachable", d.ID, d.Root())
	}
	content := d.Section.Content()
	if d.Section.Bool("create-subdirs", true) && d.Section.Bool("mkdir", true) {
		vtypes := make([]string, 0, len(vtypeSubdirs))
		for vt := range vtypeSubdirs {
			vtypes = append(vtypes, vt)
		}
		slices.Sort(vtypes)
		for _, vt := range vtypes {
			if !slices.Contains(content, vt) && !(vt == VTypeBackup && slices.Contains(content, VTypeRootdir)) {
				continue
			}
			sub, _ := d.SubDir(vt)
			if err := os.MkdirAll(sub, 0o755); err != nil {
				msg := fmt.Sprintf("failed to create content directory '%s' for content '%s' - %v", sub, vt, err)
				if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
					msg += " - ensure that you have read and write access to your storage!"
				}
				return errors.New(msg)
			}
		}
	}
	seen := map[string]bool{}
	sorted := slices.Clone(content)
	slices.Sort(sorted)
	for _, vt := range sorted {
		sub, err := d.SubDir(vt)
		if err != nil {
			continue
		}
		abs, err := filepath.EvalSymlinks(sub)
		if err != nil {
			continue
		}
		if seen[abs] {
			return fmt.Errorf("storage '%s' uses directory %s for multiple content types", d.ID, abs)
		}
		seen[abs] = true
	}
	return nil
}

// Info is one storage's entry of PVE's storage_info (the /nodes/{node}/storage
// list), sizes in bytes.
type Info struct {
	Type    string `json:"type"`
	Content string `json:"content"`
	Shared  bool   `json:"shared"`
	Enabled bool   `json:"enabled"`
	Status
}

// Info activates an enabled storage and reports its status; activation or
// status failures leave it inactive, as PVE (which only warns).
func (d *Dir) Info(ctx context.Context, node string) Info {
	in := Info{
		Type:    d.Section.Type,
		Content: d.Section.Options["content"],
		Shared:  d.Section.Bool("shared", false),
		Enabled: d.Section.Enabled(node),
	}
	if !in.Enabled {
		return in
	}
	if d.Activate(ctx) != nil {
		return in
	}
	in.Status, _ = d.Status(ctx)
	return in
}
