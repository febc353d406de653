// Package spicetest is a SPICE client for tests: the link handshake of a
// main channel, enough to show that a SPICE server (QEMU's, directly or
// through spiceproxy) takes or refuses a password. It is for tests only.
package spicetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// LinkOK is SPICE_LINK_ERR_OK, the link result of an accepted password.
const LinkOK = 0

// Dial runs Link over a new TLS connection to addr.
func Dial(addr string, tc *tls.Config, password string) (uint32, error) {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	return Link(raw, tc, password)
}

// Link runs the SPICE link handshake of a main channel over TLS (verified
// with tc) on conn: SpiceLinkHeader ("REDQ", 2.2) + SpiceLinkMess, the
// SpiceLinkReply with the server's RSA key, the password encrypted with
// RSA-OAEP(SHA-1); it returns the link result (LinkOK when the password
// was taken). conn may be a tunnel (a CONNECT through spiceproxy).
func Link(conn net.Conn, tc *tls.Config, password string) (uint32, error) {
	tconn := tls.Client(conn, tc)
	defer tconn.Close()
	tconn.SetDeadline(time.Now().Add(20 * time.Second))
	le := binary.LittleEndian
	msg := make([]byte, 16+18)
	copy(msg, "REDQ")
	le.PutUint32(msg[4:], 2)   // major
	le.PutUint32(msg[8:], 2)   // minor
	le.PutUint32(msg[12:], 18) // size of SpiceLinkMess, no caps
	// connection_id 0, channel_type 1 (main), channel_id 0, no caps
	msg[16+4] = 1
	le.PutUint32(msg[16+14:], 18) // caps_offset
	if _, err := tconn.Write(msg); err != nil {
		return 0, err
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(tconn, hdr); err != nil {
		return 0, fmt.Errorf("read link reply header: %w", err)
	}
	if string(hdr[:4]) != "REDQ" || le.Uint32(hdr[4:]) != 2 {
		return 0, fmt.Errorf("link reply header %q", hdr)
	}
	body := make([]byte, le.Uint32(hdr[12:]))
	if len(body) < 4+162+12 {
		return 0, fmt.Errorf("link reply of %d bytes", len(body))
	}
	if _, err := io.ReadFull(tconn, body); err != nil {
		return 0, fmt.Errorf("read link reply: %w", err)
	}
	if e := le.Uint32(body); e != 0 {
		return 0, fmt.Errorf("link reply error %d", e)
	}
	pub, err := x509.ParsePKIXPublicKey(body[4 : 4+162])
	if err != nil {
		return 0, fmt.Errorf("link reply public key: %w", err)
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return 0, errors.New("link reply key is not RSA")
	}
	enc, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, rk, append([]byte(password), 0), nil)
	if err != nil {
		return 0, err
	}
	if _, err := tconn.Write(enc); err != nil {
		return 0, err
	}
	res := make([]byte, 4)
	if _, err := io.ReadFull(tconn, res); err != nil {
		return 0, fmt.Errorf("read link result: %w", err)
	}
	return le.Uint32(res), nil
}
