package api

import "strconv"

// namedPropertyFormat returns the property-string format registered under
// a format name, or nil.
func namedPropertyFormat(f any) PropertyFormat {
	switch v := f.(type) {
	case map[string]*Schema:
		return v
	case string:
		switch v {
		case "prune-backups":
			return PruneBackupsFormat()
		case "backup-fleecing":
			return BackupFleecingFormat()
		case "backup-performance":
			return BackupPerformanceFormat()
		}
	}
	return nil
}

// TypedValue converts a config value (text) to the JSON type its schema
// gives, as PVE's parsers do with check_type: integers and numbers as
// numbers, booleans as 0/1, and with asObject, property strings as objects
// of typed values (as PVE returns backup job options). Values that do not
// convert stay strings; a nil schema keeps the text.
func TypedValue(s *Schema, value string, asObject bool) any {
	if s == nil {
		return value
	}
	if asObject {
		if pf := namedPropertyFormat(s.Format); pf != nil {
			m, err := ParsePropertyString(pf, value, "")
			if err == nil {
				out := make(map[string]any, len(m))
				for k, v := range m {
					out[k] = TypedValue(pf[k], v, false)
				}
				return out
			}
		}
	}
	switch s.Type {
	case "integer":
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			return n
		}
	case "number":
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			return f
		}
	case "boolean":
		switch NormBool(value) {
		case "1":
			return 1
		case "0":
			return 0
		}
	}
	return value
}
