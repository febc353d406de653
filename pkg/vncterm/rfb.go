package vncterm

import (
	"bufio"
	"crypto/des"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// RFB constants (RFC 6143).
const (
	serverVersion = "RFB 003.008\n"

	securityVNCAuth = 2

	securityOK     = 0
	securityFailed = 1

	// authFailedReason is the 3.8 SecurityResult's reason on a wrong
	// password.
	authFailedReason = "Authentication failed"

	msgSetPixelFormat           = 0
	msgSetEncodings             = 2
	msgFramebufferUpdateRequest = 3
	msgKeyEvent                 = 4
	msgPointerEvent             = 5
	msgClientCutText            = 6

	msgFramebufferUpdate = 0
	encodingRaw          = 0

	// maxCutText bounds the clipboard text a client may send; it is read
	// and ignored.
	maxCutText = 1 << 20
)

// ErrAuthFailed is the error of a client that gave a wrong password.
var ErrAuthFailed = errors.New("vncterm: authentication failed")

// handshake is the server's side of the RFB handshake up to ClientInit:
// the protocol version, VNC authentication with password, SecurityResult.
// It returns the client's minor version (3, 7 or 8).
func handshake(rw *bufio.ReadWriter, password string) (minor int, err error) {
	if _, err := rw.WriteString(serverVersion); err != nil {
		return 0, err
	}
	if err := rw.Flush(); err != nil {
		return 0, err
	}
	var v [12]byte
	if _, err := io.ReadFull(rw, v[:]); err != nil {
		return 0, fmt.Errorf("read protocol version: %w", err)
	}
	minor, err = parseVersion(v[:])
	if err != nil {
		return 0, err
	}
	if minor == 3 {
		// 3.3: the server chooses the security type.
		_ = binary.Write(rw, binary.BigEndian, uint32(securityVNCAuth))
	} else {
		rw.Write([]byte{1, securityVNCAuth})
		if err := rw.Flush(); err != nil {
			return 0, err
		}
		t, err := rw.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("read security type: %w", err)
		}
		if t != securityVNCAuth {
			err := fmt.Errorf("client chose security type %d: only VNC authentication (2) is offered", t)
			writeResult(rw, minor, securityFailed, "security type not offered")
			return 0, err
		}
	}
	var challenge [16]byte
	if _, err := rand.Read(challenge[:]); err != nil {
		return 0, err
	}
	rw.Write(challenge[:])
	if err := rw.Flush(); err != nil {
		return 0, err
	}
	var response [16]byte
	if _, err := io.ReadFull(rw, response[:]); err != nil {
		return 0, fmt.Errorf("read authentication response: %w", err)
	}
	want := vncAuthResponse(password, challenge)
	if subtle.ConstantTimeCompare(response[:], want[:]) != 1 {
		writeResult(rw, minor, securityFailed, authFailedReason)
		return 0, ErrAuthFailed
	}
	if err := writeResult(rw, minor, securityOK, ""); err != nil {
		return 0, err
	}
	return minor, nil
}

// parseVersion reads a ProtocolVersion message; it returns the minor
// version the server speaks to that client: 3 (3.3 to 3.6, as RFC 6143
// says), 7, or 8 (3.8 and later).
func parseVersion(v []byte) (int, error) {
	var major, minor int
	if n, err := fmt.Sscanf(string(v), "RFB %03d.%03d\n", &major, &minor); n != 2 || err != nil || v[11] != '\n' {
		return 0, fmt.Errorf("bad protocol version %q", v)
	}
	if major != 3 || minor < 3 {
		return 0, fmt.Errorf("unsupported protocol version %d.%d", major, minor)
	}
	switch {
	case minor < 7:
		return 3, nil
	case minor == 7:
		return 7, nil
	}
	return 8, nil
}

// writeResult writes a SecurityResult (with the reason of a failure for
// 3.8 clients) and flushes.
func writeResult(rw *bufio.ReadWriter, minor int, result uint32, reason string) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], result)
	rw.Write(b[:])
	if result != securityOK && minor >= 8 {
		binary.BigEndian.PutUint32(b[:], uint32(len(reason)))
		rw.Write(b[:])
		rw.WriteString(reason)
	}
	return rw.Flush()
}

// vncAuthResponse is the response to challenge for password: the
// challenge encrypted with DES, the key being the password's first 8
// bytes (zero-padded) with each byte's bits reversed.
func vncAuthResponse(password string, challenge [16]byte) [16]byte {
	var key [8]byte
	copy(key[:], password)
	for i := range key {
		key[i] = bits.Reverse8(key[i])
	}
	c, _ := des.NewCipher(key[:]) // 8 bytes: cannot fail
	var out [16]byte
	c.Encrypt(out[:8], challenge[:8])
	c.Encrypt(out[8:], challenge[8:])
	return out
}

