package corosync

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is a parsed corosync.conf.
type Config struct {
	// Name is the file name used in errors ("corosync.conf").
	Name string
	// Main is the top level of the file. It is nil for an empty file,
	// which PVE reads as no configuration at all (Marshal refuses it).
	Main *Section
	// Digest is the SHA-1 of the file as read, in hex: PVE's digest of
	// corosync.conf (the config_digest of the cluster join information).
	Digest string
}

// token is a word of the file and the line it is on.
type token struct {
	text string
	line int
}

// tokenize splits data into PVE's tokens: comments removed, words split at
// white space.
func tokenize(data []byte) []token {
	var toks []token
	for n, line := range bytes.Split(data, []byte{'\n'}) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for len(line) > 0 {
			i := 0
			for i < len(line) && isSpace(line[i]) {
				i++
			}
			j := i
			for j < len(line) && !isSpace(line[j]) {
				j++
			}
			if j > i {
				toks = append(toks, token{string(line[i:j]), n + 1})
			}
			line = line[j:]
		}
	}
	return toks
}

// ParseError is a syntax or content error of the file, at a line.
type ParseError struct {
	File string
	Line int // 0 if the error concerns no particular line
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads corosync.conf as PVE's parse_conf does (see the package
// documentation); name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{Name: name}
	// PVE answers a false value (an empty file, or "0") with no config.
	if len(data) == 0 || string(data) == "0" {
		return c, nil
	}
	sum := sha1.Sum(data)
	c.Digest = hex.EncodeToString(sum[:])
	c.Main = &Section{}
	fail := func(line int, format string, args ...any) (*Config, error) {
		return nil, &ParseError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}

	type frame struct {
		s    *Section
		name string
	}
	var stack []frame
	cur := c.Main
	toks := tokenize(data)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if i+1 < len(toks) && toks[i+1].text == "{" {
			i++
			if t.text == "{" {
				// PVE would write it as "{ {", which it reads back
				// as something else.
				return fail(t.line, "invalid section name '{'")
			}
			sub := &Section{line: t.line}
			if isList(t.text) {
				if _, ok := cur.values[t.text]; ok {
					return fail(t.line, "'%s' is a key, it cannot start a section", t.text)
				}
				if cur.lists == nil {
					cur.lists = map[string][]*Section{}
				}
				cur.lists[t.text] = append(cur.lists[t.text], sub)
			} else {
				_, isVal := cur.values[t.text]
				if isVal || cur.sections[t.text] != nil {
					return fail(t.line, "section '%s' already exists and not marked as array", t.text)
				}
				if cur.sections == nil {
					cur.sections = map[string]*Section{}
				}
				cur.sections[t.text] = sub
			}
			stack = append(stack, frame{cur, t.text})
			cur = sub
			continue
		}
		if t.text == "}" {
			if len(stack) == 0 {
				return fail(t.line, "unexpected '}'")
			}
			cur = stack[len(stack)-1].s
			stack = stack[:len(stack)-1]
			continue
		}
		key, ok := strings.CutSuffix(t.text, ":")
		if !ok {
			return fail(t.line, "missing ':' after key '%s'", t.text)
		}
		if i+1 >= len(toks) {
			return fail(t.line, "no value for '%s'", key)
		}
		i++
		cur.setValue(key, toks[i].text, t.line)
	}
	if len(stack) > 0 {
		return fail(cur.line, "section '%s' is not closed", stack[len(stack)-1].name)
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return c, nil
}

// normalize applies PVE's hashing of the top-level node and interface
// lists: one entry per key (the last wins), sorted by key.
func (c *Config) normalize() error {
	for _, l := range []struct{ sect, list, key, alt string }{
		{"nodelist", "node", "name", "ring0_addr"},
		{"totem", "interface", "linknumber", "ringnumber"},
	} {
		if _, ok := c.Main.values[l.sect]; ok {
			return c.errAt(c.Main.values[l.sect].line, "'%s' is a key, not a section", l.sect)
		}
		s := c.Main.sections[l.sect]
		if s == nil {
			continue
		}
		if v, ok := s.values[l.list]; ok {
			return c.errAt(v.line, "%s: '%s' is a key, not a section", l.sect, l.list)
		}
		list, err := c.uniqueSorted(s.lists[l.list], l.sect+" "+l.list, l.key, l.alt)
		if err != nil {
			return err
		}
		if len(list) > 0 {
			s.lists[l.list] = list
		}
	}
	return nil
}

// uniqueSorted returns list with one section per key (the value of key, or
// else of alt, or else ""), the last of each, sorted by key.
func (c *Config) uniqueSorted(list []*Section, what, key, alt string) ([]*Section, error) {
	if len(list) == 0 {
		return list, nil
	}
	byKey := make(map[string]*Section, len(list))
	for _, s := range list {
		k, err := c.listKey(s, what, key, alt)
		if err != nil {
			return nil, err
		}
		byKey[k] = s
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*Section, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out, nil
}

// listKey returns the key PVE files a list entry under.
func (c *Config) listKey(s *Section, what, key, alt string) (string, error) {
	for _, k := range []string{key, alt} {
		if v, ok := s.values[k]; ok {
			return v.v, nil
		}
		if s.sections[k] != nil {
			return "", c.errAt(s.sections[k].line, "%s: '%s' is a section, not a key", what, k)
		}
	}
	return "", nil
}

// errAt returns a ParseError of the file at line.
func (c *Config) errAt(line int, format string, args ...any) error {
	return &ParseError{File: c.Name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// ErrNoMain is returned by Marshal for a Config without a main section (an
// empty file), which PVE refuses to write.
var ErrNoMain = errors.New("corosync: no main section")
