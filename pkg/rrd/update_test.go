package rrd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// t0 is a multiple of 180 s: the start of a 1-minute and of a 3-minute row.
const t0 = 1_700_000_100

// testSchema has a gauge and a counter (both with minimum 0, as PVE's) and
// AVERAGE and MAX archives of 1 and 3 steps.
var testSchema = mustSchema("test", 60,
	"DS:g:GAUGE:120:0:U", "DS:d:DERIVE:120:0:U",
	"RRA:AVERAGE:0.5:1:10", "RRA:AVERAGE:0.5:3:5", "RRA:MAX:0.5:1:10", "RRA:MAX:0.5:3:5")

// Archive indexes of testSchema.
const (
	avg1 = iota
	avg3
	max1
	max3
)

// rowAt returns the row of archive r ending at end ("U" for unknown).
func rowAt(sr *Series, r int, end int64) string {
	s := sr.st.s
	a := s.rra[r]
	idx := (end / (s.step * a.Steps)) % a.Rows
	var f []string
	for _, v := range sr.rows[r][idx*int64(len(s.ds)) : (idx+1)*int64(len(s.ds))] {
		if math.IsNaN(v) {
			f = append(f, "U")
		} else {
			f = append(f, strconv.FormatFloat(v, 'g', 10, 64))
		}
	}
	return strings.Join(f, ":")
}

