package corosync

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Section is one section of corosync.conf. Each name in it holds either a
// value ("key: value"), a subsection, or a list of subsections; the names
// "node" and "interface" always hold lists (PVE's $conf_array_sections),
// other section names a single subsection. The zero Section is empty and
// ready to use.
type Section struct {
	line     int // line of the section's opening in the parsed file, 0 if made in code
	values   map[string]value
	sections map[string]*Section
	lists    map[string][]*Section
}

// value is a key's value and the line it was read from (0 if set in code).
type value struct {
	v    string
	line int
}

// NewSection returns an empty section.
func NewSection() *Section { return &Section{} }

// isList reports whether sections called name form a list.
func isList(name string) bool { return name == "node" || name == "interface" }

// Line returns the line of the file where the section was opened, or 0 if it
// was made in code.
func (s *Section) Line() int { return s.line }

// Get returns the value of key, and whether key holds a value.
func (s *Section) Get(key string) (string, bool) {
	v, ok := s.values[key]
	return v.v, ok
}

// KeyLine returns the line key's value was read from, or 0 if the value was
// set in code or key holds no value.
func (s *Section) KeyLine(key string) int { return s.values[key].line }

// Set gives key the value val. Both must be tokens that Marshal can write
// and Parse read back: not empty, no white space, '#', '{' or '}', and no ':'
// in the key. Set refuses a key that names a subsection or a list.
func (s *Section) Set(key, val string) error {
	if err := checkName(key); err != nil {
		return err
	}
	if val == "" || strings.ContainsAny(val, "#{}") || strings.IndexFunc(val, isSpaceRune) >= 0 {
		return fmt.Errorf("corosync: invalid value %q for %q", val, key)
	}
	if s.sections[key] != nil || s.lists[key] != nil {
		return fmt.Errorf("corosync: %q is a section, not a key", key)
	}
	s.setValue(key, val, 0)
	return nil
}

// setValue sets key as PVE's parser does: it replaces whatever key held.
func (s *Section) setValue(key, val string, line int) {
	delete(s.sections, key)
	delete(s.lists, key)
	if s.values == nil {
		s.values = map[string]value{}
	}
	s.values[key] = value{val, line}
}

// Delete removes whatever name holds.
func (s *Section) Delete(name string) {
	delete(s.values, name)
	delete(s.sections, name)
	delete(s.lists, name)
}

// Section returns the subsection name, or nil if there is none.
func (s *Section) Section(name string) *Section { return s.sections[name] }

// EnsureSection returns the subsection name, adding an empty one if there is
// none. name must not be a list name nor hold a value.
func (s *Section) EnsureSection(name string) (*Section, error) {
	if sub := s.sections[name]; sub != nil {
		return sub, nil
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if isList(name) {
		return nil, fmt.Errorf("corosync: %q sections form a list", name)
	}
	if _, ok := s.values[name]; ok {
		return nil, fmt.Errorf("corosync: %q is a key, not a section", name)
	}
	sub := &Section{}
	if s.sections == nil {
		s.sections = map[string]*Section{}
	}
	s.sections[name] = sub
	return sub, nil
}

// List returns the list of subsections called name ("node", "interface").
// The slice is the section's own; use SetList to change it.
func (s *Section) List(name string) []*Section { return s.lists[name] }

// SetList replaces the list of subsections called name; an empty list
// removes it. name must be a list name ("node", "interface") and must not
// hold a value.
func (s *Section) SetList(name string, subs []*Section) error {
	if !isList(name) {
		return fmt.Errorf("corosync: %q sections do not form a list", name)
	}
	if _, ok := s.values[name]; ok {
		return fmt.Errorf("corosync: %q is a key, not a section", name)
	}
	if slices.Contains(subs, nil) {
		return fmt.Errorf("corosync: nil section in list %q", name)
	}
	if len(subs) == 0 {
		delete(s.lists, name)
		return nil
	}
	if s.lists == nil {
		s.lists = map[string][]*Section{}
	}
	s.lists[name] = subs
	return nil
}

// Names returns every name of the section (keys, subsections and lists) in
// byte order, the order Marshal writes them in.
func (s *Section) Names() []string {
	names := make([]string, 0, len(s.values)+len(s.sections)+len(s.lists))
	for k := range s.values {
		names = append(names, k)
	}
	for k := range s.sections {
		names = append(names, k)
	}
	for k, l := range s.lists {
		if len(l) > 0 {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// Clone returns a deep copy of the section.
func (s *Section) Clone() *Section {
	if s == nil {
		return nil
	}
	c := &Section{line: s.line, values: maps.Clone(s.values)}
	if len(s.sections) > 0 {
		c.sections = make(map[string]*Section, len(s.sections))
		for k, sub := range s.sections {
			c.sections[k] = sub.Clone()
		}
	}
	if len(s.lists) > 0 {
		c.lists = make(map[string][]*Section, len(s.lists))
		for k, l := range s.lists {
			cl := make([]*Section, len(l))
			for i, sub := range l {
				cl[i] = sub.Clone()
			}
			c.lists[k] = cl
		}
	}
	return c
}

// Equal reports whether s and o hold the same names and values, ignoring
// line numbers.
func (s *Section) Equal(o *Section) bool {
	if s == nil || o == nil {
		return s == o
	}
	if len(s.values) != len(o.values) || len(s.sections) != len(o.sections) || len(s.nonEmptyLists()) != len(o.nonEmptyLists()) {
		return false
	}
	for k, v := range s.values {
		if ov, ok := o.values[k]; !ok || ov.v != v.v {
			return false
		}
	}
	for k, sub := range s.sections {
		if !sub.Equal(o.sections[k]) {
			return false
		}
	}
	for _, k := range s.nonEmptyLists() {
		l, ol := s.lists[k], o.lists[k]
		if len(l) != len(ol) {
			return false
		}
		for i := range l {
			if !l[i].Equal(ol[i]) {
				return false
			}
		}
	}
	return true
}

// nonEmptyLists returns the names of the lists that have sections.
func (s *Section) nonEmptyLists() []string {
	var names []string
	for k, l := range s.lists {
		if len(l) > 0 {
			names = append(names, k)
		}
	}
	return names
}

// checkName checks a key or section name given in code.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "#{}:") || strings.IndexFunc(name, isSpaceRune) >= 0 {
		return fmt.Errorf("corosync: invalid name %q", name)
	}
	return nil
}

// isSpace reports whether b is white space to PVE's parser: Perl's \s on a
// byte string, the six ASCII white-space characters.
func isSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func isSpaceRune(r rune) bool { return r < 0x80 && isSpace(byte(r)) }
