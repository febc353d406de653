package rrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The file format, version 2. One file per series; all integers and
// floats little-endian, floats IEEE 754 binary64, NaN for unknown. The
// size depends only on the schema (Schema.FileSize), never on the data.
// A file is its meta region (header, definitions, state and their
// checksum, a few KiB) followed by the rows; a flush rewrites the meta
// region and the rows it adds in place, through the store's journal
// (journal.go), so the rows carry no checksum of their own.
//
//	header, 64 bytes
//	   0  [6]byte  magic "PVNRRD"
//	   6  uint16   format version (2)
//	   8  [32]byte schema name, NUL-padded ("pve-vm-9.0")
//	  40  uint32   step, seconds
//	  44  uint16   number of data sources (D)
//	  46  uint16   number of archives (A)
//	  48  int64    time of the last update, Unix seconds
//	  56  [8]byte  reserved, zero
//	data source definitions, D x 48 bytes
//	   0  [20]byte name, NUL-padded
//	  20  uint8    type: 1 GAUGE, 2 DERIVE
//	  21  [3]byte  reserved
//	  24  uint32   heartbeat, seconds
//	  28  [4]byte  reserved
//	  32  float64  minimum (NaN: none)
//	  40  float64  maximum (NaN: none)
//	archive definitions, A x 24 bytes
//	   0  uint8    consolidation: 1 AVERAGE, 2 MAX
//	   1  uint8    reserved
//	   2  uint16   0, or 1 + the index of the earlier archive whose rows
//	               this one shares (a one-step archive of as many rows:
//	               its rows are the same values and are stored once)
//	   4  uint32   steps (primary data points per row)
//	   8  uint32   rows
//	  12  [4]byte  reserved
//	  16  float64  xff
//	data source state, D x 24 bytes (rrdtool's pdp_prep)
//	   0  float64  value of the last update (NaN: unknown)
//	   8  float64  rate*seconds collected in the open step (NaN: none)
//	  16  int64    unknown seconds in the open step
//	consolidation state, A x D x 16 bytes, archive-major (cdp_prep)
//	   0  float64  consolidation of the open row so far
//	   8  int64    unknown steps in the open row
//	meta checksum, 8 bytes
//	   0  uint32   CRC-32C (Castagnoli) of every byte before it
//	   4  [4]byte  reserved, zero (the rows stay 8-byte aligned)
//	rows, for each archive that shares none, in archive order:
//	       rows x D float64, row-major; the row of the interval ending at
//	       time T is at index (T / (step*steps)) mod rows
//
// A reader rejects a file whose magic, version, size, meta checksum or
// definitions differ from what it expects.
//
// Version 1, which the first Store wrote, is still read: the same bytes
// without the meta checksum (the rows start right after the
// consolidation state) and with a CRC-32C of every byte before it as a
// 4-byte trailer. A Store rewrites a version 1 file whole, as version 2,
// on its first flush after an update.
const (
	magic         = "PVNRRD"
	formatVersion = 2
	headerSize    = 64
	dsDefSize     = 48
	rraDefSize    = 24
	dsStateSize   = 24
	cdpStateSize  = 16
	metaSumSize   = 8

	// version 1
	version1    = 1
	trailerSize = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// layout holds the offsets of a schema's file (version 2).
type layout struct {
	dsDefs, rraDefs, dsState, cdpState int64
	meta                               int64   // size of the meta region, checksum included
	data                               []int64 // per archive: offset of its rows (the owner's for shared ones)
	size                               int64
}

func newLayout(s *Schema) layout {
	nds, nrra := int64(len(s.ds)), int64(len(s.rra))
	l := layout{dsDefs: headerSize}
	l.rraDefs = l.dsDefs + nds*dsDefSize
	l.dsState = l.rraDefs + nrra*rraDefSize
	l.cdpState = l.dsState + nds*dsStateSize
	l.meta = l.cdpState + nrra*nds*cdpStateSize + metaSumSize
	off := l.meta
	l.data = make([]int64, nrra)
	for i, a := range s.rra {
		if s.owner[i] != i {
			l.data[i] = l.data[s.owner[i]]
			continue
		}
		l.data[i] = off
		off += a.Rows * nds * 8
	}
	l.size = off
	return l
}

// metaSize is the size of the meta region of a file of nds data sources
// and nrra archives.
func metaSize(nds, nrra int64) int64 {
	return headerSize + nds*dsDefSize + nrra*rraDefSize + nds*dsStateSize + nrra*nds*cdpStateSize + metaSumSize
}

// rowOffset is where the rows of owner archive r start in a file of
// format version v.
func (l *layout) rowOffset(r, v int) int64 {
	if v == version1 {
		return l.data[r] - metaSumSize
	}
	return l.data[r]
}

// fileSize is the size of a file of format version v.
func (l *layout) fileSize(v int) int64 {
	if v == version1 {
		return l.size - metaSumSize + trailerSize
	}
	return l.size
}

var le = binary.LittleEndian

func putF(b []byte, v float64) { le.PutUint64(b, math.Float64bits(v)) }
func getF(b []byte) float64    { return math.Float64frombits(le.Uint64(b)) }

// putMeta writes the meta region of st (header, definitions, state and
// their checksum) into b[:layout.meta].
func putMeta(b []byte, st *state) {
	s, l := st.s, &st.s.layout
	b = b[:l.meta]
	clear(b[:l.dsState])
	copy(b, magic)
	le.PutUint16(b[6:], formatVersion)
	copy(b[8:40], s.name)
	le.PutUint32(b[40:], uint32(s.step))
	le.PutUint16(b[44:], uint16(len(s.ds)))
	le.PutUint16(b[46:], uint16(len(s.rra)))
	le.PutUint64(b[48:], uint64(st.lastUp))
	for i, ds := range s.ds {
		d := b[l.dsDefs+int64(i)*dsDefSize:]
		copy(d[:20], ds.Name)
		d[20] = byte(ds.Type)
		le.PutUint32(d[24:], uint32(ds.Heartbeat))
		putF(d[32:], ds.Min)
		putF(d[40:], ds.Max)
		p := b[l.dsState+int64(i)*dsStateSize:]
		putF(p, st.lastDS[i])
		putF(p[8:], st.pdpVal[i])
		le.PutUint64(p[16:], uint64(st.pdpUnkn[i]))
	}
	for i, a := range s.rra {
		d := b[l.rraDefs+int64(i)*rraDefSize:]
		d[0] = byte(a.CF)
		if o := s.owner[i]; o != i {
			le.PutUint16(d[2:], uint16(o+1))
		}
		le.PutUint32(d[4:], uint32(a.Steps))
		le.PutUint32(d[8:], uint32(a.Rows))
		putF(d[16:], a.XFF)
	}
	for k := range st.cdpVal {
		c := b[l.cdpState+int64(k)*cdpStateSize:]
		putF(c, st.cdpVal[k])
		le.PutUint64(c[8:], uint64(st.cdpUnkn[k]))
	}
	n := l.meta - metaSumSize
	le.PutUint32(b[n:], crc32.Checksum(b[:n], crcTable))
	clear(b[n+4:])
}

// ErrCorrupt is returned for a file that is not a valid series file.
var ErrCorrupt = errors.New("not a valid series file")

// fileVersion checks the magic of b, at least a header, and returns its
// format version.
func fileVersion(b []byte) (int, error) {
	if len(b) < headerSize || string(b[:6]) != magic {
		return 0, fmt.Errorf("bad magic: %w", ErrCorrupt)
	}
	switch v := int(le.Uint16(b[6:])); v {
	case version1, formatVersion:
		return v, nil
	default:
		return 0, fmt.Errorf("format version %d: %w", v, ErrCorrupt)
	}
}

// readMeta parses the meta region at the start of b, a file of format
// version 2 or its first bytes, and checks its checksum; it returns the
// schema the file describes.
func readMeta(b []byte) (*Schema, error) {
	v, err := fileVersion(b)
	if err != nil {
		return nil, err
	}
	if v != formatVersion {
		return nil, fmt.Errorf("format version %d, want %d: %w", v, formatVersion, ErrCorrupt)
	}
	n := metaSize(int64(le.Uint16(b[44:])), int64(le.Uint16(b[46:]))) - metaSumSize
	if int64(len(b)) < n+metaSumSize {
		return nil, fmt.Errorf("truncated meta region: %w", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:n], crcTable), le.Uint32(b[n:]); got != want {
		return nil, fmt.Errorf("meta checksum %08x, want %08x: %w", got, want, ErrCorrupt)
	}
	return parseDefs(b)
}

// readFile parses a whole file of either format version and checks its
// size and checksum; it returns the schema the file describes and the
// version.
func readFile(b []byte) (*Schema, int, error) {
	v, err := fileVersion(b)
	if err != nil {
		return nil, 0, err
	}
	var s *Schema
	if v == version1 {
		if len(b) < headerSize+trailerSize {
			return nil, 0, fmt.Errorf("truncated: %w", ErrCorrupt)
		}
		n := len(b) - trailerSize
		if got, want := crc32.Checksum(b[:n], crcTable), le.Uint32(b[n:]); got != want {
			return nil, 0, fmt.Errorf("checksum %08x, want %08x: %w", got, want, ErrCorrupt)
		}
		s, err = parseDefs(b)
	} else {
		s, err = readMeta(b)
	}
	if err != nil {
		return nil, 0, err
	}
	if want := s.layout.fileSize(v); int64(len(b)) != want {
		return nil, 0, fmt.Errorf("size %d, want %d: %w", len(b), want, ErrCorrupt)
	}
	return s, v, nil
}

// parseDefs parses the header and the definitions at the start of b,
// whose checksum was checked.
func parseDefs(b []byte) (*Schema, error) {
	name := cstring(b[8:40])
	step := int64(le.Uint32(b[40:]))
	nds, nrra := int(le.Uint16(b[44:])), int(le.Uint16(b[46:]))
	if int64(len(b)) < metaSize(int64(nds), int64(nrra))-metaSumSize {
		return nil, fmt.Errorf("truncated definitions: %w", ErrCorrupt)
	}
	defs := make([]string, 0, nds+nrra)
	for i := range nds {
		d := b[headerSize+i*dsDefSize:]
		defs = append(defs, fmt.Sprintf("DS:%s:%s:%d:%s:%s", cstring(d[:20]), DSType(d[20]), le.Uint32(d[24:]),
			bound(getF(d[32:])), bound(getF(d[40:]))))
	}
	rraDefs := b[headerSize+nds*dsDefSize:]
	for i := range nrra {
		d := rraDefs[i*rraDefSize:]
		defs = append(defs, fmt.Sprintf("RRA:%s:%s:%d:%d", CF(d[0]), fmtFloat(getF(d[16:])), le.Uint32(d[4:]), le.Uint32(d[8:])))
	}
	s, err := NewSchema(name, step, defs...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	for i := range nrra {
		sh := int(le.Uint16(rraDefs[i*rraDefSize+2:]))
		if (sh == 0) != (s.owner[i] == i) || sh != 0 && sh-1 != s.owner[i] {
			return nil, fmt.Errorf("archive %d: shared rows differ: %w", i, ErrCorrupt)
		}
	}
	return s, nil
}

// readState reads the state of a file of schema s (checked by readMeta
// or readFile); the state is at the same offsets in both versions.
func readState(b []byte, s *Schema) *state {
	l := &s.layout
	st := allocState(s)
	st.lastUp = int64(le.Uint64(b[48:]))
	for i := range s.ds {
		p := b[l.dsState+int64(i)*dsStateSize:]
		st.lastDS[i] = getF(p)
		st.pdpVal[i] = getF(p[8:])
		st.pdpUnkn[i] = int64(le.Uint64(p[16:]))
	}
	for k := range st.cdpVal {
		c := b[l.cdpState+int64(k)*cdpStateSize:]
		st.cdpVal[k] = getF(c)
		st.cdpUnkn[k] = int64(le.Uint64(c[8:]))
	}
	return st
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func bound(v float64) string {
	if math.IsNaN(v) {
		return "U"
	}
	return fmtFloat(v)
}

func fmtFloat(v float64) string { return fmt.Sprint(v) }

// putRow writes row (len(ds) values) of owner archive r for the interval
// ending at end into b, a whole file.
func putRow(b []byte, s *Schema, r int, end int64, row []float64) {
	a := s.rra[r]
	idx := (end / (s.step * a.Steps)) % a.Rows
	off := s.layout.data[r] + idx*int64(len(s.ds))*8
	for j, v := range row {
		putF(b[off+int64(j)*8:], v)
	}
}

// fillUnknown sets every row of b, a whole file, to unknown.
func fillUnknown(b []byte, s *Schema) {
	nan := math.Float64bits(math.NaN())
	for i, a := range s.rra {
		if s.owner[i] != i {
			continue
		}
		off := s.layout.data[i]
		blk := b[off : off+a.Rows*int64(len(s.ds))*8]
		le.PutUint64(blk, nan)
		for n := 8; n < len(blk); n *= 2 {
			copy(blk[n:], blk[:n])
		}
	}
}

// decodeRows decodes the rows of owner archive r from b (its block).
func decodeRows(dst []float64, b []byte) {
	for i := range dst {
		dst[i] = getF(b[i*8:])
	}
}
