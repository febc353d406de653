package rrd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Result is the answer of a query: Len() points, the i-th for the
// interval ending at Start+i*Step, one value per name (NaN unknown).
type Result struct {
	Start  int64 // end of the first point's interval (Unix seconds)
	Step   int64 // seconds per point
	Names  []string
	Values []float64 // point i, column j at i*len(Names)+j
}

// Len returns the number of points.
func (r *Result) Len() int {
	if len(r.Names) == 0 {
		return 0
	}
	return len(r.Values) / len(r.Names)
}

// Time returns the time of point i: the end of its interval.
func (r *Result) Time(i int) int64 { return r.Start + int64(i)*r.Step }

// Value returns column j of point i.
func (r *Result) Value(i, j int) float64 { return r.Values[i*len(r.Names)+j] }

// Point returns point i as PVE's API answers it: "time" and every known
// value by name (unknown ones left out).
func (r *Result) Point(i int) map[string]float64 {
	p := map[string]float64{"time": float64(r.Time(i))}
	for j, name := range r.Names {
		if v := r.Value(i, j); isFinite(v) {
			p[name] = v
		}
	}
	return p
}

// MarshalJSON encodes r as PVE's rrddata answer: an array of objects with
// "time" and the known values by name; numbers as Perl's JSON prints them
// (%.15g).
func (r *Result) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 64+r.Len()*(16+len(r.Names)*24))), nil
}

// AppendJSON appends the encoding of MarshalJSON to b.
func (r *Result) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	for i := range r.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"time":`...)
		b = strconv.AppendInt(b, r.Time(i), 10)
		for j, name := range r.Names {
			v := r.Value(i, j)
			if !isFinite(v) {
				continue
			}
			b = append(b, ',', '"')
			b = append(b, name...) // names are [A-Za-z0-9_]
			b = append(b, '"', ':')
			b = strconv.AppendFloat(b, v, 'g', 15, 64)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// archiveReader reads n consecutive rows of owner archive r, the first
// for the interval ending at first, into dst (n*len(ds) values). The
// rows are within what the archive holds.
type archiveReader func(r int, first, n int64, dst []float64) error

// errBadTime is rrd_fetch's check of the requested window.
var errBadTime = errors.New("bad fetch window")

// fetch is rrd_fetch: it picks the archive that best covers start..end at
// a resolution near reso and returns its points from the first interval
// ending after start to the one ending at or after end.
func (st *state) fetch(cf CF, start, end, reso int64, read archiveReader) (*Result, error) {
	s := st.s
	if start < 3600*24*365*10 {
		return nil, fmt.Errorf("the first entry to fetch should be after 1980: %w", errBadTime)
	}
	if end < start {
		return nil, fmt.Errorf("start (%d) should be less than end (%d): %w", start, end, errBadTime)
	}
	if reso < 1 {
		reso = 1
	}
	chosen, bestFull, bestPart := -1, -1, -1
	var bestFullDiff, bestPartDiff, bestMatch int64
	for i, a := range s.rra {
		// a one-step archive answers any consolidation
		if a.CF != cf && a.Steps != 1 {
			continue
		}
		rs := s.step * a.Steps
		calEnd := st.lastUp - st.lastUp%rs
		calStart := calEnd - rs*a.Rows
		diff := abs64(reso - rs)
		if calStart <= start {
			if bestFull < 0 || diff < bestFullDiff {
				bestFull, bestFullDiff = i, diff
			}
			continue
		}
		match := end - start - (calStart - start)
		if bestPart < 0 || bestMatch < match || bestMatch == match && diff < bestPartDiff {
			bestPart, bestMatch, bestPartDiff = i, match, diff
		}
	}
	switch {
	case bestFull >= 0:
		chosen = bestFull
	case bestPart >= 0:
		chosen = bestPart
	default:
		return nil, errors.New("the RRD does not contain an RRA matching the chosen CF")
	}
	a := s.rra[chosen]
	rs := s.step * a.Steps
	start -= start % rs
	end += rs - end%rs
	rraEnd := st.lastUp - st.lastUp%rs
	rraStart := rraEnd - rs*(a.Rows-1)

	nds := len(s.ds)
	n := (end - start) / rs
	res := &Result{Start: start + rs, Step: rs, Names: make([]string, nds), Values: make([]float64, n*int64(nds))}
	for j, ds := range s.ds {
		res.Names[j] = ds.Name
	}
	for i := range res.Values {
		res.Values[i] = math.NaN()
	}
	// the points the archive holds: rraStart..rraEnd
	lo, hi := max(start+rs, rraStart), min(end, rraEnd)
	if lo <= hi {
		i := (lo - (start + rs)) / rs
		k := (hi-lo)/rs + 1
		if err := read(s.owner[chosen], lo, k, res.Values[i*int64(nds):(i+k)*int64(nds)]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// query is PVE::RRD::create_rrd_data for a PVE 9 series: the points of tf
// up to the last full interval before now, without a last point that has
// no value yet.
func (st *state) query(tf Timeframe, cf CF, now int64, read archiveReader) (*Result, error) {
	reso, count, ok := tf.window()
	if !ok {
		return nil, fmt.Errorf("unknown timeframe %q", tf)
	}
	ctime := reso * floorDiv(now, reso)
	res, err := st.fetch(cf, ctime-reso*count, ctime-1, reso, read)
	if err != nil {
		return nil, err
	}
	// "The newest bucket can still be empty right after a boundary."
	if n := res.Len(); n > 0 {
		empty := true
		for j := range res.Names {
			if isFinite(res.Value(n-1, j)) {
				empty = false
				break
			}
		}
		if empty {
			res.Values = res.Values[:(n-1)*len(res.Names)]
		}
	}
	return res, nil
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
