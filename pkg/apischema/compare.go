package apischema

import (
	"fmt"
	"maps"
	"sort"
)

// Notes of differences that have no values to show.
const (
	// NoteNotInPVE marks a method we declare that PVE's schema lacks.
	NoteNotInPVE = "not in PVE schema"
	// NoteUnusedDeviation starts the note of a deviation that matched nothing.
	NoteUnusedDeviation = "unused deviation"
	// NoteNoReason marks a deviation entry without a reason.
	NoteNoReason = "deviation without a reason"
)

// Difference is one way in which a method we declare disagrees with PVE's
// schema.
type Difference struct {
	// Method is the method's Key, e.g. "GET /nodes/{node}/status".
	Method string
	// Field is the dotted path of the differing value, e.g.
	// "parameters.properties.vmid.type"; empty for the method as a whole.
	// Property names are used as they are, so a name containing a dot (PVE
	// has privilege names such as "VM.Audit" as return properties) spans two
	// segments.
	Field string
	// Ours and PVE are the two values as compact JSON, or "(absent)".
	Ours, PVE string
	// Note replaces the values for differences that have none (see the
	// Note constants); it is empty otherwise.
	Note string
}

// String renders the difference on one line.
func (d Difference) String() string {
	where := d.Method
	if d.Field != "" {
		where += " " + d.Field
	}
	if d.Note != "" {
		return where + ": " + d.Note
	}
	return fmt.Sprintf("%s: ours %s, PVE %s", where, d.Ours, d.PVE)
}

// Compare checks every method in ours against the method of the same Key in
// pve and returns the differences that allowed does not excuse, followed by
// one difference for each entry of allowed that excused nothing or has no
// reason. A method missing from pve is one difference with NoteNotInPVE.
// Methods of pve that ours lacks are not differences; see Coverage.
//
// Compared are protected, proxyto, allowtoken, download_allowed,
// expose_credentials and any unknown method keys; permissions without their
// description; the parameter schema in full except presentation keys; and the
// shape of the return schema. The package documentation lists the defaults
// and equivalences applied.
func Compare(ours, pve map[string]*Method, allowed Deviations) []Difference {
	keys := make([]string, 0, len(ours))
	for k := range ours {
		keys = append(keys, k)
	}
	SortKeys(keys)
	var raw []Difference
	for _, k := range keys {
		p, ok := pve[k]
		if !ok || p == nil {
			raw = append(raw, Difference{Method: k, Note: NoteNotInPVE})
			continue
		}
		d := &differ{method: k}
		d.compareMethod(ours[k], p)
		raw = append(raw, d.out...)
	}
	return allowed.apply(raw)
}

// differ collects the differences of one method.
type differ struct {
	method string
	out    []Difference
}

func (d *differ) add(field string, ours, pve any) {
	d.out = append(d.out, Difference{Method: d.method, Field: field, Ours: render(ours), PVE: render(pve)})
}

func (d *differ) note(field, note string) {
	d.out = append(d.out, Difference{Method: d.method, Field: field, Note: note})
}

// compareMethod compares two methods of the same key.
func (d *differ) compareMethod(o, p *Method) {
	if o == nil {
		o = &Method{}
	}
	d.flag("protected", o.IsProtected(), p.IsProtected())
	d.value("proxyto", proxyOf(o), proxyOf(p))
	d.flag("allowtoken", o.TokenAllowed(), p.TokenAllowed())
	d.flag("download_allowed", o.DownloadAllowed.Value(false), p.DownloadAllowed.Value(false))
	d.flag("expose_credentials", o.ExposeCredentials.Value(false), p.ExposeCredentials.Value(false))

	extra := map[string]bool{}
	for k := range o.Extra {
		extra[k] = true
	}
	for k := range p.Extra {
		extra[k] = true
	}
	for _, k := range sortedSet(extra) {
		ov, oerr := canonical(lookup(o.Extra, k))
		pv, perr := canonical(lookup(p.Extra, k))
		if !d.encoded(k, oerr, perr) {
			continue
		}
		d.value(k, ov, pv)
	}

	op, oerr := permsOf(o)
	pp, perr := permsOf(p)
	if d.encoded("permissions", oerr, perr) {
		d.value("permissions", op, pp)
	}

	oa, oerr := schemaOf(o.Parameters, true)
	pa, perr := schemaOf(p.Parameters, true)
	if d.encoded("parameters", oerr, perr) {
		d.schema("parameters", oa, pa, false)
	}

	ors, oerr := schemaOf(o.Returns, false)
	pr, perr := schemaOf(p.Returns, false)
	if d.encoded("returns", oerr, perr) {
		d.schema("returns", ors, pr, true)
	}
}

// encoded reports whether both sides could be turned into JSON, recording a
// difference when not.
func (d *differ) encoded(field string, oerr, perr error) bool {
	switch {
	case oerr != nil:
		d.note(field, fmt.Sprintf("cannot encode ours: %v", oerr))
	case perr != nil:
		d.note(field, fmt.Sprintf("cannot encode PVE's: %v", perr))
	default:
		return true
	}
	return false
}

func (d *differ) flag(field string, ours, pve bool) {
	if ours != pve {
		d.out = append(d.out, Difference{Method: d.method, Field: field, Ours: renderFlag(ours), PVE: renderFlag(pve)})
	}
}

// proxyOf returns proxyto, or missing{} for absent and null.
func proxyOf(m *Method) any {
	if m.ProxyTo == "" {
		return missing{}
	}
	return m.ProxyTo
}

