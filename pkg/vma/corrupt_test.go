package vma

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// craftExtent builds one extent with a valid checksum.
func craftExtent(uuid [16]byte, infos []blockInfo, blocks int, fill byte) []byte {
	e := make([]byte, extentHeaderSize+blocks*blockSize)
	copy(e, extentMagic)
	binary.BigEndian.PutUint16(e[offExtBlocks:], uint16(blocks))
	copy(e[offExtUUID:], uuid[:])
	for i, bi := range infos {
		binary.BigEndian.PutUint64(e[offExtBlockInfo+8*i:], bi.encode())
	}
	for i := extentHeaderSize; i < len(e); i++ {
		e[i] = fill
	}
	rehashExtent(e)
	return e
}

func rehashExtent(e []byte) {
	clear(e[offExtMD5 : offExtMD5+16])
	sum := md5.Sum(e[:extentHeaderSize])
	copy(e[offExtMD5:], sum[:])
}

func rehashHeader(h []byte) {
	clear(h[offMD5 : offMD5+16])
	sum := md5.Sum(h)
	copy(h[offMD5:], sum[:])
}

// craftHeader builds a header for devices of the given sizes named d1, d2, …
func craftHeader(t *testing.T, sizes ...int64) []byte {
	t.Helper()
	devs := make([]Device, len(sizes))
	for i, s := range sizes {
		devs[i] = Device{Name: "d" + string(rune('1'+i)), Size: s}
	}
	h, err := encodeHeader(testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("x")}}, devs)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// readAll runs NewReader and Extract (discarding data) and returns the
// first error.
func readAll(archive []byte) error {
	r, err := NewReader(bytes.NewReader(archive))
	if err != nil {
		return err
	}
	return r.Extract(func(d Device) (io.WriterAt, error) {
		if d.Name == vmstateName {
			return discardAt{}, nil
		}
		return &memTarget{buf: make([]byte, d.Size)}, nil
	})
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func TestCorruptArchives(t *testing.T) {
	good, _ := goldenArchive(t)
	hdrSize := int(getU32(good, offHeaderSize))
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	h2 := craftHeader(t, 2*ClusterSize) // one device, 2 clusters
	full := blockInfo{mask: 0xffff, devID: 1}
	vmstateHeader := func() []byte {
		// encodeHeader refuses the reserved name; patch a same-length one.
		h, err := encodeHeader(testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("x")}},
			[]Device{{Name: "vmstatX", Size: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		off := headerFixedSize + int(getU32(h, offDevInfo+devInfoEntrySize)) + 2
		copy(h[off:], "vmstate")
		rehashHeader(h)
		return h
	}()

	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"empty input", nil, "reading header (0 of 12288 bytes): archive truncated"},
		{"bad magic", mutate(func(b []byte) []byte { b[2] = 'X'; return b }), "not a vma archive"},
		{"header size too big", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offHeaderSize:], 1<<31); return b }), "header size 2147483648 out of range"},
		{"header size too small", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offHeaderSize:], headerFixedSize); return b }), "out of range"},
		{"flipped config byte", mutate(func(b []byte) []byte { b[headerFixedSize+30] ^= 1; return b }), "header checksum mismatch"},
		{"flipped device size", mutate(func(b []byte) []byte { b[offDevInfo+32+15] ^= 1; return b }), "header checksum mismatch"},
		{"version 2", mutate(func(b []byte) []byte { b[offVersion+3] = 2; rehashHeader(b[:hdrSize]); return b }), "unsupported vma version 2"},
		{"blob offset inside header", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBlobOffset:], 100)
			rehashHeader(b[:hdrSize])
			return b
		}), "blob buffer offset 100"},
		{"blob buffer past header", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBlobSize:], 600)
			rehashHeader(b[:hdrSize])
			return b
		}), "exceeds header size"},
		{"dangling config pointer", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offConfigData:], 7)
			rehashHeader(b[:hdrSize])
			return b
		}), "config slot 0: invalid blob pointers"},
		{"path in config name", mutate(func(b []byte) []byte {
			copy(b[headerFixedSize+3:], "../")
			rehashHeader(b[:hdrSize])
			return b
		}), "contains '/'"},
		{"huge device size", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offDevInfo+32+8:], 1<<62)
			rehashHeader(b[:hdrSize])
			return b
		}), "exceeds the format's limit"},
		{"flipped extent header byte", mutate(func(b []byte) []byte { b[hdrSize+offExtBlockInfo+4] ^= 0x80; return b }), "extent at offset 12800: header checksum mismatch"},
		{"extent magic", mutate(func(b []byte) []byte { b[hdrSize+3] = 'F'; rehashExtent(b[hdrSize:]); return b }), "bad extent magic"},
		{"extent reserved", mutate(func(b []byte) []byte { b[hdrSize+5] = 1; rehashExtent(b[hdrSize:]); return b }), "bad extent magic"},
		{"extent uuid", mutate(func(b []byte) []byte { b[hdrSize+offExtUUID] ^= 1; rehashExtent(b[hdrSize:]); return b }), "uuid"},
		{"trailing garbage", append(bytes.Clone(good), "junk"...), "reading header (4 of 512 bytes): archive truncated"},
		{"missing cluster", join(h2, craftExtent(testUUID, []blockInfo{full}, 16, 1)), `device "d1": cluster 1 missing from archive`},
		{"duplicate cluster", join(h2, craftExtent(testUUID, []blockInfo{full, full}, 32, 1)), "entry 1: device \"d1\": cluster 0 stored twice"},
		{"duplicate cluster across extents", join(h2,
			craftExtent(testUUID, []blockInfo{{devID: 1, cluster: 1}}, 0, 0),
			craftExtent(testUUID, []blockInfo{{devID: 1, cluster: 1}}, 0, 0)), "extent at offset 13312: entry 0: device \"d1\": cluster 1 stored twice"},
		{"unknown device", join(h2, craftExtent(testUUID, []blockInfo{{devID: 2}}, 0, 0)), "unknown device id 2"},
		{"cluster beyond end", join(h2, craftExtent(testUUID, []blockInfo{{devID: 1, cluster: 2}}, 0, 0)), "cluster 2 beyond device end"},
		{"huge cluster number", join(h2, craftExtent(testUUID, []blockInfo{{devID: 1, cluster: 1<<32 - 1}}, 0, 0)), "beyond device end"},
		{"block beyond end", join(craftHeader(t, 5000), craftExtent(testUUID, []blockInfo{{mask: 0x4, devID: 1}}, 1, 1)), "block 2 lies beyond device end"},
		{"too few blocks", join(h2, craftExtent(testUUID, []blockInfo{full, {mask: 1, devID: 1, cluster: 1}}, 16, 1)), "block count 16 does not match the 17 blocks"},
		{"too many blocks", join(h2, craftExtent(testUUID, []blockInfo{{mask: 1, devID: 1}}, 2, 1)), "block count 2 does not match the 1 blocks"},
		{"block count above limit", join(h2, craftExtent(testUUID, nil, 945, 0)), "block count 945 exceeds the maximum of 944"},
		{"vmstate out of order", join(vmstateHeader,
			craftExtent(testUUID, []blockInfo{{mask: 1, devID: 1, cluster: 0}, {mask: 1, devID: 1, cluster: 2}}, 2, 1)), "vmstate cluster 2 out of order, want 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.archive)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}

	// The untouched inputs are accepted, so the failures above come from
	// the mutation.
	for name, a := range map[string][]byte{
		"golden":  good,
		"crafted": join(h2, craftExtent(testUUID, []blockInfo{full, {devID: 1, cluster: 1}}, 16, 1)),
		"vmstate": join(vmstateHeader, craftExtent(testUUID, []blockInfo{{mask: 1, devID: 1}, {mask: 3, devID: 1, cluster: 1}}, 3, 1)),
	} {
		if err := readAll(a); err != nil {
			t.Errorf("%s archive: %v", name, err)
		}
	}
}

