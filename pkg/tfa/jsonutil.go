package tfa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Field is one JSON object member kept verbatim: members this package does
// not interpret survive a Parse/Marshal round trip through it.
type Field struct {
	Name  string
	Value json.RawMessage
}

// objectFields splits a JSON object into its members in input order. The
// input must be exactly one object (surrounding white space allowed).
func objectFields(raw []byte) ([]Field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("expected a JSON object")
	}
	var out []Field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, Field{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return out, nil
}

// fieldSet walks an object's members: known ones are handed to take, the
// others collected as extras (last one wins for a repeated unknown name,
// like serde ignoring it). A repeated known member is an error, as with
// serde's derived structs.
func fieldSet(raw []byte, known func(name string) bool, take func(f Field) error) ([]Field, error) {
	fields, err := objectFields(raw)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(fields))
	var extra []Field
	for _, f := range fields {
		if known(f.Name) {
			if _, dup := seen[f.Name]; dup {
				return nil, fmt.Errorf("duplicate field %q", f.Name)
			}
			seen[f.Name] = -1
			if err := take(f); err != nil {
				return nil, fmt.Errorf("field %q: %w", f.Name, err)
			}
			continue
		}
		if i, dup := seen[f.Name]; dup {
			extra[i].Value = f.Value
			continue
		}
		seen[f.Name] = len(extra)
		extra = append(extra, f)
	}
	return extra, nil
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

// decodeString accepts only a JSON string (serde's String rejects null).
func decodeString(v json.RawMessage) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return "", errors.New("expected a string")
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

// decodeInt parses a JSON integer into bits bits, signed or not; fractions
// and exponents are refused, as serde_json does for integer fields.
func decodeInt(v json.RawMessage, bits int, signed bool) (int64, uint64, error) {
	s := string(v)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, 0, errors.New("expected an integer")
	}
	if signed {
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return 0, 0, fmt.Errorf("expected an integer: %w", err)
		}
		return n, 0, nil
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, 0, fmt.Errorf("expected an unsigned integer: %w", err)
	}
	return 0, n, nil
}

func decodeInt64(v json.RawMessage) (int64, error) {
	n, _, err := decodeInt(v, 64, true)
	return n, err
}

func decodeUint32(v json.RawMessage) (uint32, error) {
	_, n, err := decodeInt(v, 32, false)
	return uint32(n), err
}

func decodeBool(v json.RawMessage) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("expected a boolean")
}

// decodeArray splits a JSON array (not null) into its elements.
func decodeArray(v json.RawMessage) ([]json.RawMessage, error) {
	if len(v) == 0 || v[0] != '[' {
		return nil, errors.New("expected an array")
	}
	var out []json.RawMessage
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkJSONText applies serde_json's input rules that encoding/json is more
// lenient about: the text must be valid UTF-8 and \u escapes must not
// contain unpaired surrogates (encoding/json would turn both into U+FFFD).
func checkJSONText(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("invalid UTF-8")
	}
	in := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !in {
			if c == '"' {
				in = true
			}
			continue
		}
		switch c {
		case '"':
			in = false
		case '\\':
			if i+1 >= len(data) {
				return nil
			}
			i++
			if data[i] != 'u' {
				continue
			}
			r, ok := hex4(data, i+1)
			if !ok {
				return nil // a syntax error the decoder reports
			}
			i += 4
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return errors.New("lone surrogate in hex escape")
			case r >= 0xd800 && r <= 0xdbff:
				if i+2 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return errors.New("unexpected end of hex escape")
				}
				lo, ok := hex4(data, i+3)
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return errors.New("lone surrogate in hex escape")
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonWriter produces serde_json's compact output.
type jsonWriter struct {
	buf   bytes.Buffer
	first []bool
	err   error
}

func (w *jsonWriter) open(c byte) {
	w.buf.WriteByte(c)
	w.first = append(w.first, true)
}

func (w *jsonWriter) close(c byte) {
	w.buf.WriteByte(c)
	w.first = w.first[:len(w.first)-1]
}

// sep writes the comma before every element but the first.
func (w *jsonWriter) sep() {
	top := len(w.first) - 1
	if !w.first[top] {
		w.buf.WriteByte(',')
	}
	w.first[top] = false
}

func (w *jsonWriter) key(name string) {
	w.sep()
	writeJSONString(&w.buf, name)
	w.buf.WriteByte(':')
}

func (w *jsonWriter) str(s string)  { writeJSONString(&w.buf, s) }
func (w *jsonWriter) int(n int64)   { w.buf.WriteString(strconv.FormatInt(n, 10)) }
func (w *jsonWriter) uint(n uint64) { w.buf.WriteString(strconv.FormatUint(n, 10)) }

func (w *jsonWriter) bool(b bool) {
	if b {
		w.buf.WriteString("true")
	} else {
		w.buf.WriteString("false")
	}
}

// raw writes a verbatim JSON value with insignificant white space removed.
func (w *jsonWriter) raw(v json.RawMessage) {
	if err := json.Compact(&w.buf, v); err != nil && w.err == nil {
		w.err = fmt.Errorf("invalid raw JSON value: %w", err)
	}
}

func (w *jsonWriter) extras(fields []Field) {
	for _, f := range fields {
		w.key(f.Name)
		w.raw(f.Value)
	}
}

// writeJSONString escapes like serde_json: only '"', '\\' and control
// characters (short forms \b \t \n \f \r, else \u00xx in lower case); all
// other characters, including non-ASCII, U+2028/9 and '<', are written
// as they are. Invalid UTF-8 is replaced by U+FFFD.
func writeJSONString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD") // a Rust String is always valid UTF-8
	}
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
