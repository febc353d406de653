package rrd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CF is a consolidation function.
type CF uint8

// The consolidation functions PVE's archives use.
const (
	Average CF = 1
	Max     CF = 2
)

// String returns rrdtool's name of c.
func (c CF) String() string {
	switch c {
	case Average:
		return "AVERAGE"
	case Max:
		return "MAX"
	}
	return "CF(" + strconv.Itoa(int(c)) + ")"
}

// ParseCF parses "AVERAGE" or "MAX"; "" is AVERAGE, PVE's default.
func ParseCF(s string) (CF, error) {
	switch s {
	case "", "AVERAGE":
		return Average, nil
	case "MAX":
		return Max, nil
	}
	return 0, fmt.Errorf("unknown consolidation function %q", s)
}

// DSType is the type of a data source.
type DSType uint8

// The data source types PVE's schemas use.
const (
	// Gauge stores the value as given.
	Gauge DSType = 1
	// Derive stores the rate of change per second of a counter; a rate
	// below the minimum (a counter reset, with PVE's minimum 0) is unknown.
	Derive DSType = 2
)

// String returns rrdtool's name of t.
func (t DSType) String() string {
	switch t {
	case Gauge:
		return "GAUGE"
	case Derive:
		return "DERIVE"
	}
	return "DSType(" + strconv.Itoa(int(t)) + ")"
}

// DS is a data source: one column of every archive.
type DS struct {
	Name string
	Type DSType
	// Heartbeat is the longest interval between two updates, in seconds,
	// over which a value still counts; a longer gap is unknown.
	Heartbeat int64
	// Min and Max bound the value (the rate for Derive); a value outside
	// is unknown. NaN is no bound (rrdtool's "U").
	Min, Max float64
}

// RRA is a round-robin archive: Rows rows, each consolidating Steps
// primary data points (of one step each) with CF.
type RRA struct {
	CF CF
	// XFF is the fraction of a row's primary data points that may be
	// unknown before the row is unknown.
	XFF   float64
	Steps int64
	Rows  int64
}

// Schema is the layout of one kind of series: the step, the data sources
// and the archives. It is immutable.
type Schema struct {
	name  string
	step  int64
	ds    []DS
	rra   []RRA
	index map[string]int
	// owner[i] is the archive whose rows archive i stores: i itself, or an
	// earlier one-step archive of as many rows (the AVERAGE and the MAX of
	// a single primary data point are the same value, so rrdtool stores
	// every such row twice and we once).
	owner  []int
	maxHB  int64
	layout layout
}

