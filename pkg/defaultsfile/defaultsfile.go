package defaultsfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Value is the value of one variable together with the line of the file on
// which it was assigned (1-based).
type Value struct {
	Value string
	Line  int
}

// SyntaxError describes one bad line of a defaults file.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

// Error returns "file:line: message".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and parses the file at path. A missing file is not an error: it
// yields an empty map, as PVE treats an absent file like an empty one.
func Load(path string) (map[string]Value, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Value{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read defaults file: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data, naming the file name in errors. It returns every variable
// the file assigns. On error the map holds the assignments that parsed, and the
// error joins one *SyntaxError per bad line.
func Parse(name string, data []byte) (map[string]Value, error) {
	p := &parser{name: name, data: data, line: 1, vals: map[string]Value{}}
	for p.pos < len(p.data) {
		if err := p.statement(); err != nil {
			p.errs = append(p.errs, err)
			p.skipLine()
		}
	}
	return p.vals, errors.Join(p.errs...)
}

// parser is the state of one Parse call.
type parser struct {
	name string
	data []byte
	pos  int
	line int // line of data[pos], 1-based
	vals map[string]Value
	errs []error
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &SyntaxError{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// peek returns the byte at pos+off, or 0 past the end.
func (p *parser) peek(off int) byte {
	if p.pos+off < len(p.data) {
		return p.data[p.pos+off]
	}
	return 0
}

func (p *parser) eof() bool { return p.pos >= len(p.data) }

// skipLine moves past the rest of the current physical line.
func (p *parser) skipLine() {
	for !p.eof() {
		c := p.data[p.pos]
		p.pos++
		if c == '\n' {
			p.line++
			return
		}
	}
}

func (p *parser) skipBlanks() {
	for !p.eof() && (p.data[p.pos] == ' ' || p.data[p.pos] == '\t') {
		p.pos++
	}
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

// atEndOfWord reports whether the current byte ends an unquoted word.
func (p *parser) atEndOfWord() bool {
	if p.eof() {
		return true
	}
	switch p.data[p.pos] {
	case ' ', '\t', '\n', ';':
		return true
	}
	return false
}

// statement parses one statement: a blank line, a comment, or a list of
// assignments, optionally preceded by "export". It consumes the terminating
// newline or ';'.
func (p *parser) statement() error {
	p.skipBlanks()
	if p.eof() {
		return nil
	}
	switch c := p.data[p.pos]; c {
	case '\n':
		p.pos++
		p.line++
		return nil
	case '#':
		p.skipLine()
		return nil
	case ';':
		return p.errorf(p.line, "unexpected ';'")
	}
	export := false
	if p.hasWord("export") {
		p.pos += len("export")
		p.skipBlanks()
		export = true
		if p.atEndOfWord() || p.peek(0) == '#' {
			return p.errorf(p.line, "export without a variable name")
		}
	}
	for first := true; ; first = false {
		p.skipBlanks()
		if !first && (p.eof() || p.peek(0) == '\n' || p.peek(0) == '#' || p.peek(0) == ';') {
			break
		}
		if err := p.assignment(export); err != nil {
			return err
		}
	}
	switch {
	case p.eof():
	case p.peek(0) == '#':
		p.skipLine()
	case p.peek(0) == '\n':
		p.pos++
		p.line++
	case p.peek(0) == ';':
		p.pos++
	}
	return nil
}

// hasWord reports whether the input at pos is the word w followed by a blank.
func (p *parser) hasWord(w string) bool {
	rest := p.data[p.pos:]
	if len(rest) <= len(w) || string(rest[:len(w)]) != w {
		return false
	}
	return rest[len(w)] == ' ' || rest[len(w)] == '\t'
}

// assignment parses KEY=value (or, after export, a bare KEY).
func (p *parser) assignment(export bool) error {
	line := p.line
	start := p.pos
	if p.eof() || !isNameStart(p.data[p.pos]) {
		return p.errorf(line, "expected KEY=value, found %q", p.word())
	}
	for !p.eof() && isNameChar(p.data[p.pos]) {
		p.pos++
	}
	key := string(p.data[start:p.pos])
	switch {
	case p.peek(0) == '=':
		p.pos++
	case p.peek(0) == '+' && p.peek(1) == '=':
		return p.errorf(line, "%s+= (append) is not supported", key)
	case export && p.atEndOfWord():
		return nil // "export KEY" marks a variable the file never set: no effect
	default:
		p.pos = start
		return p.errorf(line, "expected KEY=value, found %q (commands are not supported)", p.word())
	}
	val, err := p.value()
	if err != nil {
		return err
	}
	p.vals[key] = Value{Value: val, Line: line}
	return nil
}

// word returns the rest of the current unquoted word, for error messages.
func (p *parser) word() string {
	end := p.pos
	for end < len(p.data) && !strings.ContainsRune(" \t\n;", rune(p.data[end])) {
		end++
	}
	w := string(p.data[p.pos:end])
	if len(w) > 40 {
		w = w[:40] + "..."
	}
	return w
}

// value parses the word after '=' up to the first unquoted blank, newline,
// ';' or the end of the input.
func (p *parser) value() (string, error) {
	var b strings.Builder
	valueStart := p.pos
	for !p.atEndOfWord() {
		c := p.data[p.pos]
		switch c {
		case '\'':
			if err := p.singleQuoted(&b); err != nil {
				return "", err
			}
		case '"':
			if err := p.doubleQuoted(&b); err != nil {
				return "", err
			}
		case '\\':
			p.pos++
			switch {
			case p.eof():
				b.WriteByte('\\')
			case p.data[p.pos] == '\n': // line continuation
				p.pos++
				p.line++
			case p.data[p.pos] == 0:
				return "", p.errorf(p.line, "NUL byte in value")
			default:
				b.WriteByte(p.data[p.pos])
				p.pos++
			}
		case '$':
			if err := p.dollar(false); err != nil {
				return "", err
			}
			b.WriteByte('$')
			p.pos++
		case '`':
			return "", p.errorf(p.line, "command substitution with ` is not supported")
		case '~':
			if p.pos == valueStart || p.data[p.pos-1] == ':' {
				return "", p.errorf(p.line, "tilde expansion is not supported; quote the value")
			}
			b.WriteByte(c)
			p.pos++
		case '|', '&', '<', '>', '(', ')':
			return "", p.errorf(p.line, "shell operator %q is not supported; quote the value", c)
		case '\r':
			return "", p.errorf(p.line, "carriage return outside quotes (DOS line endings?) is not supported")
		case 0:
			return "", p.errorf(p.line, "NUL byte in value")
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return b.String(), nil
}

// dollar checks an unescaped '$' at pos. A '$' that bash would expand is an
// error; otherwise the caller keeps it literally.
func (p *parser) dollar(inDouble bool) error {
	n := p.peek(1)
	switch {
	case n == '(':
		return p.errorf(p.line, "command substitution $(...) is not supported")
	case n == '{' || isNameChar(n) || strings.IndexByte("@*#?$!-", n) >= 0:
		return p.errorf(p.line, "variable expansion $%s is not supported", p.expansionName())
	case !inDouble && n == '\'':
		return p.errorf(p.line, "ANSI-C quoting $'...' is not supported")
	case !inDouble && n == '"':
		return p.errorf(p.line, "locale quoting $\"...\" is not supported")
	}
	return nil
}

// expansionName returns the text after '$' for error messages.
func (p *parser) expansionName() string {
	i := p.pos + 1
	if i < len(p.data) && p.data[i] == '{' {
		end := i
		for end < len(p.data) && p.data[end] != '}' && p.data[end] != '\n' {
			end++
		}
		if end < len(p.data) && p.data[end] == '}' {
			end++
		}
		return string(p.data[i:end])
	}
	end := i
	for end < len(p.data) && isNameChar(p.data[end]) {
		end++
	}
	if end == i && i < len(p.data) {
		end++ // special parameter such as $? or $$
	}
	return string(p.data[i:end])
}

func (p *parser) singleQuoted(b *strings.Builder) error {
	line := p.line
	p.pos++ // opening quote
	for !p.eof() {
		c := p.data[p.pos]
		p.pos++
		switch c {
		case '\'':
			return nil
		case '\n':
			p.line++
		case 0:
			return p.errorf(p.line, "NUL byte in value")
		}
		b.WriteByte(c)
	}
	return p.errorf(line, "unterminated single quote")
}

// doubleQuoted parses a double-quoted string. After an error inside the
// quotes it still scans to the closing quote, so that the following lines of a
// multi-line value are not mistaken for statements.
func (p *parser) doubleQuoted(b *strings.Builder) error {
	line := p.line
	var first error
	p.pos++ // opening quote
	for !p.eof() {
		c := p.data[p.pos]
		switch c {
		case '"':
			p.pos++
			return first
		case '\\':
			switch n := p.peek(1); n {
			case '"', '\\', '$', '`':
				b.WriteByte(n)
				p.pos += 2
			case '\n': // line continuation
				p.pos += 2
				p.line++
			default:
				b.WriteByte('\\')
				p.pos++
			}
			continue
		case '$':
			if err := p.dollar(true); err != nil && first == nil {
				first = err
			}
		case '`':
			if first == nil {
				first = p.errorf(p.line, "command substitution with ` is not supported")
			}
		case '\n':
			p.line++
		case 0:
			if first == nil {
				first = p.errorf(p.line, "NUL byte in value")
			}
		}
		b.WriteByte(c)
		p.pos++
	}
	return p.errorf(line, "unterminated double quote")
}
