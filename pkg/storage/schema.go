package storage

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type kind int

const (
	kString kind = iota
	kBool
	kInt
)

type optDef struct {
	kind     kind
	required bool
	fixed    bool
	min      int64
	enum     []string
	check    func(string) (string, error) // format check; may normalize
}

type typeSchema struct {
	opts map[string]optDef
	// section-level checks (PVE's check_config/decode_value)
	section func(o map[string]string, create bool) error
}

// knownTypes are the storage types this package implements.
var knownTypes = map[string]*typeSchema{
	"dir": dirSchema,
}

// KnownType reports whether typ is implemented (its sections are validated
// and canonicalized; other types are kept verbatim).
func KnownType(typ string) bool { _, ok := knownTypes[typ]; return ok }

// AlwaysShared reports whether storages of type typ are shared whatever
// their "shared" option says (PVE's @SHARED_STORAGE).
func AlwaysShared(typ string) bool {
	switch typ {
	case "iscsi", "nfs", "cifs", "rbd", "cephfs", "iscsidirect", "zfs", "drbd", "pbs":
		return true
	}
	return false
}

// DirContentTypes are the content types the dir plugin supports.
var DirContentTypes = []string{"backup", "images", "import", "iso", "none", "rootdir", "snippets", "vztmpl"}

var dirSchema = &typeSchema{
	opts: map[string]optDef{
		"path":                     {kind: kString, required: true, fixed: true, check: checkStoragePath},
		"content-dirs":             {kind: kString, check: checkDirOverrides},
		"nodes":                    {kind: kString, check: checkNodeList},
		"shared":                   {kind: kBool},
		"disable":                  {kind: kBool},
		"prune-backups":            {kind: kString, check: checkPruneBackups},
		"max-protected-backups":    {kind: kInt, min: -1},
		"content":                  {kind: kString, check: checkContentList},
		"format":                   {kind: kString, enum: []string{"raw", "qcow2", "subvol", "vmdk"}},
		"mkdir":                    {kind: kBool},
		"create-base-path":         {kind: kBool},
		"create-subdirs":           {kind: kBool},
		"is_mountpoint":            {kind: kString},
		"bwlimit":                  {kind: kString, check: checkBwlimit},
		"preallocation":            {kind: kString, enum: []string{"off", "metadata", "falloc", "full"}},
		"snapshot-as-volume-chain": {kind: kBool, fixed: true},
	},
	section: dirSection,
}

// checkValue validates one key's value as PVE's check_value (schema check
// included) and returns the encoded form Marshal writes.
func (t *typeSchema) checkValue(k, v string, hasValue bool) (string, error) {
	d, ok := t.opts[k]
	if !ok {
		return "", fmt.Errorf("unexpected property '%s'", k)
	}
	if d.kind == kBool && !hasValue {
		v, hasValue = "1", true
	}
	if !hasValue {
		return "", fmt.Errorf("got undefined value")
	}
	if strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("property contains a line feed")
	}
	switch d.kind {
	case kBool:
		if v != "0" && v != "1" {
			return "", fmt.Errorf("type check ('boolean') failed - got '%s'", v)
		}
	case kInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", fmt.Errorf("type check ('integer') failed - got '%s'", v)
		}
		if n < d.min {
			return "", fmt.Errorf("value must have a minimum value of %d", d.min)
		}
		v = strconv.FormatInt(n, 10)
	}
	if d.enum != nil && !slices.Contains(d.enum, v) {
		return "", fmt.Errorf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(d.enum, ", "))
	}
	if d.check != nil {
		return d.check(v)
	}
	return v, nil
}

func (t *typeSchema) checkSection(o map[string]string, create bool) error {
	if create {
		keys := make([]string, 0, len(t.opts))
		for k := range t.opts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if t.opts[k].required && o[k] == "" {
				return fmt.Errorf("missing value for required option '%s'", k)
			}
		}
	}
	if t.section != nil {
		return t.section(o, create)
	}
	return nil
}

var dirPathRE = regexp.MustCompile(`^/[-/a-zA-Z0-9_.@]+$`)

