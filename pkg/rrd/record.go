package rrd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadKey is returned for a key that names no series PVE knows.
var ErrBadKey = errors.New("unknown or malformed key")

// ParseRecord parses an update in rrdtool's form for schema s,
// "<time>:<v1>:...:<vn>" with one value per data source, "U" for unknown.
// The time is integer Unix seconds. Derive values must be integers
// (rrdtool: "not a simple signed integer"); exact up to 2^53.
func ParseRecord(s *Schema, rec string) (t int64, vals []float64, err error) {
	vals = make([]float64, len(s.ds))
	t, err = parseRecordInto(s, rec, vals)
	return t, vals, err
}

func parseRecordInto(s *Schema, rec string, vals []float64) (int64, error) {
	ts, rest, ok := strings.Cut(rec, ":")
	if !ok {
		return 0, fmt.Errorf("expected timestamp not found in data source from %q", clip(rec))
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || t <= 0 {
		return 0, fmt.Errorf("time %q: want positive integer Unix seconds", clip(ts))
	}
	for i, ds := range s.ds {
		var f string
		last := i == len(s.ds)-1
		if last {
			f = rest
			if strings.IndexByte(f, ':') >= 0 {
				return 0, fmt.Errorf("found extra data on update argument: %q", clip(f[strings.IndexByte(f, ':')+1:]))
			}
		} else if f, rest, ok = strings.Cut(rest, ":"); !ok {
			return 0, fmt.Errorf("expected %d data source readings (got %d) from %q", len(s.ds), i+1, clip(rec))
		}
		if vals[i], err = parseValue(ds.Type, f); err != nil {
			return 0, fmt.Errorf("%s: %w", ds.Name, err)
		}
	}
	return t, nil
}

func parseValue(typ DSType, f string) (float64, error) {
	if f == "U" {
		return math.NaN(), nil
	}
	if typ == Derive {
		digits := strings.TrimPrefix(f, "-")
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return 0, fmt.Errorf("not a simple signed integer: %q", clip(f))
		}
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("not a number: %q", clip(f))
	}
	return v, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// recordKind is one family of keys pmxcfs accepts (status.c,
// update_rrd_data): the schema its series use, the leading fields of the
// record that are not archived, and the legacy key of PVE 8 and earlier
// with its column count.
type recordKind struct {
	schema        *Schema
	prefix        string // "pve-node-" for "pve-node-<version>/..."
	legacy        string // "pve2-node/"
	skip          int
	legacyColumns int // 0: the legacy record has the current columns
}

var recordKinds = []recordKind{
	{schema: NodeSchema, prefix: "pve-node-", legacy: "pve2-node/", skip: 2, legacyColumns: 12},
	{schema: VMSchema, prefix: "pve-vm-", legacy: "pve2.3-vm/", skip: 4, legacyColumns: 10},
	{schema: StorageSchema, prefix: "pve-storage-", legacy: "pve2-storage/"},
}

// ParseBroadcast parses a status record as pvestatd broadcasts it and
// pmxcfs stores it (the value of "rrd/<key>"): key "pve-node-9.0/<node>",
// "pve-vm-9.0/<vmid>" or "pve-storage-9.0/<node>/<storage>", or the same
// with another version (a newer record is cut to the columns we know) or
// PVE 8's "pve2-node/", "pve2.3-vm/", "pve2-storage/" (padded with
// unknowns); data the fields in order, the first ones not archived
// (node: uptime, subscription level; guest: uptime, name, status,
// template), then the time and the values. It returns the key of the
// series (always the 9.0 schema) and the reading.
func ParseBroadcast(key, data string) (series string, t int64, vals []float64, err error) {
	k, name, err := broadcastKind(key)
	if err != nil {
		return "", 0, nil, err
	}
	s := k.schema
	fields := strings.Split(data, ":")
	if len(fields) <= k.skip {
		return "", 0, nil, fmt.Errorf("record %s: expected timestamp not found", key)
	}
	fields = fields[k.skip:]
	switch {
	case strings.HasPrefix(key, k.legacy) && k.legacyColumns > 0:
		for range len(s.ds) - k.legacyColumns {
			fields = append(fields, "U")
		}
	case strings.HasPrefix(key, k.prefix) && !strings.HasPrefix(key, s.name+"/") && len(fields) > len(s.ds)+1:
		fields = fields[:len(s.ds)+1] // a newer version only appends columns
	}
	if len(fields) != len(s.ds)+1 {
		return "", 0, nil, fmt.Errorf("record %s: expected %d data source readings (got %d)", key, len(s.ds), len(fields)-1)
	}
	t, err = strconv.ParseInt(fields[0], 10, 64)
	if err != nil || t <= 0 {
		return "", 0, nil, fmt.Errorf("record %s: time %q: want positive integer Unix seconds", key, clip(fields[0]))
	}
	vals = make([]float64, len(s.ds))
	for i, ds := range s.ds {
		if vals[i], err = parseValue(ds.Type, fields[i+1]); err != nil {
			return "", 0, nil, fmt.Errorf("record %s: %s: %w", key, ds.Name, err)
		}
	}
	return s.name + "/" + name, t, vals, nil
}

// broadcastKind finds the family of key and the series name in it.
func broadcastKind(key string) (recordKind, string, error) {
	for _, k := range recordKinds {
		if !strings.HasPrefix(key, k.legacy) && !strings.HasPrefix(key, k.prefix) {
			continue
		}
		_, name, ok := strings.Cut(key, "/")
		if ok && validSeriesName(k.schema, name) {
			return k, name, nil
		}
		break
	}
	return recordKind{}, "", fmt.Errorf("key %q: %w", clip(key), ErrBadKey)
}

// validSeriesName checks the part of a key after the schema: one name (a
// node or a guest), or "<node>/<storage>" for storages. Names are file
// names under the schema's directory, so they are held to
// [A-Za-z0-9][A-Za-z0-9._-]* (node names, VMIDs and storage IDs all are).
func validSeriesName(s *Schema, name string) bool {
	if s == StorageSchema {
		node, storage, ok := strings.Cut(name, "/")
		return ok && validName(node) && validName(storage)
	}
	return validName(name)
}

func validName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// splitKey returns the schema of a series key ("pve-vm-9.0/100").
func splitKey(key string) (*Schema, error) {
	dir, name, ok := strings.Cut(key, "/")
	s := schemas[dir]
	if !ok || s == nil || !validSeriesName(s, name) {
		return nil, fmt.Errorf("key %q: %w", clip(key), ErrBadKey)
	}
	return s, nil
}
