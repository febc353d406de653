// Package sectioncfg reads and writes PVE's section-config files (jobs.cfg,
// replication.cfg, ...), as pve-common's PVE::SectionConfig does: sections of
// "type: id" headers followed by TAB-indented "key value" lines, ended by an
// empty line, with every value checked against the type's schema.
//
// Parsing keeps going after a problem the way PVE does (a bad value drops
// its key, a section missing a required key is dropped) and reports every
// problem with file and line, so a caller can refuse a file an operator
// broke while still knowing what PVE would have made of it.
package sectioncfg

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/sectiontext"
)

// Type is one section type: its options and how its IDs look.
type Type struct {
	Name string
	// Props are the options of the type (not "type" and not the ID). A
	// property that is not Optional is required; an array property may
	// repeat.
	Props map[string]*api.Schema
	// CheckID validates a section ID and returns it normalised; nil accepts
	// any non-blank ID.
	CheckID func(id string) (string, error)
}

// Section is one section. Values are kept in their file form: booleans
// "0"/"1", numbers in decimal, text as written (comments not decoded).
type Section struct {
	Type string
	ID   string
	// Line is the header's line in the parsed file, 0 for a new section.
	Line int
	// Opts holds the single-valued options, Lists the array ones.
	Opts  map[string]string
	Lists map[string][]string
	// Raw holds the body lines of a section of a type the caller did not
	// give (jobs.cfg's realm-sync jobs, say), verbatim, so that Marshal
	// writes them back unchanged instead of losing them.
	Raw []string
}

// Config is a parsed file; Sections keep the file order.
type Config struct {
	Sections []*Section
	// Digest is the SHA-1 (hex) of the bytes parsed, PVE's config digest.
	Digest string
}

// ParseError is one problem found by Parse.
type ParseError = sectiontext.ParseError

// Parse reads a section-config file with the given types. The returned
// Config holds what PVE would see; the error joins every *ParseError.
func Parse(name string, data []byte, types []*Type) (*Config, error) {
	sum := sha1.Sum(data)
	cfg := &Config{Digest: hex.EncodeToString(sum[:])}
	byName := map[string]*Type{}
	for _, t := range types {
		byName[t.Name] = t
	}
	var errs []error
	bad := func(line int, sec, key, msg string) {
		errs = append(errs, &ParseError{File: name, Line: line, Section: sec, Key: key, Msg: msg})
	}
	sections, stray := sectiontext.Scan(data)
	for _, l := range stray {
		bad(l.N, "", "", "ignore config line: "+l.Text)
	}
	for _, raw := range sections {
		typ, id := raw.Type, raw.ID
		t := byName[typ]
		if t != nil && t.CheckID != nil {
			nid, err := t.CheckID(id)
			if err != nil {
				bad(raw.Line, "", "", fmt.Sprintf("skip section '%s': %v", id, err))
				continue
			}
			id = nid
		}
		sec := &Section{Type: typ, ID: id, Line: raw.Line, Opts: map[string]string{}, Lists: map[string][]string{}}
		for _, o := range raw.Body {
			if t == nil {
				// a type the caller did not give: kept verbatim
				sec.Raw = append(sec.Raw, o.Text)
				continue
			}
			if !o.OK {
				bad(o.N, id, "", "ignore config line: "+o.Text)
				continue
			}
			s, known := t.Props[o.Key]
			if !known {
				bad(o.N, id, "", fmt.Sprintf("ignore unknown property '%s'", o.Key))
				continue
			}
			v := o.Value
			if !o.HasValue && s.Type == "boolean" {
				v = "1"
			}
			if err := api.CheckValue(s, v); err != nil {
				bad(o.N, id, o.Key, err.Error())
				continue
			}
			if s.Type == "array" {
				sec.Lists[o.Key] = append(sec.Lists[o.Key], v)
				continue
			}
			if _, dup := sec.Opts[o.Key]; dup {
				bad(o.N, id, o.Key, "duplicate attribute")
				continue
			}
			sec.Opts[o.Key] = v
		}
		if t != nil {
			if missing := t.missing(sec); missing != "" {
				bad(raw.Line, "", "", fmt.Sprintf("skip section '%s': missing value for required option '%s'", id, missing))
				continue
			}
		}
		if j := cfg.Index(id); j >= 0 {
			bad(raw.Line, id, "", "duplicate section ID, the earlier definition is dropped")
			cfg.Sections = slices.Delete(cfg.Sections, j, j+1)
		}
		cfg.Sections = append(cfg.Sections, sec)
	}
	return cfg, errors.Join(errs...)
}