func dirSection(o map[string]string, create bool) error {
	if create {
		p := o["path"]
		if !dirPathRE.MatchString(p) {
			return fmt.Errorf("illegal path for directory storage: %s", p)
		}
		o["path"] = canonPath(p)
	}
	if c, ok := o["content"]; ok {
		list := splitList(c)
		if slices.Contains(list, "none") && len(list) > 1 {
			return fmt.Errorf("unable to combine 'none' with other content types")
		}
	}
	return nil
}

// canonPath is File::Spec->canonpath: collapse "//" and "/./", drop a
// trailing slash; ".." is kept.
func canonPath(p string) string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for i, s := range parts {
		if (s == "" || s == ".") && i > 0 {
			continue
		}
		out = append(out, s)
	}
	r := strings.Join(out, "/")
	if r == "" {
		return "/"
	}
	return r
}

var verifyPathRE = regexp.MustCompile(`^/[^;()]+`)

func checkStoragePath(v string) (string, error) {
	if !verifyPathRE.MatchString(v) {
		return "", fmt.Errorf("value does not look like a valid absolute path")
	}
	return v, nil
}

func verifyContent(ct string) bool {
	return slices.Contains(DirContentTypes, ct)
}

// checkContentList validates pve-storage-content-list and returns the list
// de-duplicated, in the given order, comma-separated.
func checkContentList(v string) (string, error) {
	var out []string
	for _, c := range splitList(v) {
		if !verifyContent(c) {
			return "", fmt.Errorf("invalid format - invalid content type '%s'", c)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "none", nil
	}
	return strings.Join(out, ","), nil
}

var nodeRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)

func checkNodeList(v string) (string, error) {
	var out []string
	for _, n := range splitList(v) {
		if !nodeRE.MatchString(n) {
			return "", fmt.Errorf("invalid format - value does not look like a valid node name")
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ","), nil
}

var dirOverrideRE = regexp.MustCompile(`^([a-z]+)=([^.]*(?:\.?[^.]+)+)$`)

// checkDirOverrides validates pve-dir-override-list; the encoded form is
// sorted by content type, as PVE's dirs_hash_to_string.
func checkDirOverrides(v string) (string, error) {
	m := map[string]string{}
	for _, e := range splitList(v) {
		sm := dirOverrideRE.FindStringSubmatch(e)
		ok := sm != nil && verifyContent(sm[1]) && len(sm[2]) < 1023
		if ok {
			for _, seg := range strings.Split(sm[2], "/") {
				if len(seg) >= 255 {
					ok = false
				}
			}
		}
		if !ok {
			return "", fmt.Errorf("invalid format - invalid override '%s'", e)
		}
		m[sm[1]] = sm[2]
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ","), nil
}

func parsePropertyString(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range strings.Split(v, ",") {
		if p == "" {
			continue
		}
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("invalid format - missing key in comma-separated list property")
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("invalid format - duplicate key in comma-separated list property: %s", k)
		}
		m[k] = val
	}
	return m, nil
}

func checkPruneBackups(v string) (string, error) {
	m, err := parsePropertyString(v)
	if err != nil {
		return "", err
	}
	positive := false
	for k, val := range m {
		switch k {
		case "keep-all":
			if val != "0" && val != "1" {
				return "", fmt.Errorf("invalid format - keep-all: type check ('boolean') failed - got '%s'", val)
			}
		case "keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return "", fmt.Errorf("invalid format - %s: value must be an integer >= 0, got '%s'", k, val)
			}
			if n > 0 {
				positive = true
			}
		default:
			return "", fmt.Errorf("invalid format - %s: property is not defined in schema and the schema does not allow additional properties", k)
		}
	}
	if positive && m["keep-all"] == "1" {
		return "", fmt.Errorf("invalid format - keep-all cannot be set together with other options")
	}
	return v, nil
}

func checkBwlimit(v string) (string, error) {
	m, err := parsePropertyString(v)
	if err != nil {
		return "", err
	}
	for k, val := range m {
		switch k {
		case "clone", "default", "migration", "move", "restore":
			if _, err := strconv.ParseFloat(val, 64); err != nil {
				return "", fmt.Errorf("invalid format - %s: type check ('number') failed - got '%s'", k, val)
			}
		default:
			return "", fmt.Errorf("invalid format - %s: property is not defined in schema and the schema does not allow additional properties", k)
		}
	}
	return v, nil
}
