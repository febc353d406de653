package vma

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
)

type testDevice struct {
	name string
	kind contentKind
	size int
}

var roundTripDevices = []testDevice{
	{"drive-scsi0", contentRandom, 3*ClusterSize + 5*blockSize},   // 4 KiB aligned, partial last cluster
	{"drive-scsi1", contentSparse, 70*ClusterSize + 1234},         // spans two extents, odd tail
	{"drive-virtio2", contentZero, 2*ClusterSize + 512},           // nothing stored at all
	{"drive-efidisk0", contentRandom, 528 * 1024},                 // 8.25 clusters
	{"drive-tpmstate0", contentSparse, 100},                       // smaller than one block
	{"drive-sata3", contentSparse, ClusterSize - 1},               // one cluster, one byte short
	{"drive-ide0", contentRandom, blockSize*blocksPerCluster + 1}, // one byte into a second cluster
}

func TestRoundTrip(t *testing.T) {
	configs := []Config{
		{Name: "qemu-server.conf", Data: []byte("boot: order=scsi0\ncores: 2\nmemory: 2048\nscsi0: local-lvm:vm-100-disk-0,size=32G\n")},
		{Name: "qemu-server.fw", Data: []byte("[OPTIONS]\nenable: 1\n")},
		{Name: "empty.conf", Data: nil},
	}
	contents := make([][]byte, len(roundTripDevices))
	devices := make([]Device, len(roundTripDevices))
	for i, d := range roundTripDevices {
		contents[i] = makeContent(d.kind, d.size, uint64(i+1))
		devices[i] = Device{Name: d.name, Size: int64(d.size)}
	}

	for _, tc := range []struct {
		name  string
		write func(t *testing.T, w *Writer)
	}{
		{"sequential", func(t *testing.T, w *Writer) {
			for i := range devices {
				if err := w.CopyDevice(i+1, bytes.NewReader(contents[i])); err != nil {
					t.Fatalf("CopyDevice: %v", err)
				}
			}
		}},
		{"shuffled across devices", func(t *testing.T, w *Writer) {
			type job struct {
				dev     int
				cluster uint64
			}
			var jobs []job
			for i, c := range contents {
				for cl := uint64(0); cl < clustersFor(int64(len(c))); cl++ {
					jobs = append(jobs, job{i, cl})
				}
			}
			rng := rand.New(rand.NewPCG(7, 11))
			rng.Shuffle(len(jobs), func(a, b int) { jobs[a], jobs[b] = jobs[b], jobs[a] })
			for n, j := range jobs {
				start := int(j.cluster) * ClusterSize
				data := contents[j.dev][start:min(start+ClusterSize, len(contents[j.dev]))]
				switch {
				case n%5 == 0 && len(data) < ClusterSize:
					// Last cluster handed over as a full, zero-padded cluster.
					data = append(slices.Clone(data), make([]byte, ClusterSize-len(data))...)
				case n%3 == 0 && !slices.ContainsFunc(data, func(b byte) bool { return b != 0 }):
					data = nil // zero cluster without a buffer
				}
				if err := w.WriteCluster(j.dev+1, j.cluster, data); err != nil {
					t.Fatalf("WriteCluster(%d, %d): %v", j.dev+1, j.cluster, err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var archive bytes.Buffer
			w, err := NewWriter(&archive, testUUID, testCTime, configs, devices)
			if err != nil {
				t.Fatalf("NewWriter: %v", err)
			}
			tc.write(t, w)
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			r, err := NewReader(bytes.NewReader(archive.Bytes()))
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if r.UUID() != testUUID || !r.CTime().Equal(testCTime) {
				t.Errorf("UUID, CTime = %x, %v; want %x, %v", r.UUID(), r.CTime(), testUUID, testCTime)
			}
			gotCfg := r.Configs()
			if len(gotCfg) != len(configs) {
				t.Fatalf("Configs() = %d entries, want %d", len(gotCfg), len(configs))
			}
			for i, c := range configs {
				if gotCfg[i].Name != c.Name || !bytes.Equal(gotCfg[i].Data, c.Data) {
					t.Errorf("config %d = %q %q, want %q %q", i, gotCfg[i].Name, gotCfg[i].Data, c.Name, c.Data)
				}
			}
			wantDevs := w.Devices()
			if got := r.Devices(); !slices.Equal(got, wantDevs) {
				t.Errorf("Devices() = %v, want %v", got, wantDevs)
			}

			files := extractToFiles(t, r, t.TempDir())
			for i, d := range devices {
				if got, want := sha(files[d.Name]), sha(contents[i]); got != want {
					t.Errorf("device %s: sha256 %x, want %x", d.Name, got, want)
				}
			}
		})
	}
}

// TestZeroBlocksNotStored checks the archive size: only non-zero 4 KiB
// blocks of the data are stored, and PVE's 58-clusters-per-extent rule.
func TestZeroBlocksNotStored(t *testing.T) {
	content := makeContent(contentSparse, 100*ClusterSize+300, 3)
	nonZero := 0
	for off := 0; off < len(content); off += blockSize {
		if slices.ContainsFunc(content[off:min(off+blockSize, len(content))], func(b byte) bool { return b != 0 }) {
			nonZero++
		}
	}
	archive := buildArchive(t, []Config{{Name: "a.conf", Data: []byte("x")}}, []string{"drive-scsi0"}, [][]byte{content})
	hdrSize := int(getU32(archive, offHeaderSize))
	// 101 clusters in extents of at most 58: 2 extent headers.
	want := hdrSize + 2*extentHeaderSize + nonZero*blockSize
	if len(archive) != want {
		t.Errorf("archive is %d bytes, want %d (header %d, 2 extents, %d data blocks)", len(archive), want, hdrSize, nonZero)
	}
	if n := uint16(archive[hdrSize+offExtBlocks])<<8 | uint16(archive[hdrSize+offExtBlocks+1]); n == 0 {
		t.Errorf("first extent block count is 0")
	}
	var entries int
	for i := 0; i < blocksPerExtent; i++ {
		if archive[hdrSize+offExtBlockInfo+8*i+3] != 0 {
			entries++
		}
	}
	if entries != writerClustersPerExtent {
		t.Errorf("first extent has %d entries, want %d", entries, writerClustersPerExtent)
	}
}

// TestNoDevices covers a config-only archive: PVE writes one empty extent.
func TestNoDevices(t *testing.T) {
	archive := buildArchive(t, []Config{{Name: "qemu-server.conf", Data: []byte("memory: 512\n")}}, nil, nil)
	hdrSize := int(getU32(archive, offHeaderSize))
	if len(archive) != hdrSize+extentHeaderSize {
		t.Fatalf("archive is %d bytes, want header %d + one empty extent", len(archive), hdrSize)
	}
	r, err := NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Extract(func(Device) (io.WriterAt, error) { t.Fatal("open called"); return nil, nil }); err != nil {
		t.Fatalf("Extract: %v", err)
	}
}

// TestZstdStream writes through a zstd encoder and reads through the
// decoder, the way vzdump archives are stored: the reader must not need
// to seek.
func TestZstdStream(t *testing.T) {
	content := makeContent(contentSparse, 9*ClusterSize+17, 5)
	var compressed bytes.Buffer
	enc, err := zstd.NewWriter(&compressed, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(enc, testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("cores: 1\n")}},
		[]Device{{Name: "drive-scsi0", Size: int64(len(content))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CopyDevice(1, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(&compressed, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	r, err := NewReader(io.MultiReader(dec)) // hide any Seeker
	if err != nil {
		t.Fatal(err)
	}
	target := &memTarget{buf: make([]byte, len(content))}
	if err := r.Extract(func(Device) (io.WriterAt, error) { return target, nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(target.buf, content) {
		t.Error("content differs after zstd round trip")
	}
}

// TestExtractSkipDevice: a nil target skips writing but still verifies.
func TestExtractSkipDevice(t *testing.T) {
	a := makeContent(contentRandom, 2*ClusterSize, 1)
	b := makeContent(contentRandom, ClusterSize+4096, 2)
	archive := buildArchive(t, []Config{{Name: "c", Data: []byte("c")}}, []string{"drive-scsi0", "drive-scsi1"}, [][]byte{a, b})
	r, err := NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	target := &memTarget{buf: make([]byte, len(b))}
	var opened []string
	err = r.Extract(func(d Device) (io.WriterAt, error) {
		opened = append(opened, d.Name)
		if d.ID == 1 {
			return nil, nil
		}
		return target, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opened, []string{"drive-scsi0", "drive-scsi1"}) {
		t.Errorf("opened %v, want both devices in ID order", opened)
	}
	if !bytes.Equal(target.buf, b) {
		t.Error("device 2 content differs")
	}
	if err := r.Extract(func(Device) (io.WriterAt, error) { return nil, nil }); err == nil {
		t.Error("second Extract succeeded, want error")
	}
}
