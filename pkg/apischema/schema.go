package apischema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Node is one path of the API tree.
type Node struct {
	Path     string             `json:"path"`
	Text     string             `json:"text"`
	Leaf     Bool               `json:"leaf"`
	Info     map[string]*Method `json:"info,omitempty"`
	Children []*Node            `json:"children,omitempty"`
}

// Method is one HTTP method of a path. Parameters, Returns and Permissions
// are kept as decoded JSON (numbers as json.Number) so that comparisons are
// structural. Keys that have no field are kept in Extra.
type Method struct {
	Method            string         `json:"method"`
	Name              string         `json:"name,omitempty"`
	Description       string         `json:"description,omitempty"`
	Protected         *Bool          `json:"protected,omitempty"`
	ProxyTo           string         `json:"proxyto,omitempty"`
	AllowToken        *Bool          `json:"allowtoken,omitempty"`
	DownloadAllowed   *Bool          `json:"download_allowed,omitempty"`
	ExposeCredentials *Bool          `json:"expose_credentials,omitempty"`
	Permissions       map[string]any `json:"permissions,omitempty"`
	Parameters        map[string]any `json:"parameters,omitempty"`
	Returns           map[string]any `json:"returns,omitempty"`
	Extra             map[string]any `json:"-"`
}

// methodFields mirrors Method without its methods, for decoding and encoding.
type methodFields Method

// knownMethodKey reports whether k is decoded into a field of Method.
func knownMethodKey(k string) bool {
	switch k {
	case "method", "name", "description", "protected", "proxyto", "allowtoken",
		"download_allowed", "expose_credentials", "permissions", "parameters", "returns":
		return true
	}
	return false
}

// UnmarshalJSON decodes a method, collecting unknown keys into Extra.
func (m *Method) UnmarshalJSON(data []byte) error {
	var f methodFields
	if err := decodeStrict(data, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for k, raw := range all {
		if knownMethodKey(k) {
			continue
		}
		var v any
		if err := decodeStrict(raw, &v); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if f.Extra == nil {
			f.Extra = map[string]any{}
		}
		f.Extra[k] = v
	}
	*m = Method(f)
	return nil
}

// MarshalJSON encodes a method with its Extra keys.
func (m Method) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(methodFields(m))
	if err != nil || len(m.Extra) == 0 {
		return base, err
	}
	var all map[string]any
	if err := decodeStrict(base, &all); err != nil {
		return nil, err
	}
	for k, v := range m.Extra {
		if knownMethodKey(k) {
			return nil, fmt.Errorf("encode method: extra key %q shadows a field", k)
		}
		all[k] = v
	}
	return json.Marshal(all)
}

// IsProtected reports whether the method runs only in the privileged daemon
// (absent means no).
func (m *Method) IsProtected() bool { return m.Protected.Value(false) }

// TokenAllowed reports whether API tokens may call the method (absent means
// yes).
func (m *Method) TokenAllowed() bool { return m.AllowToken.Value(true) }

// Bool is a schema boolean. PVE writes 0 and 1; true, false, "0" and "1" are
// accepted as well. It encodes as 0 or 1.
type Bool bool

// Value returns the boolean b points to, or def when b is nil (absent).
func (b *Bool) Value(def bool) bool {
	if b == nil {
		return def
	}
	return bool(*b)
}

// NewBool returns a pointer to a Bool holding v, for building method tables.
func NewBool(v bool) *Bool {
	b := Bool(v)
	return &b
}

// UnmarshalJSON accepts 0, 1, true, false, "0" and "1".
func (b *Bool) UnmarshalJSON(data []byte) error {
	switch strings.TrimSpace(string(data)) {
	case "1", "true", `"1"`:
		*b = true
	case "0", "false", `"0"`, `""`:
		*b = false
	default:
		return fmt.Errorf("decode boolean: %s is not 0 or 1", data)
	}
	return nil
}

// MarshalJSON writes 1 or 0, as PVE does.
func (b Bool) MarshalJSON() ([]byte, error) {
	if b {
		return []byte("1"), nil
	}
	return []byte("0"), nil
}

