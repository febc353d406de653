package vma

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/small.vma")

const goldenPath = "testdata/small.vma"

// goldenArchive is a small archive with fixed UUID and time: one config,
// a 70000-byte disk (partial last cluster and block) and a sparse disk.
func goldenArchive(t *testing.T) ([]byte, [][]byte) {
	disk0 := make([]byte, 70000)
	for i := range 9000 {
		disk0[i] = byte(i*7 + 1) // blocks 0-2 of cluster 0
	}
	for i := 65536 + 4000; i < len(disk0); i++ {
		disk0[i] = 0xA5 // last cluster: tail block is partial
	}
	disk1 := make([]byte, 3*ClusterSize)
	copy(disk1[2*ClusterSize+5*blockSize:], "only this block is stored")
	configs := []Config{{Name: "qemu-server.conf", Data: []byte("boot: order=scsi0\nmemory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=70000\n")}}
	contents := [][]byte{disk0, disk1}
	return buildArchive(t, configs, []string{"drive-scsi0", "drive-scsi1"}, contents), contents
}

// TestGolden byte-compares a freshly written archive with the stored one,
// so any change of the byte layout is noticed, and reads the stored one.
func TestGolden(t *testing.T) {
	got, contents := goldenArchive(t)
	if *updateGolden {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("archive differs from %s at byte %d (len %d, want %d)", goldenPath, i, len(got), len(want))
	}

	r, err := NewReader(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	files := extractToFiles(t, r, t.TempDir())
	for i, name := range []string{"drive-scsi0", "drive-scsi1"} {
		if !bytes.Equal(files[name], contents[i]) {
			t.Errorf("%s differs after extract", name)
		}
	}
}

// TestGoldenLayout decodes the stored archive by the offsets written in
// PVE's vma_spec.txt and vma.h, independently of the package's decoder.
func TestGoldenLayout(t *testing.T) {
	b, err := os.ReadFile(filepath.FromSlash(goldenPath))
	if err != nil {
		t.Fatal(err)
	}
	be32 := func(off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
	be64 := func(off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }

	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("magic", string(b[0:4]), "VMA\x00")
	check("version", be32(4), uint32(1))
	check("uuid", [16]byte(b[8:24]), testUUID)
	check("ctime", int64(be64(24)), testCTime.Unix())
	check("blob_buffer_offset", be32(48), uint32(12288))
	headerSize := int(be32(56))
	check("header_size", headerSize, 12288+512) // blob table fits in one 512-byte step

	// Blob buffer: entries start at offset 1, little-endian 2-byte lengths.
	blob := func(ptr uint32) []byte {
		off := 12288 + int(ptr)
		n := int(b[off]) | int(b[off+1])<<8
		return b[off+2 : off+2+n]
	}
	check("config_names[0]", be32(2044), uint32(1))
	check("config name", string(blob(be32(2044))), "qemu-server.conf\x00")
	check("config_data[0] follows the name", be32(3068), uint32(1+2+17))
	check("config_names[1]", be32(2048), uint32(0))
	check("dev_info[0] unused", be64(4096+8), uint64(0))
	check("dev 1 name", string(blob(be32(4096+32))), "drive-scsi0\x00")
	check("dev 1 size", be64(4096+32+8), uint64(70000))
	check("dev 2 name", string(blob(be32(4096+64))), "drive-scsi1\x00")
	check("dev 2 size", be64(4096+64+8), uint64(3*ClusterSize))
	check("blob_buffer_size", int(be32(52)), int(be32(4096+64))+2+len("drive-scsi1\x00"))

	// One extent with all 5 clusters; blockinfo = mask(2) reserved(1) dev(1) cluster(4).
	e := headerSize
	check("extent magic", string(b[e:e+4]), "VMAE")
	check("extent uuid", [16]byte(b[e+8:e+24]), testUUID)
	type entry struct {
		mask    uint16
		dev     byte
		cluster uint32
	}
	var entries []entry
	for i := 0; i < 59; i++ {
		o := e + 40 + 8*i
		if b[o+3] == 0 {
			continue
		}
		entries = append(entries, entry{binary.BigEndian.Uint16(b[o:]), b[o+3], be32(o + 4)})
	}
	// disk0: cluster 0 blocks 0,1,2; cluster 1 (4464 bytes) blocks 0 and 1
	// (block 1 holds the 368 bytes past 69632). disk1: cluster 2 block 5.
	want := []entry{{0x0007, 1, 0}, {0x0003, 1, 1}, {0, 2, 0}, {0, 2, 1}, {1 << 5, 2, 2}}
	if len(entries) != len(want) {
		t.Fatalf("extent entries = %v, want %v", entries, want)
	}
	for i := range want {
		check("entry", entries[i], want[i])
	}
	check("block_count", binary.BigEndian.Uint16(b[e+6:]), uint16(6))
	check("archive length", len(b), headerSize+512+6*4096)
	// The partial last block of disk0 is stored zero-padded.
	last := e + 512 + 4*4096
	check("tail data", b[last+368-1], byte(0xA5))
	check("tail padding", b[last+368], byte(0))
}
