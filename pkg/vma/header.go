package vma

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Config is one configuration file stored in the archive header, for
// example Name "qemu-server.conf" with the guest configuration as Data.
type Config struct {
	Name string
	Data []byte
}

// Device is one disk image (or the "vmstate" RAM image) in the archive.
// ID is the device id used in extent headers (1..255).
type Device struct {
	ID   int
	Name string
	Size int64
}

// blobTable builds the header's blob buffer the way PVE's writer does:
// offset 0 is never used (a zero pointer means "none"), each blob is a
// little-endian 2-byte length followed by the bytes, and the buffer grows
// in 512-byte steps sized for the blob being added.
type blobTable struct {
	buf []byte // len(buf) is the allocated (512-aligned) size
	pos int    // next free offset; starts at 1
}

func newBlobTable() *blobTable { return &blobTable{pos: 1} }

// add stores data and returns its offset in the blob buffer.
func (t *blobTable) add(data []byte) (uint32, error) {
	if len(data) > maxBlobLen {
		return 0, fmt.Errorf("blob of %d bytes exceeds the %d-byte limit", len(data), maxBlobLen)
	}
	need := t.pos + len(data) + 2
	if len(t.buf) < need {
		grow := (len(data) + 2 + 511) / 512 * 512
		newSize := len(t.buf) + grow
		// PVE grows by exactly 'grow'; because its table starts at offset
		// 1 that can fall one byte short (and PVE then writes a header its
		// own reader rejects). Add one more 512-byte step in that case.
		if newSize < need {
			newSize += 512
		}
		t.buf = append(t.buf, make([]byte, newSize-len(t.buf))...)
	}
	off := t.pos
	binary.LittleEndian.PutUint16(t.buf[off:], uint16(len(data)))
	copy(t.buf[off+2:], data)
	t.pos = need
	return uint32(off), nil
}

// addString stores s with a terminating NUL, as PVE stores names.
func (t *blobTable) addString(s string) (uint32, error) {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return t.add(b)
}

// validateConfigName rejects names PVE's writer would not produce (it stores
// the base name of a path) and names that are unsafe as a file name.
func validateConfigName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("config name %q is not a file name", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("config name %q contains '/' or NUL", name)
	}
	return nil
}

func validateDevice(d Device) error {
	switch {
	case d.Name == "":
		return fmt.Errorf("device has an empty name")
	case strings.ContainsRune(d.Name, 0):
		return fmt.Errorf("device name %q contains NUL", d.Name)
	case d.Name == vmstateName:
		return fmt.Errorf("device name %q is reserved for VM state", d.Name)
	case d.Size <= 0:
		return fmt.Errorf("device %q has size %d, want > 0", d.Name, d.Size)
	case d.Size > maxDeviceSize:
		return fmt.Errorf("device %q has size %d, above the format's limit of %d bytes", d.Name, d.Size, int64(maxDeviceSize))
	}
	return nil
}

// encodeHeader builds the complete archive header (fixed part plus blob
// buffer) with its MD5 filled in. Device IDs are taken from their position
// (1..len(devices)).
func encodeHeader(uuid [16]byte, ctime time.Time, configs []Config, devices []Device) ([]byte, error) {
	if len(configs) > maxConfigs {
		return nil, fmt.Errorf("%d configs, the format allows %d", len(configs), maxConfigs)
	}
	if len(devices) > maxWriterDevices {
		return nil, fmt.Errorf("%d devices, the format allows %d", len(devices), maxWriterDevices)
	}
	if len(configs) == 0 && len(devices) == 0 {
		// PVE's reader rejects a header without a blob buffer.
		return nil, fmt.Errorf("archive needs at least one config or device")
	}

	fixed := make([]byte, headerFixedSize)
	blobs := newBlobTable()
	for i, c := range configs {
		if err := validateConfigName(c.Name); err != nil {
			return nil, fmt.Errorf("config %d: %w", i, err)
		}
		namePtr, err := blobs.addString(c.Name)
		if err != nil {
			return nil, fmt.Errorf("config %q name: %w", c.Name, err)
		}
		dataPtr, err := blobs.add(c.Data)
		if err != nil {
			return nil, fmt.Errorf("config %q data: %w", c.Name, err)
		}
		putU32(fixed, offConfigNames+4*i, namePtr)
		putU32(fixed, offConfigData+4*i, dataPtr)
	}
	seen := make(map[string]bool, len(devices))
	for i, d := range devices {
		if err := validateDevice(d); err != nil {
			return nil, err
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("device name %q used twice", d.Name)
		}
		seen[d.Name] = true
		namePtr, err := blobs.addString(d.Name)
		if err != nil {
			return nil, fmt.Errorf("device %q name: %w", d.Name, err)
		}
		entry := offDevInfo + (i+1)*devInfoEntrySize
		putU32(fixed, entry, namePtr)
		binary.BigEndian.PutUint64(fixed[entry+8:], uint64(d.Size))
	}

	headerSize := headerFixedSize + len(blobs.buf)
	if headerSize > maxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes exceeds the %d-byte limit (configs too large)", headerSize, maxHeaderSize)
	}
	copy(fixed[offMagic:], headerMagic)
	putU32(fixed, offVersion, formatVersion)
	copy(fixed[offUUID:], uuid[:])
	binary.BigEndian.PutUint64(fixed[offCTime:], uint64(ctime.Unix()))
	putU32(fixed, offBlobOffset, headerFixedSize)
	putU32(fixed, offBlobSize, uint32(blobs.pos))
	putU32(fixed, offHeaderSize, uint32(headerSize))

	hdr := append(fixed, blobs.buf...)
	sum := md5.Sum(hdr) // the md5 field is still zero here
	copy(hdr[offMD5:], sum[:])
	return hdr, nil
}

