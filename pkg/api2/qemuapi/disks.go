package qemuapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
)

// newDiskRe is PVE's NEW_DISK_RE: "[STORAGE:]SIZE_IN_GiB" asks for a new
// disk.
var newDiskRe = regexp.MustCompile(`^(([^/:\s]+):)?(\d+(\.\d+)?)$`)

// driveKeys is the set of qemu.DriveKeys, built once and never modified.
var driveKeys = sync.OnceValue(func() map[string]bool { return set(qemu.DriveKeys()...) })

// isDriveKey reports whether key is a disk or CD-ROM slot (not unusedN).
func isDriveKey(key string) bool {
	return driveKeys()[key]
}

// isUnusedKey reports whether key is unusedN.
func isUnusedKey(key string) bool {
	n, ok := strings.CutPrefix(key, "unused")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// driveFormat returns the property-string format of a drive key.
func driveFormat(key string) api.PropertyFormat {
	s := propSchema(schemaProps(), key)
	if s == nil {
		return nil
	}
	f, _ := s.Format.(api.PropertyFormat)
	return f
}

// driveSpec is a drive parameter after checking: its parsed options, and
// for a new disk the storage and size to allocate.
type driveSpec struct {
	key     string
	opts    map[string]string
	storage string // new disk: where
	sizeKiB uint64 // new disk: how big
	format  string // new disk: the format asked for ("" = storage default)
}

// isNew reports whether the spec asks for a new disk.
func (s *driveSpec) isNew() bool { return s.storage != "" }

// prepareDrive checks a drive parameter before anything is written, as
// create_disks would fail later on: a new disk needs an enabled storage
// that holds images, an existing volume must exist and be of content images
// or iso, and absolute paths are for root only. Errors are parameter
// errors naming key. defStorage is the create call's storage parameter.
func (d *Deps) prepareDrive(authid string, vmid int, key, value, defStorage string) (*driveSpec, error) {
	bad := func(format string, args ...any) error {
		return api.ParamError(map[string]string{key: fmt.Sprintf(format, args...)})
	}
	f := driveFormat(key)
	if f == nil {
		return nil, bad("not a drive")
	}
	opts, err := api.ParsePropertyString(f, value, key)
	if err != nil {
		return nil, bad("invalid format - %v", err)
	}
	spec := &driveSpec{key: key, opts: opts}
	file := opts["file"]
	if opts["import-from"] != "" {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: %s: import-from", key)
	}
	switch {
	case file == "none" || file == "cdrom":
		if file == "cdrom" && opts["media"] != "cdrom" {
			return nil, bad("the host's CD-ROM drive needs media=cdrom")
		}
		return spec, nil
	case newDiskRe.MatchString(file):
		m := newDiskRe.FindStringSubmatch(file)
		sid := m[2]
		if sid == "" {
			sid = defStorage
		}
		if sid == "" {
			return nil, bad("no storage ID specified (and no default storage)")
		}
		gib, err := strconv.ParseFloat(m[3], 64)
		if err != nil || gib <= 0 {
			return nil, bad("invalid disk size '%s'", m[3])
		}
		if err := d.checkImageStorage(sid); err != nil {
			return nil, bad("%v", err)
		}
		if !d.can(authid, "/storage/"+sid, "Datastore.AllocateSpace") {
			return nil, api.PermissionDenied("/storage/"+sid, "Datastore.AllocateSpace")
		}
		spec.storage = sid
		spec.sizeKiB = uint64(gib * 1024 * 1024)
		spec.format = opts["format"]
		if spec.format != "" && spec.format != "raw" && spec.format != "qcow2" && spec.format != "vmdk" {
			return nil, bad("unsupported format '%s' for a new disk", spec.format)
		}
		return spec, nil
	case filepath.IsAbs(file):
		if authid != api.RootUser {
			return nil, bad("only root can pass arbitrary filesystem paths")
		}
		if _, err := os.Stat(file); err != nil {
			return nil, bad("volume %s does not exist", file)
		}
		return spec, nil
	}
	sid, volname, err := storage.ParseVolumeID(file)
	if err != nil {
		return nil, bad("unable to parse volume ID '%s'", file)
	}
	if err := d.checkVolumeAccess(authid, vmid, sid, volname); err != nil {
		return nil, err
	}
	path, format, err := d.Storage.Resolve(file)
	if err != nil {
		return nil, bad("%v", err)
	}
	v, err := storage.ParseVolname(volname)
	if err != nil {
		return nil, bad("%v", err)
	}
	if v.VType != storage.VTypeImages && v.VType != "iso" {
		return nil, bad("cannot use volume %s - content type needs to be 'images' or 'iso'", file)
	}
	if opts["format"] != "" && opts["format"] != format {
		return nil, bad("drive '%s' - volume '%s' - 'format=%s' option different from storage format '%s'", key, file, opts["format"], format)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, bad("volume %s does not exist", file)
	}
	return spec, nil
}

// checkImageStorage checks that sid exists, is enabled here, is operated by
// this build and holds VM images.
func (d *Deps) checkImageStorage(sid string) error {
	dir, err := d.Storage.Storage(sid)
	if err != nil {
		return err
	}
	if !slices.Contains(storage.SplitOptList(dir.Section.Options["content"]), storage.VTypeImages) {
		return fmt.Errorf("storage '%s' does not support vm images", sid)
	}
	return nil
}

// checkVolumeAccess is PVE's check_volume_access for a guest disk: the
// VM's own images need nothing more; others need Datastore.Allocate, or
// for ISO images Datastore.AllocateSpace or Datastore.Audit.
func (d *Deps) checkVolumeAccess(authid string, vmid int, sid, volname string) error {
	if authid == api.RootUser {
		return nil
	}
	path := "/storage/" + sid
	if d.can(authid, path, "Datastore.Allocate") {
		return nil
	}
	v, err := storage.ParseVolname(volname)
	if err != nil {
		return api.PermissionDenied(path, "Datastore.Allocate")
	}
	switch {
	case v.VType == storage.VTypeImages && v.VMID == vmid:
		if d.can(authid, path, "Datastore.AllocateSpace") {
			return nil
		}
		return api.PermissionDenied(path, "Datastore.AllocateSpace")
	case v.VType == "iso" || v.VType == "vztmpl":
		if d.canAny(authid, path, "Datastore.AllocateSpace", "Datastore.Audit") {
			return nil
		}
		return api.PermissionDenied(path, "Datastore.AllocateSpace", "Datastore.Audit")
	}
	return api.PermissionDenied(path, "Datastore.Allocate")
}

func (d *Deps) can(authid, path string, privs ...string) bool {
	return authid == api.RootUser || d.Privs.CheckPrivs(authid, path, privs, false)
}

func (d *Deps) canAny(authid, path string, privs ...string) bool {
	return authid == api.RootUser || d.Privs.CheckPrivs(authid, path, privs, true)
}

// allocate creates the new disk of spec and returns the drive value to
// write ("store:100/vm-100-disk-0.qcow2,size=4G,...").
func (d *Deps) allocate(ctx context.Context, vmid int, spec *driveSpec) (value, volid string, err error) {
	volid, err = d.Storage.Alloc(ctx, spec.storage, vmid, spec.format, spec.sizeKiB)
	if err != nil {
		return "", "", err
	}
	opts := make(map[string]string, len(spec.opts))
	for k, v := range spec.opts {
		opts[k] = v
	}
	opts["file"] = volid
	opts["size"] = formatSize(spec.sizeKiB * 1024)
	delete(opts, "format")
	value, err = api.PrintPropertyString(driveFormat(spec.key), opts)
	if err != nil {
		_ = d.Storage.Free(ctx, volid)
		return "", "", err
	}
	return value, volid, nil
}

// formatSize is PVE's format_size: the largest of T, G, M, K that divides
// the size, else bytes.
func formatSize(b uint64) string {
	for _, u := range []struct {
		n   uint64
		sfx string
	}{{1 << 40, "T"}, {1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatUint(b/u.n, 10) + u.sfx
		}
	}
	return strconv.FormatUint(b, 10)
}

// driveVolume returns the volume of a drive or unused value ("" for none,
// cdrom and values that do not parse).
func driveVolume(key, value string) string {
	dr, err := qemu.ParseDrive(key, value)
	if err != nil || dr.Volume == "none" || dr.Volume == "cdrom" || dr.Volume == "" {
		return ""
	}
	return dr.Volume
}

// isCDROMValue reports whether a drive value is a CD-ROM.
func isCDROMValue(key, value string) bool {
	dr, err := qemu.ParseDrive(key, value)
	return err == nil && dr.IsCDROM()
}

// randomMAC returns a MAC address with prefix (PVE's random_ether_addr):
// "BC:24:11" and three random bytes.
func randomMAC(prefix string) (string, error) {
	if prefix == "" {
		prefix = "BC:24:11"
	}
	n := 6 - len(strings.Split(prefix, ":"))
	if n <= 0 || n > 5 {
		return "", errors.New("invalid MAC prefix " + prefix)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	parts := []string{strings.ToUpper(prefix)}
	for _, x := range b {
		parts = append(parts, fmt.Sprintf("%02X", x))
	}
	return strings.Join(parts, ":"), nil
}

// prepareNet adds a generated MAC to a netN value that has none.
func (d *Deps) prepareNet(key, value string) (string, error) {
	f := propSchema(schemaProps(), key).Format.(api.PropertyFormat)
	opts, err := api.ParsePropertyString(f, value, key)
	if err != nil {
		return "", api.ParamError(map[string]string{key: "invalid format - " + err.Error()})
	}
	if opts["macaddr"] != "" {
		return value, nil
	}
	mac, err := randomMAC(d.MACPrefix)
	if err != nil {
		return "", err
	}
	opts["macaddr"] = mac
	return api.PrintPropertyString(f, opts)
}
