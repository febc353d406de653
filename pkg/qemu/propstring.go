package qemu

import (
	"fmt"
	"regexp"
	"strings"
)

// PropString is a parsed PVE property string ("scsi0: local:vm-100-disk-0,size=32G"):
// comma-separated key=value parts, at most one of which may be a bare value
// for the format's default key. Keys keep their order of appearance.
type PropString struct {
	Keys   []string
	Values map[string]string
}

// Get returns the value of key and whether it was present.
func (p PropString) Get(key string) (string, bool) {
	v, ok := p.Values[key]
	return v, ok
}

// Has reports whether key was present.
func (p PropString) Has(key string) bool {
	_, ok := p.Values[key]
	return ok
}

// Bool reads a PVE boolean (1/on/yes/true, 0/off/no/false) and reports
// whether key was present with a valid boolean value.
func (p PropString) Bool(key string) (val, ok bool) {
	v, present := p.Values[key]
	if !present {
		return false, false
	}
	return parseBool(v)
}

func parseBool(v string) (val, ok bool) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, true
	case "0", "off", "no", "false":
		return false, true
	}
	return false, false
}

// propFormat describes the keys a property string may hold.
type propFormat struct {
	defaultKey string
	// aliases maps an alias key to the key it stands for (drives: volume -> file).
	aliases map[string]string
	// keyAliases: a key whose name is itself a value of keyAliasOf and whose
	// value goes to keyAliasTarget (net: "virtio=MAC" is model=virtio, macaddr=MAC).
	keyAliases     map[string]bool
	keyAliasOf     string
	keyAliasTarget string
	// known, if not nil, lists every accepted key; other keys are an error.
	known map[string]bool
}

var propKeyRE = regexp.MustCompile(`^([^=]+)=(.+)$`)

// parsePropString follows PVE::JSONSchema::parse_property_string: empty parts
// are skipped, "k=v" sets a key (duplicates are an error), a part without "="
// goes to the default key.
func parsePropString(f propFormat, data string) (PropString, error) {
	p := PropString{Values: map[string]string{}}
	set := func(k, v string) error {
		if _, dup := p.Values[k]; dup {
			return fmt.Errorf("duplicate key in comma-separated list property: %s", k)
		}
		if f.known != nil && !f.known[k] {
			return fmt.Errorf("invalid key in comma-separated list property: %s", k)
		}
		p.Keys = append(p.Keys, k)
		p.Values[k] = v
		return nil
	}
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		if m := propKeyRE.FindStringSubmatch(part); m != nil {
			k, v := m[1], m[2]
			if f.keyAliases[k] {
				if err := set(f.keyAliasOf, k); err != nil {
					return PropString{}, err
				}
				k = f.keyAliasTarget
			} else if target, ok := f.aliases[k]; ok {
				k = target
			}
			if err := set(k, v); err != nil {
				return PropString{}, err
			}
			continue
		}
		if strings.Contains(part, "=") {
			return PropString{}, fmt.Errorf("missing key in comma-separated list property")
		}
		if f.defaultKey == "" {
			return PropString{}, fmt.Errorf("value without key, but schema does not define a default key")
		}
		if err := set(f.defaultKey, part); err != nil {
			return PropString{}, err
		}
	}
	return p, nil
}

// ParsePropString parses a property string without a schema: bare values go
// to defaultKey (none allowed if it is empty) and every key is accepted.
func ParsePropString(data, defaultKey string) (PropString, error) {
	return parsePropString(propFormat{defaultKey: defaultKey}, data)
}
