package rrd

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func fmtVals(vals []float64) string {
	var f []string
	for _, v := range vals {
		if math.IsNaN(v) {
			f = append(f, "U")
		} else {
			f = append(f, fmt.Sprint(v))
		}
	}
	return strings.Join(f, ":")
}

func TestParseRecord(t *testing.T) {
	for _, tt := range []struct {
		rec, want, err string
	}{
		{rec: "1700000000:0.5:123", want: "1700000000 0.5:123"},
		{rec: "1700000000:U:U", want: "1700000000 U:U"},
		{rec: "1700000000:1e3:-5", want: "1700000000 1000:-5"},
		{rec: "1700000000:1:1.5", err: `d: not a simple signed integer: "1.5"`},
		{rec: "1700000000:1:", err: `d: not a simple signed integer: ""`},
		{rec: "1700000000:x:1", err: `g: not a number: "x"`},
		{rec: "1700000000:1", err: `expected 2 data source readings (got 1)`},
		{rec: "1700000000:1:2:3", err: `found extra data on update argument: "3"`},
		{rec: "N:1:2", err: `time "N": want positive integer Unix seconds`},
		{rec: "1700000000", err: `expected timestamp not found`},
		{rec: "", err: `expected timestamp not found`},
	} {
		tm, vals, err := ParseRecord(testSchema, tt.rec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRecord(%q) error = %v; want %q", tt.rec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRecord(%q) error = %v", tt.rec, err)
			continue
		}
		if got := fmt.Sprintf("%d %s", tm, fmtVals(vals)); got != tt.want {
			t.Errorf("ParseRecord(%q) = %s; want %s", tt.rec, got, tt.want)
		}
	}
}

// TestParseBroadcast covers pmxcfs's key handling: columns not archived
// are skipped, PVE 8 records padded, newer ones cut, all stored in the
// 9.0 series.
func TestParseBroadcast(t *testing.T) {
	node9 := "3600:c:1700000000:0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000:40:0:0.1:0.2:0.3:0.4:0.5"
	vm9 := "3600:web:running:0:1700000000:2:0.25:1024:512:4096:2048:10:20:30:40:600:0.1:0.2:0.3:0.4:0.5:0.6"
	for _, tt := range []struct {
		key, data, series, vals, err string
	}{
		{key: "pve-node-9.0/pve1", data: node9, series: "pve-node-9.0/pve1",
			vals: "0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000:40:0:0.1:0.2:0.3:0.4:0.5"},
		{key: "pve2-node/pve1", data: "3600::1700000000:0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000", series: "pve-node-9.0/pve1",
			vals: "0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000:U:U:U:U:U:U:U"},
		{key: "pve-node-10.0/pve1", data: node9 + ":7:8", series: "pve-node-9.0/pve1",
			vals: "0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000:40:0:0.1:0.2:0.3:0.4:0.5"},
		{key: "pve-vm-9.0/100", data: vm9, series: "pve-vm-9.0/100",
			vals: "2:0.25:1024:512:4096:2048:10:20:30:40:600:0.1:0.2:0.3:0.4:0.5:0.6"},
		{key: "pve2.3-vm/100", data: "0:web:stopped:0:1700000000:2:U:1024:U:4096:0:U:U:U:U", series: "pve-vm-9.0/100",
			vals: "2:U:1024:U:4096:0:U:U:U:U:U:U:U:U:U:U:U"},
		{key: "pve-storage-9.0/pve1/local", data: "1700000000:1000:400", series: "pve-storage-9.0/pve1/local", vals: "1000:400"},
		{key: "pve2-storage/pve1/local-lvm", data: "1700000000:1000:400", series: "pve-storage-9.0/pve1/local-lvm", vals: "1000:400"},
		{key: "pve-storage-9.5/pve1/nfs.1", data: "1700000000:1000:400:9", series: "pve-storage-9.0/pve1/nfs.1", vals: "1000:400"},
		{key: "pve-vm-9.0/100", data: "3600:web:running", err: "expected timestamp"},
		{key: "pve-vm-9.0/100", data: vm9 + ":1", err: "expected 17 data source readings (got 18)"},
		{key: "pve-storage-9.0/pve1/local", data: "1700000000:1000", err: "expected 2 data source readings (got 1)"},
		{key: "pve-vm-9.0/100", data: strings.Replace(vm9, ":10:20:", ":10.5:20:", 1), err: "netin: not a simple signed integer"},
		{key: "pve-vm-9.0/../../etc/x", data: vm9, err: "unknown or malformed key"},
		{key: "pve-vm-9.0/.hidden", data: vm9, err: "unknown or malformed key"},
		{key: "pve-vm-9.0/", data: vm9, err: "unknown or malformed key"},
		{key: "pve-vm-9.0", data: vm9, err: "unknown or malformed key"},
		{key: "pve-node-9.0/a/b", data: node9, err: "unknown or malformed key"},
		{key: "pve-storage-9.0/pve1", data: "1700000000:1:2", err: "unknown or malformed key"},
		{key: "pve-storage-9.0/pve1/a/b", data: "1700000000:1:2", err: "unknown or malformed key"},
		{key: "pve2-lxc/100", data: vm9, err: "unknown or malformed key"},
	} {
		series, tm, vals, err := ParseBroadcast(tt.key, tt.data)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseBroadcast(%q) error = %v; want %q", tt.key, err, tt.err)
			}
			if strings.Contains(tt.err, "malformed") && !errors.Is(err, ErrBadKey) {
				t.Errorf("ParseBroadcast(%q) error = %v; want ErrBadKey", tt.key, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseBroadcast(%q) error = %v", tt.key, err)
			continue
		}
		if series != tt.series || tm != 1700000000 || fmtVals(vals) != tt.vals {
			t.Errorf("ParseBroadcast(%q) = %s %d %s; want %s 1700000000 %s", tt.key, series, tm, fmtVals(vals), tt.series, tt.vals)
		}
	}
}

