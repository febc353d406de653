package pools

import (
	"regexp"
	"slices"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/storage"
)

// storageCfgFile is the storage configuration under the config root.
const storageCfgFile = "storage.cfg"

// storageConf is what the pool methods need of a storage.cfg section.
type storageConf struct {
	Type    string
	Path    string
	Nodes   map[string]bool // nil when unrestricted
	Content []string        // sorted
	Shared  bool
}

// storagePlugin is what PVE's storage plugins declare about content: the
// content types a storage of the type may hold, and its default.
type storagePlugin struct {
	valid, def []string
}

// storagePlugins are the storage types PVE 9 registers; sections of any
// other type are skipped, as PVE skips them (third-party plugins are not
// known here).
var storagePlugins = map[string]storagePlugin{
	"dir":         {[]string{"backup", "images", "import", "iso", "none", "rootdir", "snippets", "vztmpl"}, []string{"images", "rootdir"}},
	"btrfs":       {[]string{"backup", "images", "import", "iso", "none", "rootdir", "snippets", "vztmpl"}, []string{"images", "rootdir"}},
	"nfs":         {[]string{"backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl"}, []string{"images"}},
	"cifs":        {[]string{"backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl"}, []string{"images"}},
	"cephfs":      {[]string{"backup", "import", "iso", "snippets", "vztmpl"}, []string{"backup"}},
	"esxi":        {[]string{"import"}, []string{"import"}},
	"iscsi":       {[]string{"images", "none"}, []string{"images"}},
	"iscsidirect": {[]string{"images", "none"}, []string{"images"}},
	"lvm":         {[]string{"images", "rootdir"}, []string{"images"}},
	"lvmthin":     {[]string{"images", "rootdir"}, []string{"images", "rootdir"}},
	"pbs":         {[]string{"backup", "none"}, []string{"backup"}},
	"rbd":         {[]string{"images", "rootdir"}, []string{"images"}},
	"zfs":         {[]string{"images"}, []string{"images"}},
	"zfspool":     {[]string{"images", "rootdir"}, []string{"images", "rootdir"}},
}

var (
	storageIDRe   = regexp.MustCompile(`^(?i:[a-z][a-z0-9._-]*[a-z0-9])$`)
	nodeNameRe    = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)$`)
	sectionHeadRe = regexp.MustCompile(`^(\S+):\s*(\S+)\s*$`)
	propertyRe    = regexp.MustCompile(`^\s+(\S+)(?:\s+(.*\S))?\s*$`)
	commentRe     = regexp.MustCompile(`^\s*#`)
)

// readStorageCfg reads storage.cfg; a missing file is an empty one.
func readStorageCfg(root *pvefs.Root) (map[string]*storageConf, error) {
	data, err := root.ReadFileOrEmpty(storageCfgFile)
	if err != nil {
		return nil, err
	}
	return parseStorageCfg(data), nil
}

// parseStorageCfg parses storage.cfg the way PVE's section config does as
// far as pools need it (type, path, nodes, content, shared): sections of
// unknown types or with invalid ids are skipped, a repeated property keeps
// its first value, unusable values are dropped. Like PVE it then makes
// sure a "local" dir storage on /var/lib/vz exists for every node, fills
// in each type's default content and marks the shared types shared.
// Required properties of each type are not checked.
func parseStorageCfg(data []byte) map[string]*storageConf {
	ids := map[string]*storageConf{}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if !commentRe.MatchString(l) {
			lines = append(lines, l)
		}
	}
	for i := 0; i < len(lines); i++ {
		m := sectionHeadRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		typ, id := strings.ToLower(m[1]), m[2]
		plugin, known := storagePlugins[typ]
		sc := &storageConf{Type: typ}
		seen := map[string]bool{}
		// the section's properties run to the next empty line
		for i+1 < len(lines) && lines[i+1] != "" {
			i++
			p := propertyRe.FindStringSubmatch(lines[i])
			if p == nil || seen[p[1]] {
				continue
			}
			seen[p[1]] = true
			switch k, v := p[1], p[2]; k {
			case "path":
				sc.Path = v
			case "nodes":
				sc.Nodes = map[string]bool{}
				for _, n := range access.SplitList(v) {
					if nodeNameRe.MatchString(n) {
						sc.Nodes[n] = true
					}
				}
			case "content":
				if c, ok := parseContent(plugin, v); ok {
					sc.Content = c
				} else {
					seen[k] = false
				}
			case "shared":
				b, ok := parseBool(v)
				sc.Shared = b
				seen[k] = ok
			}
		}
		if known && storageIDRe.MatchString(id) {
			ids[id] = sc
		}
	}
	if l := ids["local"]; l == nil || l.Type != "dir" || l.Path != "" && l.Path != "/var/lib/vz" {
		ids["local"] = &storageConf{Type: "dir", Path: "/var/lib/vz",
			Content: []string{"backup", "images", "iso", "rootdir", "snippets", "vztmpl"}}
	}
	ids["local"].Nodes = nil
	for _, sc := range ids {
		if sc.Content == nil {
			sc.Content = slices.Clone(storagePlugins[sc.Type].def)
		}
		if storage.AlwaysShared(sc.Type) {
			sc.Shared = true
		}
	}
	return ids
}

// parseContent is PVE's decoding of a content list: types the storage
// cannot hold are dropped; "none" cannot be combined, and an empty result
// is only valid where "none" is. ok is false for an unusable value.
func parseContent(plugin storagePlugin, v string) ([]string, bool) {
	set := map[string]bool{}
	for _, c := range access.SplitList(v) {
		if slices.Contains(plugin.valid, c) {
			set[c] = true
		}
	}
	if set["none"] && len(set) > 1 {
		return nil, false
	}
	if len(set) == 0 && !slices.Contains(plugin.valid, "none") {
		return nil, false
	}
	return sortedKeys(set), true
}

// parseBool is PVE's parse_boolean.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "on", "yes", "true":
		return true, true
	case "0", "off", "no", "false":
		return false, true
	}
	return false, false
}