// decodeStrict decodes one JSON value with json.Number for numbers.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the value")
	}
	return nil
}

// verbRank orders the HTTP methods as PVE's tree and our reports list them;
// ok is false for anything but GET, POST, PUT and DELETE.
func verbRank(v string) (rank int, ok bool) {
	switch v {
	case "GET":
		return 0, true
	case "POST":
		return 1, true
	case "PUT":
		return 2, true
	case "DELETE":
		return 3, true
	}
	return 4, false
}

// Load reads a schema tree (a JSON list of top-level nodes). It checks that
// every method sits under GET, POST, PUT or DELETE, agrees with its own
// method field, and that no path occurs twice.
func Load(r io.Reader) ([]*Node, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("load api schema: %w", err)
	}
	var nodes []*Node
	if err := decodeStrict(data, &nodes); err != nil {
		return nil, fmt.Errorf("load api schema: %w", err)
	}
	if err := check(nodes); err != nil {
		return nil, fmt.Errorf("load api schema: %w", err)
	}
	return nodes, nil
}

// LoadFile reads the schema tree in the file at path.
func LoadFile(path string) ([]*Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load api schema: %w", err)
	}
	defer f.Close()
	nodes, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nodes, nil
}

//go:embed testdata/pve-api-schema.json
var pveSchema string

// LoadPVE returns a fresh copy of PVE's schema tree (pve-docs 9.1.3) as
// embedded in this package, descriptions stripped.
func LoadPVE() ([]*Node, error) {
	return Load(strings.NewReader(pveSchema))
}

func check(nodes []*Node) error {
	seen := map[string]bool{}
	var errs []error
	walk(nodes, func(n *Node) {
		if n == nil {
			errs = append(errs, errors.New("null node"))
			return
		}
		if !strings.HasPrefix(n.Path, "/") {
			errs = append(errs, fmt.Errorf("node %q: path does not start with /", n.Path))
		}
		if seen[n.Path] {
			errs = append(errs, fmt.Errorf("node %s: path occurs twice", n.Path))
		}
		seen[n.Path] = true
		for verb, m := range n.Info {
			if _, ok := verbRank(verb); !ok {
				errs = append(errs, fmt.Errorf("%s %s: not GET, POST, PUT or DELETE", verb, n.Path))
				continue
			}
			if m == nil {
				errs = append(errs, fmt.Errorf("%s %s: null method", verb, n.Path))
				continue
			}
			if m.Method != "" && m.Method != verb {
				errs = append(errs, fmt.Errorf("%s %s: method field says %q", verb, n.Path, m.Method))
			}
		}
	})
	return errors.Join(errs...)
}

func walk(nodes []*Node, fn func(*Node)) {
	for _, n := range nodes {
		fn(n)
		if n != nil {
			walk(n.Children, fn)
		}
	}
}

// Key returns the name Flatten gives a method: "GET /nodes/{node}/status".
func Key(httpMethod, path string) string { return httpMethod + " " + path }

// Flatten indexes every method of the tree by its Key. The methods are shared
// with the tree, not copied.
func Flatten(nodes []*Node) map[string]*Method {
	out := map[string]*Method{}
	walk(nodes, func(n *Node) {
		if n == nil {
			return
		}
		for verb, m := range n.Info {
			if m != nil {
				out[Key(verb, n.Path)] = m
			}
		}
	})
	return out
}

// Count returns the number of methods in the tree.
func Count(nodes []*Node) int {
	c := 0
	walk(nodes, func(n *Node) {
		if n != nil {
			c += len(n.Info)
		}
	})
	return c
}

// SortKeys orders method keys by path, then GET, POST, PUT, DELETE.
func SortKeys(keys []string) {
	sort.Slice(keys, func(i, j int) bool {
		vi, pi, _ := strings.Cut(keys[i], " ")
		vj, pj, _ := strings.Cut(keys[j], " ")
		if pi != pj {
			return pi < pj
		}
		oi, _ := verbRank(vi)
		oj, _ := verbRank(vj)
		if oi != oj {
			return oi < oj
		}
		return vi < vj
	})
}