// parsedHeader is the verified content of an archive header.
type parsedHeader struct {
	uuid    [16]byte
	ctime   int64
	size    int
	configs []Config
	devices []Device // ordered by ID
}

// parseHeader verifies and decodes a complete header (hdr holds exactly
// header_size bytes). The checks and their order follow PVE's reader.
func parseHeader(hdr []byte) (*parsedHeader, error) {
	if len(hdr) < headerFixedSize {
		return nil, fmt.Errorf("header is %d bytes, want at least %d", len(hdr), headerFixedSize)
	}
	if string(hdr[offMagic:offMagic+4]) != headerMagic {
		return nil, fmt.Errorf("not a vma archive: magic %q, want %q", hdr[offMagic:offMagic+4], headerMagic)
	}
	want := hdr[offMD5 : offMD5+16]
	if got := checksumWithZeroedField(hdr, offMD5); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("header checksum mismatch: stored %x, computed %x", want, got)
	}
	if v := getU32(hdr, offVersion); v != formatVersion {
		return nil, fmt.Errorf("unsupported vma version %d, want %d", v, formatVersion)
	}
	p := &parsedHeader{size: len(hdr), ctime: int64(binary.BigEndian.Uint64(hdr[offCTime:]))}
	copy(p.uuid[:], hdr[offUUID:])

	blobOff := uint64(getU32(hdr, offBlobOffset))
	blobSize := uint64(getU32(hdr, offBlobSize))
	if blobOff < headerFixedSize {
		return nil, fmt.Errorf("blob buffer offset %d lies inside the fixed header (%d bytes)", blobOff, headerFixedSize)
	}
	if blobOff+blobSize > uint64(len(hdr)) {
		return nil, fmt.Errorf("blob buffer %d+%d exceeds header size %d", blobOff, blobSize, len(hdr))
	}
	blobs := indexBlobs(hdr[blobOff : blobOff+blobSize])

	for id := 1; id <= maxDeviceID; id++ {
		entry := offDevInfo + id*devInfoEntrySize
		size := binary.BigEndian.Uint64(hdr[entry+8:])
		name, ok := blobString(blobs, getU32(hdr, entry))
		if size == 0 || !ok {
			continue // PVE's reader ignores such slots as well
		}
		if size > maxDeviceSize {
			return nil, fmt.Errorf("device %d (%q): size %d exceeds the format's limit of %d bytes", id, name, size, uint64(maxDeviceSize))
		}
		p.devices = append(p.devices, Device{ID: id, Name: name, Size: int64(size)})
	}

	for i := 0; i < maxConfigs; i++ {
		namePtr := getU32(hdr, offConfigNames+4*i)
		dataPtr := getU32(hdr, offConfigData+4*i)
		if namePtr == 0 || dataPtr == 0 {
			continue
		}
		name, okName := blobString(blobs, namePtr)
		data, okData := blobs[dataPtr]
		if !okName || !okData {
			return nil, fmt.Errorf("config slot %d: invalid blob pointers (name %d, data %d)", i, namePtr, dataPtr)
		}
		if err := validateConfigName(name); err != nil {
			return nil, fmt.Errorf("config slot %d: %w", i, err)
		}
		p.configs = append(p.configs, Config{Name: name, Data: bytes.Clone(data)})
	}
	return p, nil
}

// indexBlobs walks a blob buffer and maps each blob's offset to its bytes.
// Like PVE's reader it starts at offset 1 and keeps walking past a blob that
// does not fit, so later lookups of such offsets fail.
func indexBlobs(buf []byte) map[uint32][]byte {
	blobs := make(map[uint32][]byte)
	for pos := 1; pos+2 <= len(buf); {
		n := int(binary.LittleEndian.Uint16(buf[pos:]))
		if pos+2+n <= len(buf) {
			blobs[uint32(pos)] = buf[pos+2 : pos+2+n]
		}
		pos += 2 + n
	}
	return blobs
}

// blobString resolves a NUL-terminated string blob. As in C, the string
// ends at its first NUL.
func blobString(blobs map[uint32][]byte, ptr uint32) (string, bool) {
	b, ok := blobs[ptr]
	if !ok || len(b) == 0 || b[len(b)-1] != 0 {
		return "", false
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), true
}
