// Package sectiontext splits PVE's section-config files (storage.cfg,
// jobs.cfg, replication.cfg, ...) into sections and option lines, with
// PVE::SectionConfig's text rules: lines whose first non-blank character is
// '#' are comments everywhere; a section starts with "type: id" and ends at
// the first truly empty line; its body lines start with white space and
// hold a key and an optional value. What the options mean is the caller's.
package sectiontext

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	headerRE  = regexp.MustCompile(`^(\S+):\s*(\S+)\s*$`)
	keyRE     = regexp.MustCompile(`^\s+(\S+)(?:\s+(.*\S))?\s*$`)
	commentRE = regexp.MustCompile(`^\s*#`)
)

// Line is a line of a file with its number (from 1).
type Line struct {
	N    int
	Text string
}

// Option is a body line of a section. OK is false for a line that is not
// "<white space>key [value]"; a key without value has HasValue false.
type Option struct {
	Line
	Key, Value string
	HasValue   bool
	OK         bool
}

// Section is a "type: id" header with its body lines.
type Section struct {
	Type, ID string
	Line     int // the header's line number
	Body     []Option
}

// Scan splits data into sections; stray are the non-empty lines outside
// any section that are not a header.
func Scan(data []byte) (sections []Section, stray []Line) {
	lines := strings.Split(string(data), "\n")
	var cur *Section
	for i, l := range lines {
		if commentRE.MatchString(l) {
			continue
		}
		n := i + 1
		if cur != nil {
			if l == "" {
				sections = append(sections, *cur)
				cur = nil
				continue
			}
			o := Option{Line: Line{N: n, Text: l}}
			if m := keyRE.FindStringSubmatch(l); m != nil {
				o.Key, o.Value, o.OK = m[1], m[2], true
				o.HasValue = strings.TrimSpace(l) != m[1]
			}
			cur.Body = append(cur.Body, o)
			continue
		}
		if l == "" {
			continue
		}
		m := headerRE.FindStringSubmatch(l)
		if m == nil {
			stray = append(stray, Line{N: n, Text: l})
			continue
		}
		cur = &Section{Type: m[1], ID: m[2], Line: n}
	}
	if cur != nil {
		sections = append(sections, *cur)
	}
	return sections, stray
}

// ParseError is one problem of a section-config file, with PVE's message
// layout: "file:line: section 'id': unable to parse value of 'key': msg".
type ParseError struct {
	File    string
	Line    int
	Section string // empty outside a section
	Key     string // empty when the problem is not a key's value
	Msg     string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	if e.Section != "" {
		fmt.Fprintf(&b, "section '%s': ", e.Section)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "unable to parse value of '%s': ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}
