package apitest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/ticket"
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

// WSHandshake sends a WebSocket upgrade for pathQuery over c (protocol
// "binary", the login ticket as cookie) and reads the answer: after a 101
// with the right Sec-WebSocket-Accept it returns the reader to go on with
// and the answer's header; otherwise the status line and body of the
// refusal. Reads have a 20 s deadline.
func WSHandshake(tb testing.TB, c net.Conn, host, pathQuery, loginTicket string) (*bufio.Reader, http.Header, string) {
	tb.Helper()
	kb := make([]byte, 16)
	_, _ = rand.Read(kb)
	key := base64.StdEncoding.EncodeToString(kb)
	req := "GET " + pathQuery + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Protocol: binary\r\n" +
		"Cookie: " + ticket.CookieHeader(loginTicket) + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	rd := bufio.NewReader(c)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return nil, resp.Header, resp.Status + " " + string(body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != api.WebSocketAccept(key) {
		tb.Errorf("Sec-WebSocket-Accept %q", got)
	}
	return rd, resp.Header, ""
}
