package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Schema is the JSON-schema subset PVE uses for parameters and return values.
// The zero value means "any". Field names follow PVE's schema keys; Dump writes
// booleans as PVE does (0/1).
type Schema struct {
	Type        string // string, integer, number, boolean, object, array, null, any
	Description string
	Format      any // a format name, or a map for property-string formats
	Pattern     string
	Enum        []string
	Minimum     *float64
	Maximum     *float64
	MinLength   *int
	MaxLength   *int
	Default     any
	Optional    bool
	Requires    string
	TypeText    string
	Renderer    string
	Title       string

	// Property-string format entries (PVE's format hashes, where Format is
	// a map[string]*Schema): Alias names the key this one stands for,
	// KeyAlias the key that receives this key's name (net0's
	// "virtio=MAC" sets model=virtio), DefaultKey marks the key a bare
	// value belongs to.
	Alias      string
	KeyAlias   string
	DefaultKey bool

	// Count makes a parameter declared as "name[n]" stand for name0 ..
	// name<Count-1>, as PVE's numbered config keys (scsi[n], net[n]) are
	// shown in its API dump. It is not part of the dump.
	Count int

	Properties map[string]*Schema
	Items      *Schema
	// AdditionalProperties is nil when unset, else 0/1 as PVE writes it.
	AdditionalProperties *bool
	// AdditionalSchema is the schema of additional properties, when PVE
	// gives one instead of 0/1 (it wins over AdditionalProperties).
	AdditionalSchema *Schema
	Links            []Link

	re       *regexp.Regexp // compiled Pattern
	reMaxLen int            // longest match in characters, 0 = any (compilePatternBounded)
}

// Link is a hyper-schema link, as PVE's index methods declare them.
type Link struct {
	Href string `json:"href"`
	Rel  string `json:"rel"`
}

// Helpers for terse declarations.

// Str returns a string schema.
func Str() *Schema { return &Schema{Type: "string"} }

// Int returns an integer schema.
func Int() *Schema { return &Schema{Type: "integer"} }

// Num returns a number schema.
func Num() *Schema { return &Schema{Type: "number"} }

// Bool returns a boolean schema.
func Bool() *Schema { return &Schema{Type: "boolean"} }

// Null returns the null schema of methods that return nothing.
func Null() *Schema { return &Schema{Type: "null"} }

// Obj returns an object schema with the given properties.
func Obj(props map[string]*Schema) *Schema { return &Schema{Type: "object", Properties: props} }

// Arr returns an array schema of items.
func Arr(items *Schema) *Schema { return &Schema{Type: "array", Items: items} }

// Indexed sets Count (see Schema.Count) and returns s.
func (s *Schema) Indexed(n int) *Schema { s.Count = n; return s }

// AliasOf returns a property-string format entry that is an alias of key.
func AliasOf(key string) *Schema { return &Schema{Alias: key} }

// KeyAliasOf returns the format entry of a key whose name goes to keyAlias
// and whose value to alias (PVE: {alias => 'macaddr', keyAlias => 'model'}).
func KeyAliasOf(alias, keyAlias string) *Schema { return &Schema{Alias: alias, KeyAlias: keyAlias} }

// DefKey marks s the default key of its property-string format.
func (s *Schema) DefKey() *Schema { s.DefaultKey = true; return s }

// Opt marks s optional and returns it.
func (s *Schema) Opt() *Schema { s.Optional = true; return s }

// Fmt sets the format.
func (s *Schema) Fmt(f any) *Schema { s.Format = f; return s }

// Desc sets the description.
func (s *Schema) Desc(d string) *Schema { s.Description = d; return s }

// Max sets maxLength (strings) and returns s.
func (s *Schema) MaxLen(n int) *Schema { s.MaxLength = &n; return s }

// MinLen sets minLength.
func (s *Schema) MinLen(n int) *Schema { s.MinLength = &n; return s }

// Range sets minimum and maximum.
func (s *Schema) Range(min, max float64) *Schema { s.Minimum, s.Maximum = &min, &max; return s }

// Min sets minimum.
func (s *Schema) Min(min float64) *Schema { s.Minimum = &min; return s }

// Def sets the default.
func (s *Schema) Def(v any) *Schema { s.Default = v; return s }

// NullDefault returns the Default of a schema whose default PVE declares
// as undef (it dumps as "default": null).
func NullDefault() json.RawMessage { return json.RawMessage("null") }

// Enums sets the enumeration.
func (s *Schema) Enums(v ...string) *Schema { s.Enum = v; return s }

// Pat sets the pattern.
func (s *Schema) Pat(p string) *Schema { s.Pattern = p; return s }

// Req sets requires.
func (s *Schema) Req(other string) *Schema { s.Requires = other; return s }

// TT sets typetext.
func (s *Schema) TT(t string) *Schema { s.TypeText = t; return s }

// Rend sets the renderer hint.
func (s *Schema) Rend(r string) *Schema { s.Renderer = r; return s }

// Additional sets additionalProperties.
func (s *Schema) Additional(b bool) *Schema { s.AdditionalProperties = &b; return s }

// AdditionalOf sets the schema of additional properties.
func (s *Schema) AdditionalOf(a *Schema) *Schema { s.AdditionalSchema = a; return s }

