// Package vmlist reads the cluster's list of guests from the config root
// as pmxcfs builds it (its vmlist): every <vmid>.conf under
// nodes/<node>/{qemu-server,openvz,lxc}/.
package vmlist

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Guest is an entry of the cluster's VM list: the node whose directory
// holds the guest's config, and the guest type.
type Guest struct {
	Node string
	Type string // qemu, lxc or openvz
}

// guestDirs are the config directories pmxcfs indexes under nodes/<node>/,
// in the order it scans them, with the guest type each holds.
var guestDirs = []struct{ dir, typ string }{
	{"qemu-server", "qemu"},
	{"openvz", "openvz"},
	{"lxc", "lxc"},
}

// Read builds the VM list as pmxcfs does: every <vmid>.conf in
// nodes/<node>/{qemu-server,openvz,lxc}/ for valid node names. A vmid
// found twice keeps its first entry (nodes in name order).
func Read(root *pvefs.Root) (map[int]Guest, error) {
	dir, err := root.Path("nodes")
	if err != nil {
		return nil, err
	}
	out := map[int]Guest{}
	nodes, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if !n.IsDir() || !validNodeName(n.Name()) {
			continue
		}
		for _, gd := range guestDirs {
			files, err := os.ReadDir(filepath.Join(dir, n.Name(), gd.dir))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				vmid, ok := ConfigVMID(f.Name())
				if !ok || !f.Type().IsRegular() {
					continue
				}
				if _, dup := out[vmid]; !dup {
					out[vmid] = Guest{Node: n.Name(), Type: gd.typ}
				}
			}
		}
	}
	return out, nil
}

// validNodeName is pmxcfs's node directory rule: letters, digits and
// inner hyphens.
func validNodeName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' && i != 0 && i != len(s)-1 {
			continue
		}
		return false
	}
	return s != ""
}

// ConfigVMID returns the vmid of a guest config file name: decimal digits
// without a leading zero, at most 2^32-1, then ".conf".
func ConfigVMID(name string) (int, bool) {
	digits, ok := strings.CutSuffix(name, ".conf")
	if !ok || digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || v > math.MaxUint32 {
		return 0, false
	}
	return int(v), true
}
