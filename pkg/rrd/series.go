package rrd

import (
	"fmt"
	"math"
)

// Series is one RRD held in memory: its consolidation state and every
// row. It is not safe for concurrent use.
type Series struct {
	st   *state
	rows [][]float64 // per archive: Rows*len(ds) values; shared archives alias their owner's
}

// NewSeries returns an empty series of schema s created at start (Unix
// seconds): it has no data before, and the first update must come after.
func NewSeries(s *Schema, start int64) *Series {
	sr := &Series{st: newState(s, start), rows: make([][]float64, len(s.rra))}
	for i, a := range s.rra {
		if o := s.owner[i]; o != i {
			sr.rows[i] = sr.rows[o]
			continue
		}
		r := make([]float64, a.Rows*int64(len(s.ds)))
		for j := range r {
			r[j] = math.NaN()
		}
		sr.rows[i] = r
	}
	return sr
}

// Schema returns the series' schema.
func (sr *Series) Schema() *Schema { return sr.st.s }

// LastUpdate returns the time of the last update (the creation time
// before the first).
func (sr *Series) LastUpdate() int64 { return sr.st.lastUp }

// Update applies a reading at time t (Unix seconds, after the last
// update): one value per data source in schema order, NaN for unknown.
func (sr *Series) Update(t int64, vals []float64) error {
	return sr.st.update(t, vals, sr.put)
}

// UpdateRecord applies an update in rrdtool's form (see ParseRecord).
func (sr *Series) UpdateRecord(rec string) error {
	t, vals, err := ParseRecord(sr.st.s, rec)
	if err != nil {
		return err
	}
	return sr.Update(t, vals)
}

func (sr *Series) put(r int, end int64, row []float64) {
	s := sr.st.s
	a := s.rra[r]
	idx := (end / (s.step * a.Steps)) % a.Rows
	copy(sr.rows[r][idx*int64(len(s.ds)):], row)
}

func (sr *Series) read(r int, first, n int64, dst []float64) error {
	s := sr.st.s
	a := s.rra[r]
	rs, nds := s.step*a.Steps, int64(len(s.ds))
	for i := range n {
		idx := ((first + i*rs) / rs) % a.Rows
		copy(dst[i*nds:(i+1)*nds], sr.rows[r][idx*nds:])
	}
	return nil
}

// Fetch answers as rrdtool fetch does for "-s start -e end -r resolution":
// the points of the archive of cf that best covers the window.
func (sr *Series) Fetch(cf CF, start, end, resolution int64) (*Result, error) {
	return sr.st.fetch(cf, start, end, resolution, sr.read)
}

// Query answers as PVE's rrddata methods do at time now.
func (sr *Series) Query(tf Timeframe, cf CF, now int64) (*Result, error) {
	return sr.st.query(tf, cf, now, sr.read)
}

// MarshalBinary encodes the series in the file format (format.go).
func (sr *Series) MarshalBinary() ([]byte, error) {
	s := sr.st.s
	b := make([]byte, s.layout.size)
	putMeta(b, sr.st)
	for i, a := range s.rra {
		if s.owner[i] != i {
			continue
		}
		off := s.layout.data[i]
		for j, v := range sr.rows[i][:a.Rows*int64(len(s.ds))] {
			putF(b[off+int64(j)*8:], v)
		}
	}
	return b, nil
}

// UnmarshalSeries decodes a series file of either format version; the
// schema is the one the file describes.
func UnmarshalSeries(b []byte) (*Series, error) {
	s, v, err := readFile(b)
	if err != nil {
		return nil, err
	}
	sr := &Series{st: readState(b, s), rows: make([][]float64, len(s.rra))}
	for i, a := range s.rra {
		if o := s.owner[i]; o != i {
			sr.rows[i] = sr.rows[o]
			continue
		}
		r := make([]float64, a.Rows*int64(len(s.ds)))
		off := s.layout.rowOffset(i, v)
		decodeRows(r, b[off:off+int64(len(r))*8])
		sr.rows[i] = r
	}
	return sr, nil
}

// String describes the series for debugging.
func (sr *Series) String() string {
	return fmt.Sprintf("rrd.Series(%s, last update %d)", sr.st.s.name, sr.st.lastUp)
}