// WithLinks sets hyper-schema links.
func (s *Schema) WithLinks(l ...Link) *Schema { s.Links = l; return s }

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// MarshalJSON writes s in PVE's API viewer shape.
func (s *Schema) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.toMap())
}

func (s *Schema) toMap() map[string]any {
	m := map[string]any{}
	if s.Type != "" {
		m["type"] = s.Type
	}
	if s.Description != "" {
		m["description"] = s.Description
	}
	if s.Format != nil {
		m["format"] = s.Format
	}
	if s.Pattern != "" {
		m["pattern"] = s.Pattern
	}
	if s.Enum != nil {
		m["enum"] = s.Enum
	}
	if s.Minimum != nil {
		m["minimum"] = num(*s.Minimum)
	}
	if s.Maximum != nil {
		m["maximum"] = num(*s.Maximum)
	}
	if s.MinLength != nil {
		m["minLength"] = *s.MinLength
	}
	if s.MaxLength != nil {
		m["maxLength"] = *s.MaxLength
	}
	if s.Default != nil {
		m["default"] = s.Default
	}
	if s.Optional {
		m["optional"] = 1
	}
	if s.Requires != "" {
		m["requires"] = s.Requires
	}
	if s.TypeText != "" {
		m["typetext"] = s.TypeText
	}
	if s.Renderer != "" {
		m["renderer"] = s.Renderer
	}
	if s.Title != "" {
		m["title"] = s.Title
	}
	if s.Alias != "" {
		m["alias"] = s.Alias
	}
	if s.KeyAlias != "" {
		m["keyAlias"] = s.KeyAlias
	}
	if s.DefaultKey {
		m["default_key"] = 1
	}
	if s.Properties != nil {
		props := map[string]any{}
		for k, v := range s.Properties {
			props[k] = v.toMap()
		}
		m["properties"] = props
	}
	if s.Items != nil {
		m["items"] = s.Items.toMap()
	}
	if s.AdditionalProperties != nil {
		m["additionalProperties"] = b01(*s.AdditionalProperties)
	}
	if s.AdditionalSchema != nil {
		m["additionalProperties"] = s.AdditionalSchema.toMap()
	}
	if s.Links != nil {
		m["links"] = s.Links
	}
	return m
}

// num writes integral floats as integers, as PVE's schema dump does.
func num(f float64) any {
	if f == float64(int64(f)) {
		return int64(f)
	}
	return f
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// matches reports whether str matches the schema pattern, anchored as PVE
// anchors it (^pattern$). Patterns come from declarations and are compiled
// once by NewRegistry (compilePatterns); an uncompiled one is compiled here.
func (s *Schema) matches(str string) bool {
	re, maxLen := s.re, s.reMaxLen
	if re == nil {
		c, n, err := compilePatternBounded(s.Pattern)
		if err != nil {
			return false
		}
		re, maxLen = c, n
	}
	return re.MatchString(str) && (maxLen == 0 || utf8.RuneCountInString(str) <= maxLen)
}

// compilePatterns compiles the patterns of s and its sub-schemas.
func (s *Schema) compilePatterns() error {
	if s == nil {
		return nil
	}
	if s.Pattern != "" && s.re == nil {
		re, n, err := compilePatternBounded(s.Pattern)
		if err != nil {
			return fmt.Errorf("pattern %q: %w", s.Pattern, err)
		}
		s.re, s.reMaxLen = re, n
	}
	for _, p := range s.Properties {
		if err := p.compilePatterns(); err != nil {
			return err
		}
	}
	if f, ok := s.Format.(map[string]*Schema); ok {
		for k, p := range f {
			if err := p.compilePatterns(); err != nil {
				return fmt.Errorf("format key %s: %w", k, err)
			}
		}
	}
	return s.Items.compilePatterns()
}

// compilePattern compiles a PVE schema pattern, anchored as PVE anchors it.
// PVE's patterns are Perl regexes; the few Perl-only constructs found in its
// schema (the "(?^:" default-flags group) are translated to RE2.
func compilePattern(p string) (*regexp.Regexp, error) {
	re, _, err := compilePatternBounded(p)
	return re, err
}

// compilePatternBounded is compilePattern for patterns RE2 cannot take as
// they are: a whole pattern ATOM{0,n} (one character class repeated up to
// n > 1000 times; RE2 allows 1000) becomes ATOM* with n returned as the
// longest match in characters (0 for no bound).
func compilePatternBounded(p string) (*regexp.Regexp, int, error) {
	p = strings.ReplaceAll(p, "(?^:", "(?:")
	if m := bigRepeatRe.FindStringSubmatch(p); m != nil {
		if n, err := strconv.Atoi(m[2]); err == nil && n > 1000 {
			re, err := regexp.Compile("^(?:" + m[1] + "*)$")
			return re, n, err
		}
	}
	re, err := regexp.Compile("^(?:" + p + ")$")
	return re, 0, err
}

// bigRepeatRe is a whole pattern of one bracket class repeated {0,n} times.
var bigRepeatRe = regexp.MustCompile(`^(\[[^\]]*\])\{0,(\d+)\}$`)
