package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format of the messages this package puts inside memberlist user
// messages and push/pull states. memberlist encrypts, authenticates and
// labels them; this layer only frames them:
//
//	message  = wireVersion kind body
//	states   = count state*                     (kindStates)
//	state    = name version payload
//	announce = name version holder              (kindAnnounce)
//	request  = name version requester           (kindRequest)
//	digest   = sender count (name version)*     (kindDigest, push/pull)
//	leave    = name                             (kindLeave)
//	name     = uvarint length, bytes (1..maxNameLen)
//	version  = uvarint
//	payload  = uvarint length, bytes; bytes[0] is the encoding (encRaw, encZstd)
//
// A version byte leads so that a later format can be told apart; a message of
// another version is dropped.
const (
	wireVersion byte = 1

	kindStates   byte = 2
	kindAnnounce byte = 3
	kindRequest  byte = 4
	kindDigest   byte = 5
	kindLeave    byte = 6

	encRaw  byte = 0
	encZstd byte = 1

	maxNameLen = 255
)

var errShort = errors.New("message truncated")

// stateRecord is one node's versioned state as it travels: payload is the
// encoding byte followed by the (possibly compressed) data.
type stateRecord struct {
	name    string
	version uint64
	payload []byte
}

// digestEntry is one node's version in a push/pull digest.
type digestEntry struct {
	name    string
	version uint64
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRecord(b []byte, r stateRecord) []byte {
	b = appendName(b, r.name)
	b = binary.AppendUvarint(b, r.version)
	b = binary.AppendUvarint(b, uint64(len(r.payload)))
	return append(b, r.payload...)
}

func encodeStates(rs []stateRecord) []byte {
	n := 2 + binary.MaxVarintLen64
	for _, r := range rs {
		n += len(r.name) + len(r.payload) + 3*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, wireVersion, kindStates)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = appendRecord(b, r)
	}
	return b
}

// encodeRef encodes an announce or a request: a node's name and version and
// the name of the node holding (announce) or wanting (request) it.
func encodeRef(kind byte, name string, version uint64, other string) []byte {
	b := make([]byte, 0, 2+len(name)+len(other)+12)
	b = append(b, wireVersion, kind)
	b = appendName(b, name)
	b = binary.AppendUvarint(b, version)
	return appendName(b, other)
}

func encodeLeave(name string) []byte {
	return appendName([]byte{wireVersion, kindLeave}, name)
}

func encodeDigest(sender string, es []digestEntry) []byte {
	b := make([]byte, 0, 2+len(sender)+8+len(es)*24)
	b = append(b, wireVersion, kindDigest)
	b = appendName(b, sender)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = appendName(b, e.name)
		b = binary.AppendUvarint(b, e.version)
	}
	return b
}

// reader decodes the fields above from a message, remembering the first
// error so that callers check once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	if n > uint64(max) {
		r.err = fmt.Errorf("field of %d bytes over the limit of %d", n, max)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) name() string {
	v := r.bytes(maxNameLen)
	if r.err == nil && len(v) == 0 {
		r.err = errors.New("empty node name")
	}
	return string(v)
}

func (r *reader) record(maxPayload int) stateRecord {
	var s stateRecord
	s.name = r.name()
	s.version = r.uvarint()
	s.payload = r.bytes(maxPayload)
	if r.err == nil && len(s.payload) == 0 {
		r.err = errors.New("empty state payload")
	}
	return s
}

// count reads a list length and checks it against the limit and against the
// bytes left (each element takes at least min bytes), so that a forged count
// cannot make the caller allocate.
func (r *reader) count(limit, min int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(limit) || n*uint64(min) > uint64(len(r.b)) {
		r.err = fmt.Errorf("list of %d entries over the limit", n)
		return 0
	}
	return int(n)
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

// splitKind checks the version byte and returns the kind and the body.
func splitKind(msg []byte) (byte, []byte, error) {
	if len(msg) < 2 {
		return 0, nil, errShort
	}
	if msg[0] != wireVersion {
		return 0, nil, fmt.Errorf("unknown wire version %d", msg[0])
	}
	return msg[1], msg[2:], nil
}

func decodeStates(body []byte, maxNodes, maxPayload int) ([]stateRecord, error) {
	r := reader{b: body}
	n := r.count(maxNodes, 4)
	rs := make([]stateRecord, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		rs = append(rs, r.record(maxPayload))
	}
	return rs, r.done()
}

func decodeRef(body []byte) (name string, version uint64, other string, err error) {
	r := reader{b: body}
	name = r.name()
	version = r.uvarint()
	other = r.name()
	return name, version, other, r.done()
}

func decodeDigest(body []byte, maxNodes int) (string, []digestEntry, error) {
	r := reader{b: body}
	sender := r.name()
	n := r.count(maxNodes, 3)
	es := make([]digestEntry, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		es = append(es, digestEntry{name: r.name(), version: r.uvarint()})
	}
	return sender, es, r.done()
}
