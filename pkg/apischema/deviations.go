package apischema

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Deviation is one deliberate, written-down difference from PVE's schema.
type Deviation struct {
	// Method is the method's Key, e.g. "GET /nodes/{node}/status".
	Method string
	// Field is a Difference field path; it excuses that field and
	// everything below it ("parameters.properties.vmid" excuses
	// "parameters.properties.vmid.type"). "." excuses the whole method,
	// including NoteNotInPVE.
	Field string
	// Reason says why we differ; it must not be empty.
	Reason string
	// Source is where the entry was written, "file:line"; empty for entries
	// from a Go table.
	Source string
}

// Deviations is a list of deliberate differences. A Go table of Deviation
// values works as well as a parsed file.
type Deviations []Deviation

// Matches reports whether the deviation excuses diff.
func (dv Deviation) Matches(diff Difference) bool {
	if dv.Method != diff.Method {
		return false
	}
	return dv.Field == "." || dv.Field == diff.Field || strings.HasPrefix(diff.Field, dv.Field+".")
}

func (dv Deviation) where() string {
	if dv.Source == "" {
		return "deviation table"
	}
	return dv.Source
}

// ParseDeviations reads a deviation list. Each line is
//
//	METHOD /path field-path reason...
//
// with METHOD one of GET, POST, PUT, DELETE and the field path as in
// Difference.Field ("." for the whole method). Blank lines and lines starting
// with # are skipped. Every bad line is reported, as name:line.
func ParseDeviations(name string, data []byte) (Deviations, error) {
	var out Deviations
	var errs []error
	seen := map[string]string{}
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pos := fmt.Sprintf("%s:%d", name, n+1)
		f := strings.Fields(line)
		if len(f) < 3 {
			errs = append(errs, fmt.Errorf("%s: expected METHOD /path field-path reason", pos))
			continue
		}
		if len(f) < 4 {
			errs = append(errs, fmt.Errorf("%s: deviation %s %s %s has no reason", pos, f[0], f[1], f[2]))
			continue
		}
		if _, ok := verbRank(f[0]); !ok {
			errs = append(errs, fmt.Errorf("%s: method %q is not GET, POST, PUT or DELETE", pos, f[0]))
			continue
		}
		if !strings.HasPrefix(f[1], "/") {
			errs = append(errs, fmt.Errorf("%s: path %q does not start with /", pos, f[1]))
			continue
		}
		if f[2] != "." && (strings.HasPrefix(f[2], ".") || strings.HasSuffix(f[2], ".")) {
			errs = append(errs, fmt.Errorf("%s: field path %q starts or ends with a dot", pos, f[2]))
			continue
		}
		dv := Deviation{Method: Key(f[0], f[1]), Field: f[2], Reason: strings.Join(f[3:], " "), Source: pos}
		id := dv.Method + " " + dv.Field
		if prev, ok := seen[id]; ok {
			errs = append(errs, fmt.Errorf("%s: deviation %s repeats %s", pos, id, prev))
			continue
		}
		seen[id] = pos
		out = append(out, dv)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadDeviations reads the deviation list in the file at path.
func LoadDeviations(path string) (Deviations, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load deviations: %w", err)
	}
	return ParseDeviations(path, data)
}

// apply drops the differences the list excuses and appends one difference
// for each entry without a reason or that excused nothing.
func (ds Deviations) apply(raw []Difference) []Difference {
	used := make([]bool, len(ds))
	var out []Difference
	for _, diff := range raw {
		excused := false
		for i, dv := range ds {
			if strings.TrimSpace(dv.Reason) != "" && dv.Matches(diff) {
				used[i] = true
				excused = true
			}
		}
		if !excused {
			out = append(out, diff)
		}
	}
	for i, dv := range ds {
		switch {
		case strings.TrimSpace(dv.Reason) == "":
			out = append(out, Difference{Method: dv.Method, Field: dv.Field,
				Note: fmt.Sprintf("%s (%s)", NoteNoReason, dv.where())})
		case !used[i]:
			out = append(out, Difference{Method: dv.Method, Field: dv.Field,
				Note: fmt.Sprintf("%s (%s): %s", NoteUnusedDeviation, dv.where(), dv.Reason)})
		}
	}
	return out
}
