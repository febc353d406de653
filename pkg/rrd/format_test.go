package rrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenSeries is testSchema after a few updates: known, unknown and
// derived values in every archive.
func goldenSeries(t *testing.T) *Series {
	t.Helper()
	sr := NewSeries(testSchema, t0)
	for _, rec := range []string{"20:1:U", "40:4:1000", "60:7:1600", "80:10:2200", "100:U:2800", "120:U:2800", "140:1:U", "160:1:10", "190:4:1210"} {
		if err := sr.UpdateRecord(addT0(rec)); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

func addT0(rec string) string {
	var dt int64
	var i int
	for i = 0; rec[i] != ':'; i++ {
		dt = dt*10 + int64(rec[i]-'0')
	}
	return itoa(t0+dt) + rec[i:]
}

// TestFormatGolden pins the on-disk format (format.go) byte for byte;
// `go test -update` rewrites testdata/test-series.rrd after a deliberate
// change, which must come with a new format version.
func TestFormatGolden(t *testing.T) {
	b, err := goldenSeries(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/test-series.rrd"
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding differs from %s (%d bytes; golden %d)", golden, len(b), len(want))
	}
	// the documented offsets
	le := binary.LittleEndian
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"magic", string(b[:6]), "PVNRRD"},
		{"version", le.Uint16(b[6:]), uint16(1)},
		{"schema", string(b[8:12]), "test"},
		{"step", le.Uint32(b[40:]), uint32(60)},
		{"data sources", le.Uint16(b[44:]), uint16(2)},
		{"archives", le.Uint16(b[46:]), uint16(4)},
		{"last update", int64(le.Uint64(b[48:])), int64(t0 + 190)},
		{"first DS name", string(b[64:65]), "g"},
		{"second DS type", b[64+48+20], byte(Derive)},
		{"MAX one-step archive shares rows of archive 0", le.Uint16(b[64+2*48+2*24+2:]), uint16(1)},
		{"size", int64(len(b)), testSchema.FileSize()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.what, c.got, c.want)
		}
	}
	sr, err := UnmarshalSeries(want)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := sr.MarshalBinary()
	if !bytes.Equal(again, want) {
		t.Error("decode and encode of the golden file differ from it")
	}
	if got := rowAt(sr, avg3, t0+180); got != "5.333333333:U" {
		t.Errorf("decoded avg3 row = %s", got)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := goldenSeries(t).MarshalBinary()
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-8],
		"torn":      append(bytes.Clone(good[:len(good)/2]), make([]byte, len(good)-len(good)/2)...),
		"bit flip":  flip(500),
		"magic":     flip(0),
		"longer":    append(bytes.Clone(good), 0),
	} {
		if _, err := UnmarshalSeries(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: UnmarshalSeries error = %v; want ErrCorrupt", name, err)
		}
	}
	// a valid checksum over a wrong version
	b := bytes.Clone(good)
	b[6] = 2
	seal(b)
	if _, err := UnmarshalSeries(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 2: UnmarshalSeries error = %v; want ErrCorrupt", err)
	}
}

// TestRoundTripPVE encodes and decodes a series of every PVE schema.
func TestRoundTripPVE(t *testing.T) {
	for _, s := range []*Schema{NodeSchema, VMSchema, StorageSchema} {
		sr := NewSeries(s, t0)
		vals := make([]float64, len(s.ds))
		for tm := int64(t0 + 10); tm < t0+7200; tm += 10 {
			for i := range vals {
				vals[i] = float64(tm-t0) * float64(i+1)
			}
			if err := sr.Update(tm, vals); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := sr.MarshalBinary()
		if int64(len(b)) != s.FileSize() {
			t.Errorf("%s: %d bytes; want %d", s.Name(), len(b), s.FileSize())
		}
		back, err := UnmarshalSeries(b)
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		if !back.Schema().equal(s) {
			t.Errorf("%s: decoded schema differs", s.Name())
		}
		for _, tf := range []Timeframe{Hour, Day} {
			r1, _ := sr.Query(tf, Max, t0+7200)
			r2, _ := back.Query(tf, Max, t0+7200)
			j1, _ := r1.MarshalJSON()
			j2, _ := r2.MarshalJSON()
			if !bytes.Equal(j1, j2) || r1.Len() == 0 || math.IsNaN(r1.Value(r1.Len()-1, 0)) {
				t.Errorf("%s %s: decoded series answers differently", s.Name(), tf)
			}
		}
	}
}