// TestTruncated cuts a valid archive at many points: every cut must give a
// clear "truncated" error, never a hang, panic or success.
func TestTruncated(t *testing.T) {
	good, _ := goldenArchive(t)
	hdrSize := int(getU32(good, offHeaderSize))
	cuts := []int{1, 4, 100, headerFixedSize - 1, headerFixedSize, headerFixedSize + 1, hdrSize - 1,
		hdrSize + 1, hdrSize + 511, hdrSize + 512, hdrSize + 513, hdrSize + 512 + 4096, len(good) - 1}
	for _, cut := range cuts {
		err := readAll(good[:cut])
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: error = %v, want truncated", cut, err)
		}
	}
	// A cut exactly at the end of the header leaves the devices empty.
	if err := readAll(good[:hdrSize]); err == nil || !strings.Contains(err.Error(), "missing from archive") {
		t.Errorf("cut after header: error = %v, want missing cluster", err)
	}
}

type failingWriterAt struct{}

func (failingWriterAt) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk full") }

func TestExtractTargetErrors(t *testing.T) {
	good, _ := goldenArchive(t)
	r, err := NewReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Extract(func(Device) (io.WriterAt, error) { return failingWriterAt{}, nil })
	if err == nil || !strings.Contains(err.Error(), `device "drive-scsi0": writing 12288 bytes at offset 0: disk full`) {
		t.Errorf("error = %v", err)
	}
	r, _ = NewReader(bytes.NewReader(good))
	err = r.Extract(func(Device) (io.WriterAt, error) { return nil, errors.New("no space") })
	if err == nil || !strings.Contains(err.Error(), `opening target for device "drive-scsi0": no space`) {
		t.Errorf("error = %v", err)
	}
}
