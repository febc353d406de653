package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// rawParams are parameters as received: each value a string or []string.
type rawParams map[string]any

// parseBody decodes a form or JSON body into raw parameters. JSON scalars are
// turned into the strings PVE's Perl code would see: true -> "1",
// false -> "0", numbers in their decimal text.
func parseBody(contentType string, body []byte) (rawParams, error) {
	if len(body) == 0 {
		return nil, nil
	}
	out := rawParams{}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/json":
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, Errorf(400, "malformed JSON body: %v", err)
		}
		for k, v := range m {
			s, err := jsonScalar(v)
			if err != nil {
				return nil, ParamError(map[string]string{k: err.Error()})
			}
			if s != nil {
				out[k] = s
			}
		}
	case "", "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, Errorf(400, "malformed form body: %v", err)
		}
		out = addValues(out, vals)
	default:
		return nil, Errorf(506, "unsupported content type '%s'", mt)
	}
	return out, nil
}

func jsonScalar(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case json.Number:
		return x.String(), nil
	case string:
		return x, nil
	case []any:
		list := make([]string, 0, len(x))
		for _, e := range x {
			s, err := jsonScalar(e)
			if err != nil {
				return nil, err
			}
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("nested arrays are not supported")
			}
			list = append(list, str)
		}
		return list, nil
	default:
		return nil, fmt.Errorf("type check ('string') failed - got a JSON object")
	}
}

func addValues(out rawParams, vals url.Values) rawParams {
	for k, vs := range vals {
		if k == "_dc" {
			continue
		}
		if out == nil {
			out = rawParams{}
		}
		if len(vs) == 1 {
			out[k] = vs[0]
		} else {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

// validate checks raw parameters against m's schema the way PVE's
// JSONSchema.pm does and returns the typed set, or a 400 *Error naming every
// bad parameter.
func validate(m *Method, raw rawParams) (Params, *Error) {
	if len(raw) == 0 && len(m.Params) == 0 {
		return nil, nil // the common parameterless GET allocates nothing
	}
	errs := map[string]string{}
	out := Params{}
	for _, name := range sortedKeys(m.Params) {
		s := m.Params[name]
		if s.Count > 0 {
			continue // checked below under the names given
		}
		v, present := raw[name]
		if !present {
			if !s.Optional {
				errs[name] = "property is missing and it is not optional"
			}
			continue
		}
		if msg := checkParam(name, s, v, out); msg != "" {
			errs[name] = msg
		}
	}
	for name := range raw {
		s, declared := m.Params[name]
		if declared && s.Count > 0 {
			declared = false // "net[n]" names the numbered parameters, it is not one
		}
		if !declared {
			if is := indexedParam(m.Params, name); is != nil {
				if msg := checkParam(name, is, raw[name], out); msg != "" {
					errs[name] = msg
				}
				continue
			}
			if !m.AdditionalParams {
				errs[name] = "property is not defined in schema and the schema does not allow additional properties"
			} else {
				out[name] = raw[name]
			}
			continue
		}
		if s.Requires != "" {
			if _, ok := raw[s.Requires]; !ok {
				errs[s.Requires] = fmt.Sprintf("missing property - '%s' requires this property", name)
			}
		}
	}
	if len(errs) > 0 {
		return nil, ParamError(errs)
	}
	return out, nil
}

// checkParam checks one parameter value and stores it in out; it returns
// the error message, if any. A property-string value is parsed against its
// format as well.
func checkParam(name string, s *Schema, v any, out Params) string {
	val, msg := checkValue(s, v)
	if msg != "" {
		return msg
	}
	if pf, ok := s.Format.(map[string]*Schema); ok {
		if str, ok := val.(string); ok {
			if _, err := ParsePropertyString(pf, str, name); err != nil {
				return "invalid format - " + err.Error()
			}
		}
	}
	out[name] = val
	return ""
}

// indexedParam returns the declaration of a numbered parameter ("scsi3"
// for "scsi[n]" with Count > 3), or nil.
func indexedParam(params map[string]*Schema, name string) *Schema {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == 0 || i == len(name) || (name[i] == '0' && i < len(name)-1) {
		return nil
	}
	s, ok := params[name[:i]+"[n]"]
	if !ok || s.Count == 0 {
		return nil
	}
	n, err := strconv.Atoi(name[i:])
	if err != nil || n >= s.Count {
		return nil
	}
	return s
}

// checkValue validates one value; it returns the normalised value or a
// message.
func checkValue(s *Schema, v any) (any, string) {
	if s.Type == "array" {
		list, ok := v.([]string)
		if !ok {
			list = []string{v.(string)}
		}
		if s.Items != nil {
			for i, e := range list {
				if _, msg := checkValue(s.Items, e); msg != "" {
					return nil, fmt.Sprintf("[%d]: %s", i, msg)
				}
			}
		}
		return list, ""
	}
	str, ok := v.(string)
	if !ok {
		list := v.([]string)
		if isListFormat(s.Format) {
			str = strings.Join(list, ",")
		} else {
			return nil, fmt.Sprintf("type check ('%s') failed - got ARRAY", typeOr(s.Type))
		}
	}
	switch s.Type {
	case "boolean":
		if str != "0" && str != "1" {
			return nil, fmt.Sprintf("type check ('boolean') failed - got '%s'", str)
		}
	case "integer":
		if !isInteger(str) {
			return nil, fmt.Sprintf("type check ('integer') failed - got '%s'", str)
		}
	case "number":
		if !isNumber(str) {
			return nil, fmt.Sprintf("type check ('number') failed - got '%s'", str)
		}
	}
	if s.Format != nil {
		if err := checkFormat(s.Format, str); err != nil {
			return nil, "invalid format - " + err.Error()
		}
	}
	if s.Pattern != "" {
		if !s.matches(str) {
			return nil, "value does not match the regex pattern"
		}
	}
	if s.MaxLength != nil && len(str) > *s.MaxLength {
		return nil, fmt.Sprintf("value may only be %d characters long", *s.MaxLength)
	}
	if s.MinLength != nil && len(str) < *s.MinLength {
		return nil, fmt.Sprintf("value must be at least %d characters long", *s.MinLength)
	}
	if isNumber(str) {
		f, _ := strconv.ParseFloat(str, 64)
		if s.Maximum != nil && f > *s.Maximum {
			return nil, fmt.Sprintf("value must have a maximum value of %v", num(*s.Maximum))
		}
		if s.Minimum != nil && f < *s.Minimum {
			return nil, fmt.Sprintf("value must have a minimum value of %v", num(*s.Minimum))
		}
	}
	if s.Enum != nil {
		found := false
		for _, e := range s.Enum {
			if e == str {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", str, strings.Join(s.Enum, ", "))
		}
	}
	return str, ""
}

func typeOr(t string) string {
	if t == "" {
		return "string"
	}
	return t
}

var (
	integerRe = regexp.MustCompile(`^[+-]?\d+$`)
	numberRe  = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
)

func isInteger(s string) bool { return integerRe.MatchString(s) }
func isNumber(s string) bool  { return numberRe.MatchString(s) }

// knownFormatNames lists the formats whose checks are implemented, sorted for
// error messages.
func knownFormatNames() []string {
	names := make([]string, 0, len(formats))
	for k := range formats {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// CheckValue validates one textual value (a config file's, not a request's)
// against s as a request parameter would be checked, property-string
// format included; the error is PVE's message for the value.
func CheckValue(s *Schema, v string) error {
	var in any = v
	if s.Type == "array" {
		in = []string{v}
	}
	if msg := checkParam("", s, in, Params{}); msg != "" {
		return errors.New(msg)
	}
	return nil
}