// missing returns the first required option sec lacks, or "".
func (t *Type) missing(sec *Section) string {
	for _, k := range sortedKeys(t.Props) {
		s := t.Props[k]
		if s.Optional {
			continue
		}
		if _, ok := sec.Opts[k]; ok {
			continue
		}
		if len(sec.Lists[k]) > 0 {
			continue
		}
		return k
	}
	return ""
}

// Check validates a section's options against its type as Parse would,
// with errors naming the option; it is what the API runs before writing.
func Check(sec *Section, types []*Type) error {
	var t *Type
	for _, x := range types {
		if x.Name == sec.Type {
			t = x
		}
	}
	if t == nil {
		return fmt.Errorf("unknown section type '%s'", sec.Type)
	}
	for k, v := range sec.Opts {
		s, ok := t.Props[k]
		if !ok || s.Type == "array" {
			return fmt.Errorf("%s: unknown property", k)
		}
		if err := api.CheckValue(s, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	for k, list := range sec.Lists {
		s, ok := t.Props[k]
		if !ok || s.Type != "array" {
			return fmt.Errorf("%s: unknown property", k)
		}
		for _, v := range list {
			if err := api.CheckValue(s, v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	if m := t.missing(sec); m != "" {
		return fmt.Errorf("%s: property is missing and it is not optional", m)
	}
	return nil
}

// Index returns the position of the section with the ID, or -1.
func (c *Config) Index(id string) int {
	for i, s := range c.Sections {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Get returns the section with the ID, or nil.
func (c *Config) Get(id string) *Section {
	if i := c.Index(id); i >= 0 {
		return c.Sections[i]
	}
	return nil
}

// Delete removes the section with the ID and reports whether it was there.
func (c *Config) Delete(id string) bool {
	i := c.Index(id)
	if i < 0 {
		return false
	}
	c.Sections = slices.Delete(c.Sections, i, i+1)
	return true
}

// Marshal writes the file as PVE's write_config: per section the header,
// then comment, then a bare "disable" flag when set, then the required
// options sorted, then the optional ones sorted, each "\tkey value" (array
// options a line per value; empty values left out), and an empty line.
func (c *Config) Marshal(types []*Type) []byte {
	byName := map[string]*Type{}
	for _, t := range types {
		byName[t.Name] = t
	}
	var b strings.Builder
	for _, sec := range c.Sections {
		t := byName[sec.Type]
		fmt.Fprintf(&b, "%s: %s\n", sec.Type, sec.ID)
		if t == nil {
			for _, l := range sec.Raw {
				b.WriteString(l + "\n")
			}
			b.WriteString("\n")
			continue
		}
		done := map[string]bool{"comment": true, "disable": true}
		if v := sec.Opts["comment"]; v != "" {
			fmt.Fprintf(&b, "\tcomment %s\n", v)
		}
		if v := sec.Opts["disable"]; v == "1" {
			b.WriteString("\tdisable\n")
		}
		var req, opt []string
		for _, k := range sortedKeys(sec.Opts) {
			if done[k] {
				continue
			}
			if t != nil && t.Props[k] != nil && !t.Props[k].Optional {
				req = append(req, k)
			} else {
				opt = append(opt, k)
			}
		}
		for _, k := range sortedKeys(sec.Lists) {
			if t != nil && t.Props[k] != nil && !t.Props[k].Optional {
				req = append(req, k)
			} else {
				opt = append(opt, k)
			}
		}
		sort.Strings(req)
		sort.Strings(opt)
		for _, k := range append(req, opt...) {
			if list, ok := sec.Lists[k]; ok {
				for _, v := range list {
					if v != "" {
						fmt.Fprintf(&b, "\t%s %s\n", k, v)
					}
				}
				continue
			}
			if v := sec.Opts[k]; v != "" {
				fmt.Fprintf(&b, "\t%s %s\n", k, v)
			}
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