// TestConsolidation checks rows against values worked out by hand from
// rrdtool's rules: a PDP is the time-weighted average of the rates over
// its step (a reading is the rate of the interval it ends), unknown if
// more than half of the step is unknown or an interval exceeds the
// heartbeat; a DERIVE rate is the counter's difference over the interval,
// unknown when negative (below the minimum 0); a row of a 3-step archive
// consolidates its PDPs, unknown if more than xff (half) of them are.
func TestConsolidation(t *testing.T) {
	type row struct {
		rra  int
		end  int64  // seconds after t0
		want string // "g:d"
	}
	for _, tt := range []struct {
		name    string
		updates []string // "seconds after t0:g:d"
		rows    []row
	}{
		{
			name: "gauge average and max over steps",
			updates: []string{"20:1:U", "40:4:U", "60:7:U", // (1*20+4*20+7*20)/60 = 4
				"80:10:U", "100:10:U", "120:10:U", // 10
				"140:1:U", "160:1:U", "180:4:U"}, // (20+20+80)/60 = 2
			rows: []row{
				{avg1, 60, "4:U"}, {avg1, 120, "10:U"}, {avg1, 180, "2:U"}, {avg1, 240, "U:U"},
				{max1, 60, "4:U"}, {max1, 180, "2:U"},
				{avg3, 180, "5.333333333:U"}, // (4+10+2)/3
				{max3, 180, "10:U"},
			},
		},
		{
			name: "reading across a step boundary",
			// 6 for 50 s, then 12 for 20 s of which 10 s in each step,
			// then 3 for 50 s
			updates: []string{"50:6:U", "70:12:U", "120:3:U"},
			rows:    []row{{avg1, 60, "7:U"}, {avg1, 120, "4.5:U"}}, // (300+120)/60, (120+150)/60
		},
		{
			name: "derive rates and a counter reset",
			updates: []string{"10:U:1000", "20:U:1600", "30:U:2200", "40:U:2800", "50:U:3400", "60:U:4000",
				"70:U:100", // reset: negative rate, 10 s unknown
				"80:U:700", "90:U:1300", "100:U:1900", "110:U:2500", "120:U:3100"},
			rows: []row{
				{avg1, 60, "U:60"},  // 3000 over the 50 known seconds
				{avg1, 120, "U:60"}, // 3000 over 50 s
				{max1, 120, "U:60"},
			},
		},
		{
			name:    "unknown for half a step still counts, more does not",
			updates: []string{"10:U:U", "20:U:U", "30:U:U", "40:5:U", "50:5:U", "60:5:U", "70:U:U", "80:U:U", "90:U:U", "100:U:U", "110:8:U", "120:8:U"},
			rows:    []row{{avg1, 60, "5:U"}, {avg1, 120, "U:U"}},
		},
		{
			// rrdtool holds only the unknown seconds before the reading
			// that closes a step against it, not the closing interval's
			name:    "unknown closing interval is not counted",
			updates: []string{"20:10:U", "40:U:U", "60:U:U"},
			rows:    []row{{avg1, 60, "10:U"}}, // 200 over the 20 known seconds
		},
		{
			name:    "out of range gauge is unknown",
			updates: []string{"20:-1:U", "40:-1:U", "60:-1:U"},
			rows:    []row{{avg1, 60, "U:U"}},
		},
		{
			name: "heartbeat gap",
			// 140 s without a reading: the steps it covers are unknown and
			// the counter's next difference starts over
			updates: []string{"30:2:100", "60:2:700", "200:9:5000", "220:9:5200", "240:9:5400"},
			rows: []row{
				{avg1, 60, "2:20"}, {avg1, 120, "U:U"}, {avg1, 180, "U:U"},
				{avg1, 240, "9:10"}, // 20 s unknown, then 40 s known
				{avg3, 180, "U:U"},  // 2 of 3 steps unknown
				{max3, 180, "U:U"},
			},
		},
		{
			name: "reading closing a half-open step and the next",
			// 4 for 30 s, then one reading 10 over 100 s: 30 s of it in the
			// first step, 60 s in the second, 10 s in the third
			updates: []string{"30:4:U", "130:10:U", "180:10:U"},
			rows:    []row{{avg1, 60, "7:U"}, {avg1, 120, "10:U"}, {avg1, 180, "10:U"}, {avg3, 180, "9:U"}, {max3, 180, "10:U"}},
		},
		{
			name: "one unknown step of three",
			updates: []string{"20:3:U", "40:3:U", "60:3:U", "80:U:U", "100:U:U", "120:U:U",
				"140:9:U", "160:9:U", "180:9:U"},
			rows: []row{
				{avg1, 120, "U:U"},
				{avg3, 180, "6:U"}, // (3+9)/2: one unknown of three is within xff 0.5
				{max3, 180, "9:U"},
			},
		},
		{
			name: "several rows after a gap within the heartbeat",
			// a reading 110 s after the last fills two steps with its rate
			updates: []string{"10:6:0", "70:6:600", "180:6:1700"},
			rows:    []row{{avg1, 120, "6:10"}, {avg1, 180, "6:10"}, {avg3, 180, "6:10"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sr := NewSeries(testSchema, t0)
			for _, u := range tt.updates {
				dt, rest, _ := strings.Cut(u, ":")
				n, _ := strconv.ParseInt(dt, 10, 64)
				if err := sr.UpdateRecord(fmt.Sprintf("%d:%s", t0+n, rest)); err != nil {
					t.Fatalf("update %s: %v", u, err)
				}
			}
			for _, r := range tt.rows {
				if got := rowAt(sr, r.rra, t0+r.end); got != r.want {
					t.Errorf("%s/%d row ending +%d = %s; want %s", testSchema.rra[r.rra].CF, testSchema.rra[r.rra].Steps, r.end, got, r.want)
				}
			}
		})
	}
}

func TestUpdateErrors(t *testing.T) {
	sr := NewSeries(testSchema, t0)
	if err := sr.Update(t0+10, []float64{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		t    int64
		vals []float64
		is   error
	}{
		{"same time", t0 + 10, []float64{1, 2}, ErrOutdated},
		{"earlier", t0 + 5, []float64{1, 2}, ErrOutdated},
		{"too few values", t0 + 20, []float64{1}, nil},
	} {
		err := sr.Update(tt.t, tt.vals)
		if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: Update = %v; want error %v", tt.name, err, tt.is)
		}
	}
	if sr.LastUpdate() != t0+10 {
		t.Errorf("LastUpdate = %d after refused updates; want %d", sr.LastUpdate(), t0+10)
	}
}

func TestNewSchemaErrors(t *testing.T) {
	for _, defs := range [][]string{
		{"DS:a:GAUGE:120:0:U"},                           // no archive
		{"RRA:AVERAGE:0.5:1:10"},                         // no data source
		{"DS:a:COUNTER:120:0:U", "RRA:AVERAGE:0.5:1:10"}, // unsupported type
		{"DS:a:GAUGE:0:0:U", "RRA:AVERAGE:0.5:1:10"},     // heartbeat
		{"DS:a-b:GAUGE:120:0:U", "RRA:AVERAGE:0.5:1:10"}, // name
		{"DS:a:GAUGE:120:0:U", "DS:a:GAUGE:120:0:U", "RRA:AVERAGE:0.5:1:10"},
		{"DS:a:GAUGE:120:0:U", "RRA:LAST:0.5:1:10"},
		{"DS:a:GAUGE:120:0:U", "RRA:AVERAGE:1:1:10"},
		{"DS:a:GAUGE:120:0:U", "RRA:AVERAGE:0.5:0:10"},
		{"DS:a:GAUGE:120:x:U", "RRA:AVERAGE:0.5:1:10"},
	} {
		if _, err := NewSchema("x", 60, defs...); err == nil {
			t.Errorf("NewSchema(%q) succeeded; want error", defs)
		}
	}
}

// TestPVESchemas pins the PVE 9 layouts: column order (the order of
// pvestatd's records) and file sizes.
func TestPVESchemas(t *testing.T) {
	for _, tt := range []struct {
		s    *Schema
		cols string
		size int64
	}{
		{NodeSchema, "loadavg maxcpu cpu iowait memtotal memused swaptotal swapused roottotal rootused netin netout " +
			"memavailable arcsize pressurecpusome pressureiosome pressureiofull pressurememorysome pressurememoryfull", 1_271_744},
		{VMSchema, "maxcpu cpu maxmem mem maxdisk disk netin netout diskread diskwrite memhost pressurecpusome " +
			"pressurecpufull pressureiosome pressureiofull pressurememorysome pressurememoryfull", 1_137_904},
		{StorageSchema, "total used", 134_104},
	} {
		var names []string
		for _, ds := range tt.s.DS() {
			names = append(names, ds.Name)
			want := Gauge
			if strings.HasPrefix(ds.Name, "net") || strings.HasPrefix(ds.Name, "disk") && ds.Name != "disk" {
				want = Derive
			}
			if ds.Type != want || ds.Heartbeat != 120 || ds.Min != 0 || !math.IsNaN(ds.Max) {
				t.Errorf("%s %s = %+v", tt.s.Name(), ds.Name, ds)
			}
		}
		if got := strings.Join(names, " "); got != tt.cols {
			t.Errorf("%s columns %s; want %s", tt.s.Name(), got, tt.cols)
		}
		if got := tt.s.FileSize(); got != tt.size {
			t.Errorf("%s file size %d; want %d", tt.s.Name(), got, tt.size)
		}
		if n := len(tt.s.RRA()); n != 8 {
			t.Errorf("%s has %d archives; want 8", tt.s.Name(), n)
		}
	}
}
