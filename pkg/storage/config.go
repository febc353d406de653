package storage

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pvenode/pvenode/pkg/sectiontext"
)

// DefaultConfig is the storage.cfg a freshly installed PVE node has (written by
// the installer; the lvmthin section exists only on LVM installs).
const DefaultConfig = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"

// LocalPath is the path PVE forces on the "local" storage.
const LocalPath = "/var/lib/vz"

// Config is a parsed storage.cfg. Sections keep the file order; Marshal writes
// them in that order.
type Config struct {
	Sections []*Section
	// Digest is the SHA-1 (hex) of the bytes Parse read, as PVE's digest.
	Digest string
}

// Section is one storage definition.
type Section struct {
	Type string
	ID   string
	// Line is the header's line number in the parsed file, 0 for a section
	// that Parse or Add created.
	Line int
	// Options holds the options of a section of a known type (see KnownType)
	// in their encoded file form, without "type". Booleans are "0" or "1".
	Options map[string]string
	// Raw holds the body lines of a section whose type this package does not
	// implement, verbatim, so that Marshal writes them back unchanged.
	Raw []string
}

// ParseError is one problem found by Parse.
type ParseError = sectiontext.ParseError

// ErrNotFound is returned (wrapped) when a storage ID is not defined.
var ErrNotFound = errors.New("storage does not exist")

// ErrExists is returned (wrapped) by Add when the storage ID is already defined.
var ErrExists = errors.New("storage ID already defined")

var idRE = regexp.MustCompile(`^(?i)[a-z][a-z0-9\-_.]*[a-z0-9]$`)

// ParseStorageID checks a storage ID with PVE's rule (pve-storage-id).
func ParseStorageID(id string) error {
	if len(id) < 2 {
		return fmt.Errorf("storage ID '%s' cannot be shorter than 2 characters", id)
	}
	if !idRE.MatchString(id) {
		return fmt.Errorf("storage ID '%s' contains illegal characters", id)
	}
	return nil
}

// Parse reads storage.cfg. Like PVE it keeps going after an error: a bad value
// drops its key, a bad section is skipped, and every problem is reported in
// the joined error (each a *ParseError with name:line). The returned Config is
// what PVE would see: "local" is added (dir, /var/lib/vz) when missing or not
// a dir on /var/lib/vz, "local" loses any nodes restriction, and dir sections
// without content get "images,rootdir". Sections of types this package does
// not implement are kept verbatim (PVE drops them; we keep them for write).
func Parse(name string, data []byte) (*Config, error) {
	sum := sha1.Sum(data)
	cfg := &Config{Digest: hex.EncodeToString(sum[:])}
	var errs []error
	addErr := func(line int, sec, key, msg string) {
		errs = append(errs, &ParseError{File: name, Line: line, Section: sec, Key: key, Msg: msg})
	}
	sections, stray := sectiontext.Scan(data)
	for _, l := range stray {
		addErr(l.N, "", "", fmt.Sprintf("ignore config line: %s", l.Text))
	}
	for _, raw := range sections {
		typ, id, n := strings.ToLower(raw.Type), raw.ID, raw.Line
		if err := ParseStorageID(id); err != nil {
			addErr(n, "", "", fmt.Sprintf("skip section '%s': %v", id, err))
			continue
		}
		schema, known := knownTypes[typ]
		sec := &Section{Type: typ, ID: id, Line: n}
		if known {
			sec.Options = map[string]string{}
		}
		for _, o := range raw.Body {
			if !known {
				sec.Raw = append(sec.Raw, o.Text)
				continue
			}
			if !o.OK {
				addErr(o.N, id, "", fmt.Sprintf("ignore config line: %s", o.Text))
				continue
			}
			if _, dup := sec.Options[o.Key]; dup {
				addErr(o.N, id, o.Key, "duplicate attribute")
				continue
			}
			nv, err := schema.checkValue(o.Key, o.Value, o.HasValue)
			if err != nil {
				addErr(o.N, id, o.Key, err.Error())
				continue
			}
			sec.Options[o.Key] = nv
		}
		if known {
			if err := schema.checkSection(sec.Options, true); err != nil {
				addErr(n, "", "", fmt.Sprintf("skip section '%s': %v", id, err))
				continue
			}
		}
		if j := cfg.index(id); j >= 0 {
			// PVE keeps the last definition, at the later position.
			addErr(n, id, "", "duplicate section, the earlier definition is dropped")
			cfg.Sections = slices.Delete(cfg.Sections, j, j+1)
		}
		cfg.Sections = append(cfg.Sections, sec)
	}
	cfg.applyPVEDefaults()
	return cfg, errors.Join(errs...)
}

// applyPVEDefaults does what PVE's storage parse_config does after reading.
func (c *Config) applyPVEDefaults() {
	j := c.index("local")
	if j < 0 || c.Sections[j].Type != "dir" ||
		(c.Sections[j].Options["path"] != "" && c.Sections[j].Options["path"] != LocalPath) {
		if j >= 0 {
			c.Sections = slices.Delete(c.Sections, j, j+1)
		}
		local := &Section{Type: "dir", ID: "local", Options: map[string]string{
			"path":          LocalPath,
			"prune-backups": "keep-all=1",
			"content":       "backup,images,iso,rootdir,snippets,vztmpl",
		}}
		c.Sections = append([]*Section{local}, c.Sections...)
	}
	local := c.Sections[c.index("local")]
	if local.Options["path"] == "" {
		local.Options["path"] = LocalPath
	}
	delete(local.Options, "nodes")
	for _, s := range c.Sections {
		if s.Type == "dir" && s.Options["content"] == "" {
			s.Options["content"] = "images,rootdir"
		}
	}
}