// FuzzParseRecord checks that any record parses or fails cleanly, and
// that a parsed one applies to a series.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"1700000000:0.5:123", "1700000000:U:U", "1:1:-1", "x:1:2", "1700000000:1e309:99999999999999999999", ":::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		tm, vals, err := ParseRecord(testSchema, rec)
		if err != nil {
			return
		}
		if len(vals) != 2 || tm <= 0 {
			t.Fatalf("ParseRecord(%q) = %d %v", rec, tm, vals)
		}
		sr := NewSeries(testSchema, tm-1)
		if err := sr.Update(tm, vals); err != nil {
			t.Fatalf("Update(%q): %v", rec, err)
		}
	})
}

// FuzzParseBroadcast checks that any key and record parse or fail
// cleanly, and that a parsed key is a safe relative path.
func FuzzParseBroadcast(f *testing.F) {
	f.Add("pve-vm-9.0/100", "3600:web:running:0:1700000000:2:0.25:1024:512:4096:2048:10:20:30:40:600:0.1:0.2:0.3:0.4:0.5:0.6")
	f.Add("pve2-node/pve1", "3600::1700000000:0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000")
	f.Add("pve-storage-9.0/pve1/local", "1700000000:1000:400")
	f.Add("pve-storage-12/../x", "1:2:3:4")
	f.Fuzz(func(t *testing.T, key, data string) {
		series, _, vals, err := ParseBroadcast(key, data)
		if err != nil {
			return
		}
		s, err := splitKey(series)
		if err != nil {
			t.Fatalf("ParseBroadcast(%q) gave series %q: %v", key, series, err)
		}
		if len(vals) != len(s.ds) {
			t.Fatalf("ParseBroadcast(%q) gave %d values", key, len(vals))
		}
		for _, part := range strings.Split(series, "/") {
			if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
				t.Fatalf("ParseBroadcast(%q) gave unsafe series %q", key, series)
			}
		}
	})
}
