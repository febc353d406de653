// Package apimux carries the HTTP calls pveproxy forwards to pvedaemon over
// one Unix-socket connection, many calls at a time.
//
// PVE's pveproxy opens a new HTTP connection to pvedaemon for every
// forwarded call. HTTP/1.1 keep-alive connections (one call at a time each)
// already save the connection set-up, but each call still costs both
// processes a write, two reads and a wake-up of the other process, which on
// a small or paravirtualised machine costs more than the call itself. This
// package sends calls as frames on a shared connection: a writer sends all
// frames queued since its last write in one system call and a reader takes
// in as many as one read returns, so under load the cost of the hop is
// shared by the calls in flight.
//
// The wire format is private to this project (both ends are built from the
// same source) and versioned by a preface. A frame is a 12-byte header
// (payload length uint32, type uint8, flags uint8, two zero bytes, stream
// id uint32; big-endian) and its payload:
//
//   - request (client → server): method, request URI, host, header fields,
//     then the whole body; a call's body is at most MaxRequestBody.
//   - response (server → client): status, reason phrase, header fields,
//     then the first part of the body; flagEnd if that is all of it.
//   - data (server → client): more of the body; flagEnd on the last.
//   - window (client → server): the client consumed this many more body
//     bytes of the stream. The server sends at most streamWindow bytes of
//     body that the client has not consumed, so a slow reader holds up its
//     own call only and memory stays bounded.
//   - cancel (client → server): the caller went away; the handler's
//     context is cancelled.
//   - goaway (server → client): the server takes no new calls on this
//     connection; calls with a higher stream id than the one given were
//     not seen and may be sent again elsewhere.
//
// Strings are a uvarint length and the bytes; header fields are a uvarint
// count of name/value pairs.
package apimux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Preface is what a client writes first on a new connection.
const Preface = "PVENODE-APIMUX/1\n"

const (
	headerLen = 12

	// MaxRequestBody bounds the body of one call sent through the mux;
	// larger bodies (uploads) go over plain HTTP.
	MaxRequestBody = 1 << 20
	// maxHead bounds the encoded head of a request or response.
	maxHead = 128 << 10
	// maxFrame bounds a frame's payload.
	maxFrame = maxHead + MaxRequestBody
	// dataChunk is the largest body part sent in one frame.
	dataChunk = 32 << 10
	// streamWindow is how much unconsumed response body a stream may
	// have in flight.
	streamWindow = 128 << 10
	// windowUpdate is how much a client consumes before it grants more.
	windowUpdate = 32 << 10
	// MaxStreams is the number of calls in flight on one connection;
	// a client opens another connection for more.
	MaxStreams = 128
)

type frameType uint8

const (
	frameRequest frameType = iota + 1
	frameResponse
	frameData
	frameWindow
	frameCancel
	frameGoAway
)

const (
	flagEnd   = 1 // last frame of the stream
	flagAbort = 2 // with flagEnd: the answer could not be completed
)

var errFrameTooLarge = errors.New("apimux: frame too large")

// frameHeader is a decoded frame header.
type frameHeader struct {
	length uint32
	typ    frameType
	flags  uint8
	stream uint32
}

// appendHeader appends a frame header to b.
func appendHeader(b []byte, typ frameType, flags uint8, stream uint32, length int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	b = append(b, byte(typ), flags, 0, 0)
	return binary.BigEndian.AppendUint32(b, stream)
}

// beginFrame appends a header with a zero length to b and returns b and
// the offset of the frame; endFrame fills in the length.
func beginFrame(b []byte, typ frameType, flags uint8, stream uint32) ([]byte, int) {
	at := len(b)
	return appendHeader(b, typ, flags, stream, 0), at
}

func endFrame(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-headerLen))
	return b
}

// readHeader reads a frame header from r.
func readHeader(r io.Reader, buf *[headerLen]byte) (frameHeader, error) {
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return frameHeader{}, err
	}
	h := frameHeader{
		length: binary.BigEndian.Uint32(buf[0:4]),
		typ:    frameType(buf[4]),
		flags:  buf[5],
		stream: binary.BigEndian.Uint32(buf[8:12]),
	}
	if h.length > maxFrame {
		return h, fmt.Errorf("%w: %d bytes", errFrameTooLarge, h.length)
	}
	return h, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHeaderFields(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

// decoder reads the fields of a payload.
type decoder struct {
	b   []byte
	err error
}

var errShortPayload = errors.New("apimux: malformed frame payload")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortPayload
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShortPayload
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) uint16() uint16 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 2 {
		d.err = errShortPayload
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

// header decodes header fields; names are canonicalised as net/http does.
func (d *decoder) header() http.Header {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b))/2 { // every field takes at least two bytes
		d.err = errShortPayload
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k := d.string()
		v := d.string()
		if d.err != nil {
			return nil
		}
		k = http.CanonicalHeaderKey(k)
		h[k] = append(h[k], v)
	}
	return h
}

// requestHead is the decoded head of a request frame.
type requestHead struct {
	method, uri, host string
	header            http.Header
	body              []byte
}

func appendRequest(b []byte, method, uri, host string, h http.Header, body []byte) []byte {
	b = appendString(b, method)
	b = appendString(b, uri)
	b = appendString(b, host)
	b = appendHeaderFields(b, h)
	return append(b, body...)
}

func decodeRequest(p []byte) (requestHead, error) {
	d := decoder{b: p}
	r := requestHead{method: d.string(), uri: d.string(), host: d.string()}
	r.header = d.header()
	if d.err != nil {
		return r, d.err
	}
	r.body = d.b
	return r, nil
}

// responseHead is the decoded head of a response frame.
type responseHead struct {
	status int
	reason string
	header http.Header
	body   []byte // first part of the body
}

func appendResponse(b []byte, status int, reason string, h http.Header) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(status))
	b = appendString(b, reason)
	return appendHeaderFields(b, h)
}

func decodeResponse(p []byte) (responseHead, error) {
	d := decoder{b: p}
	r := responseHead{status: int(d.uint16()), reason: d.string()}
	r.header = d.header()
	if d.err != nil {
		return r, d.err
	}
	if r.status < 100 || r.status > 999 {
		return r, fmt.Errorf("apimux: bad status %d", r.status)
	}
	r.body = d.b
	return r, nil
}
