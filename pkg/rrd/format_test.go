package rrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
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
// change, which must come with a new format version. Version 2 was
// written so on purpose (the meta checksum replaced the whole-file one);
// testdata/test-series-v1.rrd is the same series as version 1 wrote it.
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
		{"version", le.Uint16(b[6:]), uint16(2)},
		{"schema", string(b[8:12]), "test"},
		{"step", le.Uint32(b[40:]), uint32(60)},
		{"data sources", le.Uint16(b[44:]), uint16(2)},
		{"archives", le.Uint16(b[46:]), uint16(4)},
		{"last update", int64(le.Uint64(b[48:])), int64(t0 + 190)},
		{"first DS name", string(b[64:65]), "g"},
		{"second DS type", b[64+48+20], byte(Derive)},
		{"MAX one-step archive shares rows of archive 0", le.Uint16(b[64+2*48+2*24+2:]), uint16(1)},
		{"meta checksum", le.Uint32(b[432:]), crc32.Checksum(b[:432], crcTable)},
		{"first row", int64(testSchema.layout.data[0]), int64(440)},
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

// TestFormatVersion1 reads the golden file of format version 1 as the
// first Store wrote it: the same series, encoded again as version 2.
func TestFormatVersion1(t *testing.T) {
	v1, err := os.ReadFile("testdata/test-series-v1.rrd")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(v1)) != testSchema.layout.fileSize(version1) {
		t.Fatalf("version 1 file: %d bytes; want %d", len(v1), testSchema.layout.fileSize(version1))
	}
	sr, err := UnmarshalSeries(v1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := sr.MarshalBinary()
	want, _ := goldenSeries(t).MarshalBinary()
	if !bytes.Equal(got, want) {
		t.Error("version 1 file decodes to another series than the golden one")
	}
	b := bytes.Clone(v1)
	b[len(b)/2] ^= 1 // a row: version 1 checksums the whole file
	if _, err := UnmarshalSeries(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 1, row bit flip: UnmarshalSeries error = %v; want ErrCorrupt", err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := goldenSeries(t).MarshalBinary()
	meta := testSchema.layout.meta
	flip := func(i int64) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"header only":    good[:headerSize],
		"truncated":      good[:len(good)-8],
		"torn meta":      append(bytes.Clone(good[:meta/2]), make([]byte, int64(len(good))-meta/2)...),
		"bit flip state": flip(meta - 20),
		"bit flip sum":   flip(meta - 8),
		"magic":          flip(0),
		"longer":         append(bytes.Clone(good), 0),
	} {
		if _, err := UnmarshalSeries(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: UnmarshalSeries error = %v; want ErrCorrupt", name, err)
		}
	}
	// a valid checksum over a wrong version
	b := bytes.Clone(good)
	b[6] = 3
	binary.LittleEndian.PutUint32(b[meta-8:], crc32.Checksum(b[:meta-8], crcTable))
	if _, err := UnmarshalSeries(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 3: UnmarshalSeries error = %v; want ErrCorrupt", err)
	}
	// the rows carry no checksum (a flush writes them in place, through
	// the journal): a damaged row is read as it is
	if _, err := UnmarshalSeries(flip(meta + 3)); err != nil {
		t.Errorf("bit flip in a row: UnmarshalSeries error = %v; want none", err)
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