// serverInit is the ServerInit message.
func serverInit(width, height int, pf pixelFormat, name string) []byte {
	b := make([]byte, 0, 24+len(name))
	b = binary.BigEndian.AppendUint16(b, uint16(width))
	b = binary.BigEndian.AppendUint16(b, uint16(height))
	b = append(b, pf.marshal()...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	return append(b, name...)
}

// clientMessage is one message from the client, the fields its type uses
// set.
type clientMessage struct {
	typ uint8

	pf pixelFormat // SetPixelFormat

	incremental bool   // FramebufferUpdateRequest
	x, y, w, h  uint16 // FramebufferUpdateRequest

	down bool   // KeyEvent
	key  uint32 // KeyEvent
}

// readClientMessage reads one client-to-server message. SetEncodings,
// PointerEvent and ClientCutText are read whole and returned without
// their contents (nothing here uses them).
func readClientMessage(r *bufio.Reader) (clientMessage, error) {
	var m clientMessage
	t, err := r.ReadByte()
	if err != nil {
		return m, err
	}
	m.typ = t
	var b [19]byte
	switch t {
	case msgSetPixelFormat:
		if _, err := io.ReadFull(r, b[:19]); err != nil {
			return m, unexpected(err)
		}
		m.pf, err = parsePixelFormat(b[3:19])
		return m, err
	case msgSetEncodings:
		if _, err := io.ReadFull(r, b[:3]); err != nil {
			return m, unexpected(err)
		}
		n := int64(binary.BigEndian.Uint16(b[1:3]))
		if _, err := io.CopyN(io.Discard, r, 4*n); err != nil {
			return m, unexpected(err)
		}
	case msgFramebufferUpdateRequest:
		if _, err := io.ReadFull(r, b[:9]); err != nil {
			return m, unexpected(err)
		}
		m.incremental = b[0] != 0
		m.x, m.y = binary.BigEndian.Uint16(b[1:]), binary.BigEndian.Uint16(b[3:])
		m.w, m.h = binary.BigEndian.Uint16(b[5:]), binary.BigEndian.Uint16(b[7:])
	case msgKeyEvent:
		if _, err := io.ReadFull(r, b[:7]); err != nil {
			return m, unexpected(err)
		}
		m.down = b[0] != 0
		m.key = binary.BigEndian.Uint32(b[3:])
	case msgPointerEvent:
		if _, err := io.ReadFull(r, b[:5]); err != nil {
			return m, unexpected(err)
		}
	case msgClientCutText:
		if _, err := io.ReadFull(r, b[:7]); err != nil {
			return m, unexpected(err)
		}
		n := binary.BigEndian.Uint32(b[3:])
		if n > maxCutText {
			return m, fmt.Errorf("client cut text of %d bytes: more than %d", n, maxCutText)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return m, unexpected(err)
		}
	default:
		return m, fmt.Errorf("unknown client message type %d", t)
	}
	return m, nil
}

// unexpected makes an EOF inside a message an ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parsePixelFormat reads a PIXEL_FORMAT the server can send: true colour,
// 8, 16 or 32 bits per pixel, each colour's maximum a 2^n-1 fitting at its
// shift.
func parsePixelFormat(b []byte) (pixelFormat, error) {
	pf := pixelFormat{
		bpp: b[0], depth: b[1], bigEndian: b[2] != 0, trueColour: b[3] != 0,
		redMax: binary.BigEndian.Uint16(b[4:]), greenMax: binary.BigEndian.Uint16(b[6:]), blueMax: binary.BigEndian.Uint16(b[8:]),
		redShift: b[10], greenShift: b[11], blueShift: b[12],
	}
	if !pf.trueColour {
		return pf, fmt.Errorf("pixel format of %d bits per pixel with a colour map: only true colour is supported", pf.bpp)
	}
	if pf.bpp != 8 && pf.bpp != 16 && pf.bpp != 32 {
		return pf, fmt.Errorf("pixel format of %d bits per pixel: only 8, 16 and 32 are supported", pf.bpp)
	}
	for _, c := range []struct {
		max   uint16
		shift uint8
	}{{pf.redMax, pf.redShift}, {pf.greenMax, pf.greenShift}, {pf.blueMax, pf.blueShift}} {
		width := bits.Len16(c.max)
		if c.max == 0 || c.max&(c.max+1) != 0 || int(c.shift)+width > int(pf.bpp) {
			return pf, fmt.Errorf("pixel format colour maximum %d at shift %d does not fit %d bits per pixel", c.max, c.shift, pf.bpp)
		}
	}
	return pf, nil
}
