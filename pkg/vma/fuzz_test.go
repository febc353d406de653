package vma

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
)

// boundedTarget accepts writes only inside the device (vmstate excepted)
// and keeps no data, so a hostile archive cannot make the test allocate.
type boundedTarget struct{ dev Device }

func (b boundedTarget) WriteAt(p []byte, off int64) (int, error) {
	if b.dev.Name != vmstateName && (off < 0 || off+int64(len(p)) > b.dev.Size) {
		return 0, fmt.Errorf("reader wrote [%d,%d) outside device %q of %d bytes", off, off+int64(len(p)), b.dev.Name, b.dev.Size)
	}
	return len(p), nil
}

func FuzzReader(f *testing.F) {
	golden, _ := goldenArchive(&testing.T{})
	f.Add(golden)
	f.Add(golden[:len(golden)/2])
	f.Add(golden[:headerFixedSize+600])
	h := craftHeader(&testing.T{}, 2*ClusterSize)
	f.Add(join(h, craftExtent(testUUID, []blockInfo{{mask: 0xffff, devID: 1}, {mask: 0x8001, devID: 1, cluster: 1}}, 18, 7)))
	f.Add([]byte("VMA\x00"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		devs := r.Devices()
		for _, d := range devs {
			if d.ID < 1 || d.ID > maxDeviceID || d.Size <= 0 || d.Size > maxDeviceSize {
				t.Fatalf("bad device accepted: %+v", d)
			}
		}
		for _, c := range r.Configs() {
			if err := validateConfigName(c.Name); err != nil {
				t.Fatalf("bad config accepted: %v", err)
			}
		}
		err = r.Extract(func(d Device) (io.WriterAt, error) { return boundedTarget{d}, nil })
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("reader wrote")) {
			t.Fatal(err)
		}
	})
}

// FuzzExtents goes past the checksums: the input is the extent stream after
// a fixed header (devices of 2 clusters + 100 bytes, and 70000 bytes), and
// every extent header gets the archive UUID and a correct MD5 before it is
// read, so the fuzzer explores the block-info checks and the data writing.
func FuzzExtents(f *testing.F) {
	hdr, err := encodeHeader(testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("x")}},
		[]Device{{Name: "drive-scsi0", Size: 2*ClusterSize + 100}, {Name: "drive-scsi1", Size: 70000}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(craftExtent(testUUID, []blockInfo{{mask: 0xffff, devID: 1}, {mask: 1, devID: 1, cluster: 2}, {mask: 3, devID: 2, cluster: 1}}, 19, 9))
	f.Add(join(craftExtent(testUUID, []blockInfo{{mask: 0x8000, devID: 1, cluster: 1}}, 1, 1),
		craftExtent(testUUID, []blockInfo{{devID: 2}}, 0, 0)))

	f.Fuzz(func(t *testing.T, stream []byte) {
		stream = bytes.Clone(stream)
		for pos := 0; pos+extentHeaderSize <= len(stream); {
			e := stream[pos : pos+extentHeaderSize]
			copy(e[offExtUUID:], testUUID[:])
			rehashExtent(e)
			pos += extentHeaderSize + int(binary.BigEndian.Uint16(e[offExtBlocks:]))*blockSize
		}
		r, err := NewReader(bytes.NewReader(join(hdr, stream)))
		if err != nil {
			t.Fatal(err)
		}
		err = r.Extract(func(d Device) (io.WriterAt, error) { return boundedTarget{d}, nil })
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("reader wrote")) {
			t.Fatal(err)
		}
	})
}