func (c *Config) index(id string) int {
	for i, s := range c.Sections {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Lookup returns the section of storage id.
func (c *Config) Lookup(id string) (*Section, error) {
	if i := c.index(id); i >= 0 {
		return c.Sections[i], nil
	}
	return nil, fmt.Errorf("storage '%s' does not exist: %w", id, ErrNotFound)
}

// Marshal writes the config in PVE's canonical form: "type: id" headers,
// options as tab-indented "key value" lines, a blank line after every
// section. Known types write "disable" (bare, only when set) first, then the
// required options, then the optional ones, each group sorted by key; empty
// values are omitted. Raw sections are written verbatim.
func (c *Config) Marshal() []byte {
	var b strings.Builder
	for _, s := range c.Sections {
		fmt.Fprintf(&b, "%s: %s\n", s.Type, s.ID)
		schema, known := knownTypes[s.Type]
		if !known {
			for _, l := range s.Raw {
				b.WriteString(l)
				b.WriteByte('\n')
			}
			b.WriteByte('\n')
			continue
		}
		if s.Options["disable"] == "1" {
			b.WriteString("\tdisable\n")
		}
		keys := make([]string, 0, len(s.Options))
		for k := range s.Options {
			if k != "disable" && s.Options[k] != "" {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			ri, rj := schema.opts[keys[i]].required, schema.opts[keys[j]].required
			if ri != rj {
				return ri
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(&b, "\t%s %s\n", k, s.Options[k])
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Add defines a new storage with PVE's checks (ID syntax, unused ID, known
// type, every option valid for the type, required options present). The
// section is appended at the end, as PVE orders a new ID last.
func (c *Config) Add(typ, id string, opts map[string]string) error {
	if err := ParseStorageID(id); err != nil {
		return err
	}
	if c.index(id) >= 0 {
		return fmt.Errorf("storage ID '%s' already defined: %w", id, ErrExists)
	}
	schema, ok := knownTypes[typ]
	if !ok {
		return fmt.Errorf("unknown section type '%s'", typ)
	}
	o := map[string]string{}
	for k, v := range opts {
		nv, err := schema.checkValue(k, v, true)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		o[k] = nv
	}
	if err := schema.checkSection(o, true); err != nil {
		return err
	}
	if typ == "dir" && o["content"] == "" {
		o["content"] = "images,rootdir"
	}
	c.Sections = append(c.Sections, &Section{Type: typ, ID: id, Options: o})
	return nil
}

// Update sets and deletes options of storage id with PVE's rules: fixed
// options (path) cannot change, required or fixed ones cannot be deleted,
// and a key cannot be set and deleted at once.
func (c *Config) Update(id string, set map[string]string, del []string) error {
	s, err := c.Lookup(id)
	if err != nil {
		return err
	}
	schema, ok := knownTypes[s.Type]
	if !ok {
		return fmt.Errorf("storage '%s': type '%s' is not supported", id, s.Type)
	}
	o := maps(s.Options)
	for _, k := range del {
		d, ok := schema.opts[k]
		switch {
		case !ok:
			return fmt.Errorf("no such option '%s'", k)
		case d.required:
			return fmt.Errorf("unable to delete required option '%s'", k)
		case d.fixed:
			return fmt.Errorf("unable to delete fixed option '%s'", k)
		}
		if _, both := set[k]; both {
			return fmt.Errorf("cannot set and delete property '%s' at the same time!", k)
		}
		delete(o, k)
	}
	for k, v := range set {
		if d, ok := schema.opts[k]; ok && d.fixed {
			return fmt.Errorf("can't change value of fixed parameter '%s'", k)
		}
		nv, err := schema.checkValue(k, v, true)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		o[k] = nv
	}
	if err := schema.checkSection(o, false); err != nil {
		return err
	}
	if s.Type == "dir" && o["content"] == "" {
		o["content"] = "images,rootdir"
	}
	s.Options = o
	return nil
}

// Delete removes storage id from the config.
func (c *Config) Delete(id string) error {
	i := c.index(id)
	if i < 0 {
		return fmt.Errorf("storage '%s' does not exist: %w", id, ErrNotFound)
	}
	c.Sections = slices.Delete(c.Sections, i, i+1)
	return nil
}

func maps(m map[string]string) map[string]string {
	o := make(map[string]string, len(m))
	for k, v := range m {
		o[k] = v
	}
	return o
}

// Bool reports a boolean option; def when unset.
func (s *Section) Bool(key string, def bool) bool {
	v, ok := s.Options[key]
	if !ok || v == "" {
		return def
	}
	return v == "1"
}

// Content returns the allowed content types (empty for "none").
func (s *Section) Content() []string {
	var out []string
	for _, c := range splitList(s.Options["content"]) {
		if c != "none" {
			out = append(out, c)
		}
	}
	return out
}

// HasContent reports whether content type ct is allowed.
func (s *Section) HasContent(ct string) bool { return slices.Contains(s.Content(), ct) }

// Enabled reports whether the storage is enabled on node (not disabled, and
// node in "nodes" when that is set), as PVE's storage_check_enabled.
func (s *Section) Enabled(node string) bool {
	if s.Bool("disable", false) {
		return false
	}
	nodes := splitList(s.Options["nodes"])
	return len(nodes) == 0 || slices.Contains(nodes, node)
}

// splitList splits like PVE's split_list: commas, semicolons and whitespace.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
	})
}