// permsOf returns the permissions without their description, or missing{}.
func permsOf(m *Method) (any, error) {
	if m.Permissions == nil {
		return missing{}, nil
	}
	v, err := canonical(m.Permissions)
	if err != nil {
		return nil, err
	}
	pm, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	pm = maps.Clone(pm) // canonical may share the caller's map
	delete(pm, "description")
	delete(pm, "verbose_description")
	return pm, nil
}

// schemaOf returns a canonical copy of a parameter or return schema; an
// absent one is empty, and parameters are of type object unless they say
// otherwise.
func schemaOf(s map[string]any, params bool) (any, error) {
	v, err := canonical(s)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if _, ok := m["type"]; params && !ok {
		m = maps.Clone(m) // canonical may share the caller's map
		if m == nil {
			m = map[string]any{}
		}
		m["type"] = "object"
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// ignoredKey reports whether a schema key is left out of the comparison:
// presentation keys always, and in shape mode everything that does not make up
// the shape of a value.
func ignoredKey(k string, shape bool) bool {
	switch k {
	case "description", "verbose_description", "typetext", "format_description",
		"title", "renderer", "print_width":
		return true
	}
	if !shape {
		return false
	}
	switch k {
	case "type", "optional", "format", "properties", "items", "additionalProperties", "oneOf", "links":
		return false
	}
	return true
}

// schema compares two schemas; a and b may be missing{} or non-objects, in
// which case they are compared as values.
func (d *differ) schema(path string, a, b any, shape bool) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		d.value(path, cleanSchema(a, shape), cleanSchema(b, shape))
		return
	}
	for _, k := range unionKeys(am, bm) {
		if ignoredKey(k, shape) {
			continue
		}
		av, bv := lookup(am, k), lookup(bm, k)
		field := path + "." + k
		switch k {
		case "optional":
			d.valueDefault(field, av, bv, "0")
		case "additionalProperties":
			if isObject(av) || isObject(bv) {
				d.schema(field, av, bv, shape)
			} else {
				d.valueDefault(field, av, bv, "1")
			}
		case "requires", "items", "extends":
			if isObject(av) || isObject(bv) {
				d.schema(field, av, bv, shape)
			} else {
				d.value(field, av, bv)
			}
		case "properties":
			d.named(field, av, bv, shape)
		case "format":
			if isObject(av) && isObject(bv) {
				d.named(field, av, bv, shape)
			} else {
				d.value(field, cleanSchema(av, shape), cleanSchema(bv, shape))
			}
		case "oneOf":
			al, aok := av.([]any)
			bl, bok := bv.([]any)
			if aok && bok && len(al) == len(bl) {
				for i := range al {
					d.schema(fmt.Sprintf("%s.%d", field, i), al[i], bl[i], shape)
				}
			} else {
				d.value(field, av, bv)
			}
		case "enum":
			d.set(field, av, bv)
		default:
			d.value(field, av, bv)
		}
	}
}

// named compares two maps of named sub-schemas (properties, or an
// object-valued format): the names must agree, and each pair of sub-schemas.
func (d *differ) named(path string, a, b any, shape bool) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		d.value(path, cleanSchema(a, shape), cleanSchema(b, shape))
		return
	}
	for _, k := range unionKeys(am, bm) {
		av, bv := lookup(am, k), lookup(bm, k)
		if isMissing(av) || isMissing(bv) {
			d.add(path+"."+k, cleanSchema(av, shape), cleanSchema(bv, shape))
			continue
		}
		d.schema(path+"."+k, av, bv, shape)
	}
}

// value compares two plain values; objects are compared key by key so that
// the difference names the innermost field.
func (d *differ) value(path string, a, b any) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for _, k := range unionKeys(am, bm) {
			d.value(path+"."+k, lookup(am, k), lookup(bm, k))
		}
		return
	}
	if !Equal(a, b) {
		d.add(path, a, b)
	}
}

// valueDefault compares two scalars, an absent one taking the value def; the
// difference shows the values as written.
func (d *differ) valueDefault(path string, a, b, def any) {
	ea, eb := a, b
	if isMissing(ea) {
		ea = def
	}
	if isMissing(eb) {
		eb = def
	}
	if !Equal(ea, eb) {
		d.add(path, a, b)
	}
}

// set compares two lists as sets (enum values).
func (d *differ) set(path string, a, b any) {
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if !aok || !bok {
		d.value(path, a, b)
		return
	}
	if !sameSet(al, bl) {
		d.add(path, a, b)
	}
}

func sameSet(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
next:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && Equal(x, y) {
				used[j] = true
				continue next
			}
		}
		return false
	}
	return true
}

// cleanSchema returns a copy of a schema without the keys Compare ignores,
// for display.
func cleanSchema(v any, shape bool) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, sub := range m {
		if ignoredKey(k, shape) {
			continue
		}
		switch k {
		case "properties", "format":
			if named, ok := sub.(map[string]any); ok {
				cp := make(map[string]any, len(named))
				for n, s := range named {
					cp[n] = cleanSchema(s, shape)
				}
				sub = cp
			}
		case "items", "additionalProperties", "requires", "extends":
			sub = cleanSchema(sub, shape)
		case "oneOf":
			if alts, ok := sub.([]any); ok {
				cp := make([]any, len(alts))
				for i, s := range alts {
					cp[i] = cleanSchema(s, shape)
				}
				sub = cp
			}
		}
		out[k] = sub
	}
	return out
}

func isObject(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func unionKeys(a, b map[string]any) []string {
	set := make(map[string]bool, len(a)+len(b))
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	return sortedSet(set)
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
