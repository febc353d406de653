package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// ConfigReader reads files of the config root (a *pvefs.Root); the
// package takes only this, so that it stays free of the config root.
type ConfigReader interface {
	ReadFileOrEmpty(name string) ([]byte, error)
}

// Host is this node's view of the cluster's storages: storage.cfg read
// through the config root, and the plugin of each section, for the callers
// that work with volume IDs (guest disks) rather than storage sections.
type Host struct {
	// Root is the config root holding storage.cfg.
	Root ConfigReader
	// Node is this node's name (storages restricted to other nodes are not
	// available here).
	Node string
	// Dir are the host options of every dir storage.
	Dir DirOptions
	// LocalPath, if set, replaces the path PVE forces on the storage
	// "local" (/var/lib/vz), for an installation under a prefix.
	LocalPath string
}

// Config reads and parses storage.cfg. As in PVE, problems in the file drop
// what they concern and the rest is used.
func (h *Host) Config() (*Config, error) {
	data, err := h.Root.ReadFileOrEmpty("storage.cfg")
	if err != nil {
		return nil, err
	}
	cfg, perr := Parse("storage.cfg", data)
	if cfg == nil {
		return nil, perr
	}
	if h.LocalPath != "" {
		if local, err := cfg.Lookup("local"); err == nil {
			local.Options["path"] = h.LocalPath
		}
	}
	return cfg, nil
}

// CheckEnabled is PVE's storage_check_enabled for node.
func CheckEnabled(s *Section, node string) error {
	if s.Options["disable"] == "1" {
		return fmt.Errorf("storage '%s' is disabled", s.ID)
	}
	if nodes := SplitOptList(s.Options["nodes"]); len(nodes) > 0 && !slices.Contains(nodes, node) {
		return fmt.Errorf("storage '%s' is not available on node '%s'", s.ID, node)
	}
	return nil
}

// SplitOptList splits a list-valued section option (content, nodes) as
// PVE's split_list does.
func SplitOptList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 0
	})
}

// ErrNotImplemented marks storage types this build does not operate.
var ErrNotImplemented = fmt.Errorf("not implemented")

// Storage returns the enabled dir storage id (as the section and its
// plugin); other types fail with ErrNotImplemented.
func (h *Host) Storage(id string) (*Dir, error) {
	cfg, err := h.Config()
	if err != nil {
		return nil, err
	}
	s, err := cfg.Lookup(id)
	if err != nil {
		return nil, fmt.Errorf("storage '%s' does not exist", id)
	}
	if err := CheckEnabled(s, h.Node); err != nil {
		return nil, err
	}
	if s.Type != "dir" {
		return nil, fmt.Errorf("%w: storage type '%s'", ErrNotImplemented, s.Type)
	}
	return NewDir(s, h.Dir)
}

// Resolve maps a volume ID or an absolute path to the path QEMU opens and
// its format, for a disk of a guest (qemu-server's path and format
// detection). Absolute paths are passed through as raw.
func (h *Host) Resolve(volid string) (path, format string, err error) {
	if filepath.IsAbs(volid) {
		return volid, "raw", nil
	}
	sid, volname, err := ParseVolumeID(volid)
	if err != nil {
		return "", "", err
	}
	d, err := h.Storage(sid)
	if err != nil {
		return "", "", err
	}
	p, v, err := d.Path(volname)
	if err != nil {
		return "", "", err
	}
	return p, v.Format, nil
}

// Alloc allocates a disk image of sizeKiB for vmid on storage sid (format
// "" is the storage default) and returns its volume ID.
func (h *Host) Alloc(ctx context.Context, sid string, vmid int, format string, sizeKiB uint64) (string, error) {
	d, err := h.Storage(sid)
	if err != nil {
		return "", err
	}
	if !slices.Contains(SplitOptList(d.Section.Options["content"]), VTypeImages) {
		return "", fmt.Errorf("storage '%s' does not support vm images", sid)
	}
	return d.Alloc(ctx, vmid, format, "", sizeKiB)
}

// Free deletes the volume volid.
func (h *Host) Free(ctx context.Context, volid string) error {
	sid, volname, err := ParseVolumeID(volid)
	if err != nil {
		return err
	}
	d, err := h.Storage(sid)
	if err != nil {
		return err
	}
	return d.Free(ctx, volname)
}

// ImageInfo runs qemu-img info on the volume volid.
func (h *Host) ImageInfo(ctx context.Context, volid string) (*ImageInfo, error) {
	p, format, err := h.Resolve(volid)
	if err != nil {
		return nil, err
	}
	return h.Dir.QemuImg.Info(ctx, p, format)
}

// LocalPathUnder is the path of the "local" storage of an installation
// under prefix (the embedded one), or "" for a real node, where PVE's
// /var/lib/vz applies.
func LocalPathUnder(prefix string) string {
	if prefix == "" {
		return ""
	}
	return filepath.Join(prefix, LocalPath)
}
