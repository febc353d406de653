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
	s, res, err := LinkSession(conn, tc, password)
	if s != nil {
		s.Close()
	}
	return res, err
}

// Session is a linked main channel.
type Session struct {
	conn   *tls.Conn
	serial uint64
}

// Close closes the session's TLS connection.
func (s *Session) Close() error { return s.conn.Close() }

// LinkSession is Link keeping the main channel open: with LinkOK the
// session can go on (ChannelsList).
func LinkSession(conn net.Conn, tc *tls.Config, password string) (*Session, uint32, error) {
	tconn := tls.Client(conn, tc)
	res, err := link(tconn, password)
	if err != nil || res != LinkOK {
		tconn.Close()
		return nil, res, err
	}
	return &Session{conn: tconn}, res, nil
}

// SPICE main channel message types (spice-protocol's enums.h).
const (
	msgMainChannelsList    = 104 // SPICE_MSG_MAIN_CHANNELS_LIST
	msgcMainAttachChannels = 104 // SPICE_MSGC_MAIN_ATTACH_CHANNELS
	maxMessage             = 1 << 20
)

// ChannelsList asks the server for its channels (ATTACH_CHANNELS) and
// returns how many the CHANNELS_LIST answer names; the messages before it
// (MAIN_INIT, ...) are skipped. It shows the session is served end to end.
func (s *Session) ChannelsList(timeout time.Duration) (int, error) {
	le := binary.LittleEndian
	s.conn.SetDeadline(time.Now().Add(timeout))
	// SpiceDataHeader (no mini header: it was not negotiated): serial u64,
	// type u16, size u32, sub_list u32.
	s.serial++
	hdr := make([]byte, 18)
	le.PutUint64(hdr, s.serial)
	le.PutUint16(hdr[8:], msgcMainAttachChannels)
	if _, err := s.conn.Write(hdr); err != nil {
		return 0, err
	}
	for range 100 {
		if _, err := io.ReadFull(s.conn, hdr); err != nil {
			return 0, fmt.Errorf("read message header: %w", err)
		}
		typ, size := le.Uint16(hdr[8:]), le.Uint32(hdr[10:])
		if size > maxMessage {
			return 0, fmt.Errorf("message of %d bytes", size)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(s.conn, body); err != nil {
			return 0, fmt.Errorf("read message %d: %w", typ, err)
		}
		if typ == msgMainChannelsList {
			if len(body) < 4 {
				return 0, fmt.Errorf("channels list of %d bytes", len(body))
			}
			return int(le.Uint32(body)), nil
		}
	}
	return 0, errors.New("no channels list in 100 messages")
}

func link(tconn *tls.Conn, password string) (uint32, error) {
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
