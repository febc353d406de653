package apischema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// missing stands for a key that is absent, as opposed to one that is null.
type missing struct{}

// lookup returns m[k], or missing{} when k is absent.
func lookup(m map[string]any, k string) any {
	if v, ok := m[k]; ok {
		return v
	}
	return missing{}
}

func isMissing(v any) bool {
	_, ok := v.(missing)
	return ok
}

// canonical turns an in-memory value into decoded JSON (maps, []any,
// json.Number, float64, string, bool, nil), so that tables built in Go
// ([]string, int, typed structs) compare like a decoded dump. A value that is
// decoded JSON already is returned as it is, shared with the caller.
func canonical(v any) (any, error) {
	if v == nil || isMissing(v) || isDecoded(v) {
		return v, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := decodeStrict(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// isDecoded reports whether v consists only of the types encoding/json
// decodes into.
func isDecoded(v any) bool {
	switch x := v.(type) {
	case nil, string, bool, json.Number, float64:
		return true
	case map[string]any:
		for _, e := range x {
			if !isDecoded(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range x {
			if !isDecoded(e) {
				return false
			}
		}
		return true
	}
	return false
}

// number converts a scalar to a float64: booleans are 0 or 1, numbers are
// themselves, and so are strings that parse as numbers (Perl does not tell
// "0" from 0, and PVE's dump has both).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// Equal reports whether two decoded JSON values mean the same in PVE's
// schema language: objects and lists compare element by element, two strings
// compare exactly, and otherwise booleans, numbers and numeric strings compare
// by number, so 1 == true == "1" and 0 == false == "0".
func Equal(a, b any) bool {
	if isMissing(a) || isMissing(b) {
		return isMissing(a) && isMissing(b)
	}
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		if y, ok := b.(string); ok {
			return x == y
		}
	}
	switch b.(type) {
	case map[string]any, []any:
		return false
	}
	na, oka := number(a)
	nb, okb := number(b)
	return oka && okb && na == nb
}

// Truthy reports whether a decoded JSON value is true the way PVE's Perl
// reads schema flags: absent, null, false, 0, "" and "0" are false.
func Truthy(v any) bool {
	if v == nil || isMissing(v) {
		return false
	}
	switch x := v.(type) {
	case string:
		return x != "" && x != "0"
	case map[string]any, []any:
		return true
	}
	n, ok := number(v)
	return !ok || n != 0
}

// maxRender bounds the length of a rendered value in a Difference.
const maxRender = 160

// render prints a value for a Difference: "(absent)" or compact JSON.
func render(v any) string {
	if isMissing(v) {
		return "(absent)"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if len(s) <= maxRender {
		return s
	}
	cut := maxRender
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// renderFlag prints a schema boolean as PVE writes it.
func renderFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
