package rrd

import (
	"encoding/json"
	"math"
	"testing"
)

// steadyVM returns a VM series updated every 10 s from from to to with
// constant figures: cpu 0.25, mem 512, netin growing 1000 bytes/s.
func steadyVM(t testing.TB, from, to int64) *Series {
	t.Helper()
	sr := NewSeries(VMSchema, from-1)
	vals := make([]float64, len(VMSchema.ds))
	for i := range vals {
		vals[i] = math.NaN()
	}
	for tm := from; tm <= to; tm += 10 {
		vals[VMSchema.Index("cpu")] = 0.25
		vals[VMSchema.Index("mem")] = 512
		vals[VMSchema.Index("netin")] = float64((tm - from) * 1000)
		if err := sr.Update(tm, vals); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

// TestQueryWindows checks PVE's windows: points, resolution, times and
// the dropped last point that has no value yet.
func TestQueryWindows(t *testing.T) {
	const day0 = 1_699_920_000 // a multiple of 21600 and of 1800
	last := int64(day0 + 40*86400 + 30)
	sr := steadyVM(t, day0, last)
	for _, tt := range []struct {
		tf       Timeframe
		now      int64
		n        int
		step     int64
		lastTime int64
	}{
		{Hour, last + 10, 60, 60, last - 30},   // the point ending before now is complete
		{Hour, last + 65, 59, 60, last - 30},   // the newest has no value yet: dropped
		{Hour, last + 600, 59, 60, last + 510}, // only the last point is dropped, however empty
		{Day, last + 10, 1440, 60, last - 30},
		{Week, last + 10, 336, 1800, day0 + 40*86400},
		{Month, last + 10, 1440, 1800, day0 + 40*86400},
		{Year, last + 10, 1440, 21600, day0 + 40*86400},
		{Decade, last + 10, 570, 604800, 604800 * ((last + 10) / 604800)},
	} {
		res, err := sr.Query(tt.tf, Average, tt.now)
		if err != nil {
			t.Fatalf("%s: %v", tt.tf, err)
		}
		if res.Len() != tt.n || res.Step != tt.step || res.Time(res.Len()-1) != tt.lastTime {
			t.Errorf("Query(%s, now+%d) = %d points of %d s, last %d; want %d of %d, last %d",
				tt.tf, tt.now-last, res.Len(), res.Step, res.Time(res.Len()-1), tt.n, tt.step, tt.lastTime)
		}
		// the newest known point has the figures; unknown ones are left out
		i := res.Len() - 1
		for i > 0 && math.IsNaN(res.Value(i, VMSchema.Index("cpu"))) {
			i--
		}
		p := res.Point(i)
		if p["cpu"] != 0.25 || p["mem"] != 512 || p["netin"] != 1000 {
			t.Errorf("Query(%s) point %d %v; want cpu 0.25, mem 512, netin 1000", tt.tf, i, p)
		}
		if _, ok := p["diskread"]; ok {
			t.Errorf("Query(%s) point has unknown diskread: %v", tt.tf, p)
		}
		if tt.now-last < 60 && i != res.Len()-1 {
			t.Errorf("Query(%s, now+%d): last point %d has no value", tt.tf, tt.now-last, res.Len()-1)
		}
	}
}

func TestQueryMax(t *testing.T) {
	sr := NewSeries(testSchema, t0)
	for i, g := range []string{"1", "1", "1", "9", "9", "9", "2", "2", "2"} {
		if err := sr.UpdateRecord(itoa(t0+20*int64(i+1)) + ":" + g + ":U"); err != nil {
			t.Fatal(err)
		}
	}
	// steps: +60: 1, +120: 9, +180: 2; the 3-step archive: avg 4, max 9
	for _, tt := range []struct {
		cf   CF
		want float64
	}{{Average, 4}, {Max, 9}} {
		res, err := sr.Fetch(tt.cf, t0, t0+180, 180)
		if err != nil {
			t.Fatal(err)
		}
		if res.Len() != 2 || res.Step != 180 || res.Time(0) != t0+180 || res.Value(0, 0) != tt.want {
			t.Errorf("Fetch(%s) = %d points of %d, first %d = %v; want value %v at t0+180", tt.cf, res.Len(), res.Step, res.Time(0), res.Value(0, 0), tt.want)
		}
	}
	if _, err := sr.Fetch(Average, 100, 200, 60); err == nil {
		t.Error("Fetch before 1980 succeeded")
	}
	if _, err := sr.Fetch(Average, t0+100, t0, 60); err == nil {
		t.Error("Fetch with end before start succeeded")
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestResultJSON pins the answer's encoding: "time" first, unknown values
// left out, numbers as Perl's JSON prints them (%.15g).
func TestResultJSON(t *testing.T) {
	nan := math.NaN()
	r := &Result{Start: 1700000040, Step: 60, Names: []string{"cpu", "mem", "netin"},
		Values: []float64{0.1, 17179869184, nan, 1e-05, 1234567890123456789, 0.30000000000000004, nan, nan, nan, math.Inf(1), 3, 2.5}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"time":1700000040,"cpu":0.1,"mem":17179869184},` +
		`{"time":1700000100,"cpu":1e-05,"mem":1.23456789012346e+18,"netin":0.3},` +
		`{"time":1700000160},` +
		`{"time":1700000220,"mem":3,"netin":2.5}]`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	if b, _ := json.Marshal(&Result{Step: 60, Names: []string{"a"}}); string(b) != "[]" {
		t.Errorf("empty result json = %s; want []", b)
	}
}
