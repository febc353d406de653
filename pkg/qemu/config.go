package qemu

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/pvenode/pvenode/pkg/pvetext"
)

// Props is one section of a VM config: key to raw value, exactly as in the
// file (values are not normalised). The comment lines of a section are kept
// decoded under the key "description", as PVE does.
type Props map[string]string

// Config is a parsed /etc/pve/qemu-server/VMID.conf.
type Config struct {
	VMID int
	// Props is the main section: the current configuration.
	Props Props
	// Pending holds the [PENDING] section (changes not yet applied to the
	// running VM, plus "delete": a list of keys to remove). Empty if none.
	Pending Props
	// Special holds the [special:NAME] sections (cloudinit, fleecing) by NAME.
	Special map[string]Props
	// Snapshots holds the [SNAPNAME] sections by snapshot name.
	Snapshots map[string]Props
}

// ParseError locates a syntax error in a VM config file.
type ParseError struct {
	File string // "VMID.conf"
	Line int    // 1-based
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Digest returns the digest PVE reports for a config file and checks on
// updates: the lowercase hex SHA-1 of the raw file content.
func Digest(raw []byte) string {
	sum := sha1.Sum(raw)
	return hex.EncodeToString(sum[:])
}

var (
	pendingHdrRE  = regexp.MustCompile(`(?i)^\[PENDING\]\s*$`)
	specialHdrRE  = regexp.MustCompile(`(?i)^\[special:(cloudinit|fleecing)\]\s*$`)
	snapshotHdrRE = regexp.MustCompile(`(?i)^\[([a-z][a-z0-9_\-]+)\]\s*$`)
	anyHdrRE      = regexp.MustCompile(`^\[([^\]]*)\]\s*$`)
	descrLineRE   = regexp.MustCompile(`^description:\s*(.*\S)\s*$`)
)

// Parse reads a VM config as PVE's parse_vm_config does, in its strict mode:
// an unknown [section], a repeated section, "delete" outside [PENDING] or a
// line that is neither a comment nor "key: value" is an error naming the
// file and line (PVE's lenient mode would warn and drop it; refusing keeps a
// later write from losing data). Unknown keys are kept; values are kept as
// written. "cdrom" is renamed to "ide2" as PVE does.
// splitKeyLine splits a "key: value" line as the pattern
// ^([a-z][a-z_-]*\d*):\s*(.+?)\s*$ does: the value loses its surrounding
// white space, and of a value of only white space the last character stays
// (which Parse refuses).
func splitKeyLine(line string) (key, value string, ok bool) {
	i := 0
	if i >= len(line) || line[i] < 'a' || line[i] > 'z' {
		return "", "", false
	}
	for i < len(line) && (line[i] >= 'a' && line[i] <= 'z' || line[i] == '_' || line[i] == '-') {
		i++
	}
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i >= len(line) || line[i] != ':' || i+1 >= len(line) {
		return "", "", false
	}
	key, rest := line[:i], line[i+1:]
	value = strings.TrimFunc(rest, isSpace)
	if value == "" {
		value = rest[len(rest)-1:] // the pattern's lazy group keeps one
	}
	return key, value, true
}

// isSpace is the \s of Go's regexp (RE2): space, \t, \n, \f and \r.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}

func Parse(vmid int, data []byte) (*Config, error) {
	file := fmt.Sprintf("%d.conf", vmid)
	c := &Config{VMID: vmid, Props: Props{}, Pending: Props{}, Special: map[string]Props{}, Snapshots: map[string]Props{}}

	cur := c.Props
	curIsPending := false
	var descr *string
	finish := func() {
		if descr != nil {
			cur["description"] = strings.TrimRightFunc(*descr, unicode.IsSpace)
		}
		descr = nil
	}
	addDescr := func(s string) {
		if descr == nil {
			descr = new(string)
		}
		*descr += s
	}
	seenPending := false

	for i, line := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		fail := func(format string, a ...any) error {
			return &ParseError{File: file, Line: lineNo, Msg: fmt.Sprintf(format, a...)}
		}
		if strings.TrimFunc(line, isSpace) == "" {
			continue
		}
		if line[0] == '[' { // section headers; the common key lines skip the regexes
			if pendingHdrRE.MatchString(line) {
				finish()
				if seenPending {
					return nil, fail("duplicate section: pending")
				}
				seenPending = true
				cur, curIsPending = c.Pending, true
				continue
			}
			if m := specialHdrRE.FindStringSubmatch(line); m != nil {
				finish()
				if _, dup := c.Special[m[1]]; dup {
					return nil, fail("duplicate special section: %s", m[1])
				}
				cur, curIsPending = Props{}, false
				c.Special[m[1]] = cur
				continue
			}
			if m := snapshotHdrRE.FindStringSubmatch(line); m != nil {
				finish()
				if _, dup := c.Snapshots[m[1]]; dup {
					return nil, fail("duplicate snapshot section: %s", m[1])
				}
				cur, curIsPending = Props{}, false
				c.Snapshots[m[1]] = cur
				continue
			}
			if m := anyHdrRE.FindStringSubmatch(line); m != nil {
				return nil, fail("unknown section: '%s'", m[1])
			}
		}
		if strings.HasPrefix(line, "#") {
			addDescr(pvetext.Decode(line[1:]) + "\n")
			continue
		}
		if strings.HasPrefix(line, "description:") {
			if m := descrLineRE.FindStringSubmatch(line); m != nil {
				addDescr(pvetext.Decode(m[1]))
				continue
			}
		}
		key, value, ok := splitKeyLine(line)
		if !ok {
			return nil, fail("unable to parse config: %s", line)
		}
		if key == "delete" && !curIsPending {
			return nil, fail("property 'delete' is only allowed in [PENDING]")
		}
		if strings.TrimSpace(value) == "" {
			return nil, fail("unable to parse value of '%s'", key)
		}
		if key == "cdrom" {
			key = "ide2"
		}
		cur[key] = value
	}
	finish()
	delete(c.Props, "snapstate")
	return c, nil
}