// NewSchema builds a schema from rrdtool's create definitions, as PVE's
// pmxcfs passes them to rrd_create: "DS:name:GAUGE|DERIVE:heartbeat:min:max"
// (min and max a number or U) and "RRA:AVERAGE|MAX:xff:steps:rows". name
// (at most 31 bytes) is the directory PVE keeps such series in.
func NewSchema(name string, step int64, defs ...string) (*Schema, error) {
	if name == "" || len(name) > 31 || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("schema name %q: want 1 to 31 bytes without '/'", name)
	}
	if step < 1 || step > math.MaxInt32 {
		return nil, fmt.Errorf("schema %s: step %d out of range", name, step)
	}
	s := &Schema{name: name, step: step, index: map[string]int{}}
	var errs []error
	for _, def := range defs {
		f := strings.Split(def, ":")
		switch {
		case f[0] == "DS" && len(f) == 6:
			ds, err := parseDS(f)
			if err == nil {
				if _, dup := s.index[ds.Name]; dup {
					err = errors.New("duplicate name")
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", def, err))
				continue
			}
			s.index[ds.Name] = len(s.ds)
			s.ds = append(s.ds, ds)
			s.maxHB = max(s.maxHB, ds.Heartbeat)
		case f[0] == "RRA" && len(f) == 5:
			rra, err := parseRRA(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", def, err))
				continue
			}
			s.rra = append(s.rra, rra)
		default:
			errs = append(errs, fmt.Errorf("%s: want DS:name:type:heartbeat:min:max or RRA:cf:xff:steps:rows", def))
		}
	}
	if len(s.ds) == 0 || len(s.ds) > math.MaxUint16 || len(s.rra) == 0 || len(s.rra) > math.MaxUint16 {
		errs = append(errs, errors.New("want 1 to 65535 data sources and archives"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	s.owner = make([]int, len(s.rra))
	for i, r := range s.rra {
		s.owner[i] = i
		for j := range i {
			if r.Steps == 1 && s.rra[j].Steps == 1 && s.rra[j].Rows == r.Rows && s.owner[j] == j {
				s.owner[i] = j
				break
			}
		}
	}
	s.layout = newLayout(s)
	return s, nil
}

func parseDS(f []string) (DS, error) {
	ds := DS{Name: f[1]}
	if len(ds.Name) < 1 || len(ds.Name) > 19 || strings.Trim(ds.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return ds, errors.New("name: want 1 to 19 of [A-Za-z0-9_]")
	}
	switch f[2] {
	case "GAUGE":
		ds.Type = Gauge
	case "DERIVE":
		ds.Type = Derive
	default:
		return ds, fmt.Errorf("type %q: want GAUGE or DERIVE", f[2])
	}
	hb, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || hb < 1 || hb > math.MaxInt32 {
		return ds, fmt.Errorf("heartbeat %q: want a positive number of seconds", f[3])
	}
	ds.Heartbeat = hb
	if ds.Min, err = parseBound(f[4]); err != nil {
		return ds, err
	}
	if ds.Max, err = parseBound(f[5]); err != nil {
		return ds, err
	}
	return ds, nil
}

func parseBound(s string) (float64, error) {
	if s == "U" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("bound %q: want a number or U", s)
	}
	return v, nil
}

func parseRRA(f []string) (RRA, error) {
	var r RRA
	switch f[1] {
	case "AVERAGE":
		r.CF = Average
	case "MAX":
		r.CF = Max
	default:
		return r, fmt.Errorf("consolidation %q: want AVERAGE or MAX", f[1])
	}
	xff, err := strconv.ParseFloat(f[2], 64)
	if err != nil || !(xff >= 0 && xff < 1) {
		return r, fmt.Errorf("xff %q: want 0 <= xff < 1", f[2])
	}
	r.XFF = xff
	if r.Steps, err = strconv.ParseInt(f[3], 10, 64); err != nil || r.Steps < 1 || r.Steps > math.MaxUint32 {
		return r, fmt.Errorf("steps %q: want a positive count", f[3])
	}
	if r.Rows, err = strconv.ParseInt(f[4], 10, 64); err != nil || r.Rows < 1 || r.Rows > math.MaxUint32 {
		return r, fmt.Errorf("rows %q: want a positive count", f[4])
	}
	return r, nil
}

func mustSchema(name string, step int64, defs ...string) *Schema {
	s, err := NewSchema(name, step, defs...)
	if err != nil {
		panic(err)
	}
	return s
}

// Name returns the schema's name, the directory of its series.
func (s *Schema) Name() string { return s.name }

// Step returns the length of a primary data point in seconds.
func (s *Schema) Step() int64 { return s.step }

// DS returns a copy of the data sources.
func (s *Schema) DS() []DS { return append([]DS(nil), s.ds...) }

// RRA returns a copy of the archives.
func (s *Schema) RRA() []RRA { return append([]RRA(nil), s.rra...) }

// Index returns the column of the data source name, or -1.
func (s *Schema) Index(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// FileSize returns the size in bytes of a series file of this schema.
func (s *Schema) FileSize() int64 { return s.layout.size }

// equal reports whether s and o describe the same layout.
func (s *Schema) equal(o *Schema) bool {
	if s.name != o.name || s.step != o.step || len(s.ds) != len(o.ds) || len(s.rra) != len(o.rra) {
		return false
	}
	same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
	for i, d := range s.ds {
		e := o.ds[i]
		if d.Name != e.Name || d.Type != e.Type || d.Heartbeat != e.Heartbeat || !same(d.Min, e.Min) || !same(d.Max, e.Max) {
			return false
		}
	}
	for i, r := range s.rra {
		if r != o.rra[i] {
			return false
		}
	}
	return true
}

// pveArchives are the archives of every PVE 9 schema (pmxcfs status.c).
var pveArchives = []string{
	"RRA:AVERAGE:0.5:1:1440",    // 1 min * 1440 => 1 day
	"RRA:AVERAGE:0.5:30:1440",   // 30 min * 1440 => 30 day
	"RRA:AVERAGE:0.5:360:1440",  // 6 hours * 1440 => 360 day ~1 year
	"RRA:AVERAGE:0.5:10080:570", // 1 week * 570 => ~10 years
	"RRA:MAX:0.5:1:1440",
	"RRA:MAX:0.5:30:1440",
	"RRA:MAX:0.5:360:1440",
	"RRA:MAX:0.5:10080:570",
}

// The schemas of PVE 9 (pmxcfs status.c, rrd_def_*_pve9_0), in their
// column order. Immutable.
var (
	// NodeSchema is "pve-node-9.0": one series per node.
	NodeSchema = mustSchema("pve-node-9.0", 60, append([]string{
		"DS:loadavg:GAUGE:120:0:U",
		"DS:maxcpu:GAUGE:120:0:U",
		"DS:cpu:GAUGE:120:0:U",
		"DS:iowait:GAUGE:120:0:U",
		"DS:memtotal:GAUGE:120:0:U",
		"DS:memused:GAUGE:120:0:U",
		"DS:swaptotal:GAUGE:120:0:U",
		"DS:swapused:GAUGE:120:0:U",
		"DS:roottotal:GAUGE:120:0:U",
		"DS:rootused:GAUGE:120:0:U",
		"DS:netin:DERIVE:120:0:U",
		"DS:netout:DERIVE:120:0:U",
		"DS:memavailable:GAUGE:120:0:U",
		"DS:arcsize:GAUGE:120:0:U",
		"DS:pressurecpusome:GAUGE:120:0:U",
		"DS:pressureiosome:GAUGE:120:0:U",
		"DS:pressureiofull:GAUGE:120:0:U",
		"DS:pressurememorysome:GAUGE:120:0:U",
		"DS:pressurememoryfull:GAUGE:120:0:U",
	}, pveArchives...)...)
	// VMSchema is "pve-vm-9.0": one series per guest (QEMU or LXC).
	VMSchema = mustSchema("pve-vm-9.0", 60, append([]string{
		"DS:maxcpu:GAUGE:120:0:U",
		"DS:cpu:GAUGE:120:0:U",
		"DS:maxmem:GAUGE:120:0:U",
		"DS:mem:GAUGE:120:0:U",
		"DS:maxdisk:GAUGE:120:0:U",
		"DS:disk:GAUGE:120:0:U",
		"DS:netin:DERIVE:120:0:U",
		"DS:netout:DERIVE:120:0:U",
		"DS:diskread:DERIVE:120:0:U",
		"DS:diskwrite:DERIVE:120:0:U",
		"DS:memhost:GAUGE:120:0:U",
		"DS:pressurecpusome:GAUGE:120:0:U",
		"DS:pressurecpufull:GAUGE:120:0:U",
		"DS:pressureiosome:GAUGE:120:0:U",
		"DS:pressureiofull:GAUGE:120:0:U",
		"DS:pressurememorysome:GAUGE:120:0:U",
		"DS:pressurememoryfull:GAUGE:120:0:U",
	}, pveArchives...)...)
	// StorageSchema is "pve-storage-9.0": one series per storage and node.
	StorageSchema = mustSchema("pve-storage-9.0", 60, append([]string{
		"DS:total:GAUGE:120:0:U",
		"DS:used:GAUGE:120:0:U",
	}, pveArchives...)...)
)

// schemas maps a schema's directory name to it.
var schemas = map[string]*Schema{
	NodeSchema.name:    NodeSchema,
	VMSchema.name:      VMSchema,
	StorageSchema.name: StorageSchema,
}

// Timeframe is the span of a query, as the rrddata API methods name it.
type Timeframe string

// The timeframes of PVE's rrddata methods (decade only for nodes).
const (
	Hour   Timeframe = "hour"
	Day    Timeframe = "day"
	Week   Timeframe = "week"
	Month  Timeframe = "month"
	Year   Timeframe = "year"
	Decade Timeframe = "decade"
)

// window returns the resolution (seconds per point) and the number of
// points PVE asks rrdtool for (PVE::RRD::create_rrd_data, $setup).
func (tf Timeframe) window() (reso, count int64, ok bool) {
	switch tf {
	case Hour:
		return 60, 60, true // 1 min resolution
	case Day:
		return 60, 1440, true // 1 min resolution, full day
	case Week:
		return 60 * 30, 336, true // 30 min resolution, 7 days
	case Month:
		return 60 * 30, 1440, true // 30 min resolution, 30 days
	case Year:
		return 3600 * 6, 1440, true // 6 hour resolution, 360 days
	case Decade:
		return 86400 * 7, 570, true // 1 week resolution, 10 years
	}
	return 0, 0, false
}

// Span returns how far back a query of tf reaches.
func (tf Timeframe) Span() int64 {
	reso, count, _ := tf.window()
	return reso * count
}
