package apitest

import (
	"encoding/binary"
	"io"
)

// WSFrame is a WebSocket frame as a test client reads it.
type WSFrame struct {
	Op      byte // opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong
	Final   bool
	Masked  bool
	Payload []byte
}

// WSClientFrame encodes p as one final, masked client frame with opcode op
// (RFC 6455: clients must mask).
func WSClientFrame(op byte, p []byte) []byte {
	f := []byte{0x80 | op}
	switch {
	case len(p) <= 125:
		f = append(f, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		f = append(f, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(len(p)))
	}
	mask := []byte{1, 2, 3, 4}
	f = append(f, mask...)
	for i, b := range p {
		f = append(f, b^mask[i&3])
	}
	return f
}

// ReadWSFrame reads one frame from a server (unmasking it if masked).
func ReadWSFrame(rd io.Reader) (WSFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		return WSFrame{}, err
	}
	f := WSFrame{Op: h[0] & 0x0F, Final: h[0]&0x80 != 0, Masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	if f.Masked {
		if _, err := io.ReadFull(rd, mask[:]); err != nil {
			return f, err
		}
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(rd, f.Payload); err != nil {
		return f, err
	}
	if f.Masked {
		for i := range f.Payload {
			f.Payload[i] ^= mask[i&3]
		}
	}
	return f, nil
}
