package api

import (
	"fmt"
	"strings"
)

// PropertyFormat is a property-string format: PVE's format hashes, the
// schema of values such as "local:4,format=qcow2,cache=none". A parameter
// whose Format is a PropertyFormat (or a map[string]*Schema) is checked
// key by key by the framework.
type PropertyFormat = map[string]*Schema

// PropertyError is a property string that does not match its format. Msg
// is the error of the string as a whole (a bad key, a duplicate); Keys
// holds the errors of single values, by "param.key".
type PropertyError struct {
	Msg  string
	Keys map[string]string
}

func (e *PropertyError) Error() string {
	if len(e.Keys) == 0 {
		return e.Msg
	}
	var b strings.Builder
	b.WriteString("format error")
	for _, k := range sortedKeys(e.Keys) {
		b.WriteString("\n")
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(e.Keys[k])
	}
	return b.String()
}

// ParsePropertyString parses data as PVE's parse_property_string does:
// comma-separated "key=value" parts and at most one bare value for the
// default key; aliases are resolved (a key alias also records the key's
// name, as net0's "virtio=MAC"), booleans are normalised to "1"/"0", and
// the values are checked against their schemas. path prefixes the keys in
// value errors (the parameter name, e.g. "scsi0").
func ParsePropertyString(format PropertyFormat, data, path string) (map[string]string, error) {
	res := map[string]string{}
	defaultKey := ""
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		switch {
		case hasEq && k != "" && v != "":
			if _, dup := res[k]; dup {
				return nil, &PropertyError{Msg: "duplicate key in comma-separated list property: " + k}
			}
			s := format[k]
			if s != nil && s.Alias != "" {
				if s.KeyAlias != "" {
					if _, dup := res[s.KeyAlias]; dup {
						return nil, &PropertyError{Msg: fmt.Sprintf("key alias '%s' is already defined", s.KeyAlias)}
					}
					res[s.KeyAlias] = k
				}
				k = s.Alias
				s = format[k]
				if _, dup := res[k]; dup {
					return nil, &PropertyError{Msg: fmt.Sprintf("key '%s' is already defined (via alias)", k)}
				}
			}
			if s == nil {
				return nil, &PropertyError{Msg: "invalid key in comma-separated list property: " + k}
			}
			if s.Type == "boolean" {
				v = NormBool(v)
			}
			res[k] = v
		case !hasEq:
			if defaultKey != "" {
				return nil, &PropertyError{Msg: "duplicate key in comma-separated list property: " + defaultKey}
			}
			for _, key := range sortedKeys(format) {
				s := format[key]
				if !s.DefaultKey {
					continue
				}
				defaultKey = key
				if _, dup := res[key]; dup {
					return nil, &PropertyError{Msg: "duplicate key in comma-separated list property: " + key}
				}
				if s.Type == "boolean" {
					part = NormBool(part)
				}
				res[key] = part
				break
			}
			if defaultKey == "" {
				return nil, &PropertyError{Msg: "value without key, but schema does not define a default key"}
			}
		default:
			return nil, &PropertyError{Msg: "missing key in comma-separated list property"}
		}
	}
	errs := map[string]string{}
	for _, k := range sortedKeys(format) {
		s := format[k]
		v, ok := res[k]
		if !ok {
			if !s.Optional && s.Alias == "" {
				errs[path+"."+k] = "property is missing and it is not optional"
			}
			continue
		}
		if s.Alias != "" {
			continue
		}
		if _, msg := checkValue(s, v); msg != "" {
			errs[path+"."+k] = msg
		}
	}
	if len(errs) > 0 {
		return nil, &PropertyError{Keys: errs}
	}
	return res, nil
}

// NormBool is PVE's parse_boolean: 1/on/yes/true and 0/off/no/false (any
// case) become "1" and "0"; anything else stays as it is, for the type
// check to refuse.
func NormBool(v string) string {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return "1"
	case "0", "off", "no", "false":
		return "0"
	}
	return v
}

// PrintPropertyString writes values back as PVE's print_property_string
// does: the default key's bare value first (joined with its key-alias
// partner as "virtio=MAC"), then the required keys, then the others, each
// group sorted. Values are written as they are; a value containing a comma
// is an error.
func PrintPropertyString(format PropertyFormat, values map[string]string) (string, error) {
	defKey := ""
	combine := map[string]string{} // key alias target -> aliased value key
	for k, s := range format {
		if s.DefaultKey {
			defKey = k
		}
		if s.KeyAlias != "" {
			combine[s.KeyAlias] = s.Alias
		}
	}
	done := map[string]bool{}
	var parts []string
	add := func(key string, isDefault bool) error {
		if done[key] {
			return nil
		}
		done[key] = true
		v, ok := values[key]
		if !ok {
			return nil
		}
		if strings.Contains(v, ",") {
			return fmt.Errorf("illegal value with commas for %s", key)
		}
		if other, ok := combine[key]; ok {
			if ov, ok := values[other]; ok {
				parts = append(parts, v+"="+ov)
				done[other] = true
				return nil
			}
		}
		s := format[key]
		if s != nil && s.Alias != "" {
			s = format[s.Alias]
		}
		if s == nil {
			return fmt.Errorf("invalid key '%s'", key)
		}
		if isDefault {
			parts = append(parts, v)
		} else {
			parts = append(parts, key+"="+v)
		}
		return nil
	}
	if defKey != "" {
		if err := add(defKey, true); err != nil {
			return "", err
		}
	}
	keys := sortedKeys(values)
	for _, k := range keys {
		if s := format[k]; s != nil && !s.Optional && s.Alias == "" {
			if err := add(k, false); err != nil {
				return "", err
			}
		}
	}
	for _, k := range keys {
		if err := add(k, false); err != nil {
			return "", err
		}
	}
	return strings.Join(parts, ","), nil
}