// Marshal writes the config as PVE's write_vm_config does: the description as
// "#" comment lines, the keys sorted, then [PENDING] (if not empty), the
// [special:NAME] sections and the snapshots, each sorted by name. A file PVE
// wrote comes back byte for byte. [special:cloudinit] is dropped, as PVE
// does, when no drive of the main section is a cloud-init volume.
func (c *Config) Marshal() []byte {
	var b strings.Builder
	writeSection(&b, c.Props, false)
	if len(c.Pending) > 0 {
		b.WriteString("\n[PENDING]\n")
		writeSection(&b, c.Pending, true)
	}
	for _, name := range sortedKeys(c.Special) {
		if name == "cloudinit" && !c.Props.hasCloudinit() {
			continue
		}
		b.WriteString("\n[special:" + name + "]\n")
		writeSection(&b, c.Special[name], false)
	}
	for _, name := range sortedKeys(c.Snapshots) {
		b.WriteString("\n[" + name + "]\n")
		writeSection(&b, c.Snapshots[name], false)
	}
	return []byte(b.String())
}

func writeSection(b *strings.Builder, p Props, pending bool) {
	if d, ok := p["description"]; ok {
		// Perl truthiness: "" and "0" are false.
		if d != "" && d != "0" {
			lines := strings.Split(d, "\n")
			for len(lines) > 0 && lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			for _, l := range lines {
				b.WriteString("#" + pvetext.Encode(l) + "\n")
			}
		} else if pending {
			b.WriteString("#\n")
		}
	}
	for _, k := range sortedKeys(p) {
		switch k {
		case "digest", "description", "pending", "snapshots", "special-sections":
			continue
		}
		b.WriteString(k + ": " + p[k] + "\n")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
