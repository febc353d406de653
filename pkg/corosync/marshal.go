package corosync

import (
	"bytes"
)

// Marshal renders the configuration as PVE's write_conf does: names in byte
// order, two spaces per level, a blank line after each top-level section,
// the nodes and interfaces one per key and sorted by it, and a nodelist and
// a totem section even if they are missing. It does not change c.
func (c *Config) Marshal() ([]byte, error) {
	if c.Main == nil {
		return nil, ErrNoMain
	}
	m := c.Main.Clone()
	// write_conf turns the node and interface hashes back into lists,
	// creating nodelist and totem on the way.
	for _, name := range []string{"nodelist", "totem"} {
		if _, err := m.EnsureSection(name); err != nil {
			return nil, c.errAt(0, "%v", err)
		}
	}
	cc := &Config{Name: c.Name, Main: m}
	if err := cc.normalize(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	dump(&b, m, "")
	return b.Bytes(), nil
}

// dump writes the names of s, each line starting with prefix.
func dump(b *bytes.Buffer, s *Section, prefix string) {
	for _, name := range s.Names() {
		if v, ok := s.values[name]; ok {
			b.WriteString(prefix + name + ": " + v.v + "\n")
			continue
		}
		if sub := s.sections[name]; sub != nil {
			dumpSection(b, name, sub, prefix)
			if prefix == "" {
				b.WriteByte('\n')
			}
			continue
		}
		for _, sub := range s.lists[name] {
			dumpSection(b, name, sub, prefix)
		}
	}
}

func dumpSection(b *bytes.Buffer, name string, s *Section, prefix string) {
	b.WriteString(prefix + name + " {\n")
	dump(b, s, prefix+"  ")
	b.WriteString(prefix + "}\n")
}
