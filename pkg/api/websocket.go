package api

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// WebSocket upgrades (PVE's vncwebsocket and the other .../*websocket
// methods, answered by pve-http-server's websocket_proxy).
//
// A method declared with Method.WebSocket returns a *WebSocket. A call
// without "Upgrade: websocket" gets Data as an ordinary answer; a GET that
// asks for the upgrade (after authentication, validation, permissions and
// the handler's own checks, such as the VNC ticket) is answered "101
// Switching Protocols" on the hijacked connection, which from then on
// carries RFC 6455 frames relayed to and from a TCP connection to Addr:
//
//   - to the client: binary frames of at most MaxWebSocketPayload bytes,
//     one per read from Addr;
//   - from the client: masked, unfragmented text or binary frames of at
//     most MaxWebSocketPayload bytes, whose payload is written to Addr;
//     ping is answered with pong, pong is ignored, close is answered with
//     close and ends the relay. A fragmented frame, RSV bits, an unmasked or
//     oversized frame or an unknown opcode ends the connection (with a close
//     frame 1002 or 1009), as PVE ends it.
//
// Every write blocks until the other side takes it, and each direction
// holds one buffer of at most MaxWebSocketPayload bytes: a slow reader on
// either side slows the other down and never makes the relay buffer
// without bound.

// MaxWebSocketPayload is the largest frame payload relayed (PVE's 128 KiB).
const MaxWebSocketPayload = 128 << 10

// websocketGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// closeWriteTimeout bounds the write of a close frame.
const closeWriteTimeout = 5 * time.Second

// webSocketDialTimeout bounds the connection to the relay target.
const webSocketDialTimeout = 5 * time.Second

// WebSocket is the result of a method declared with Method.WebSocket.
type WebSocket struct {
	// Addr is the TCP address ("127.0.0.1:5900") the upgraded connection
	// is relayed to.
	Addr string
	// Data is the answer of a call that does not ask for an upgrade.
	Data any
}

// wantsWebSocket reports whether r asks for a protocol upgrade (PVE:
// any Upgrade header on a GET; it then insists on "websocket").
func wantsWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Upgrade") != ""
}

// WebSocketAccept returns the Sec-WebSocket-Accept value for key.
func WebSocketAccept(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// checkUpgrade checks the handshake headers with PVE's messages.
func checkUpgrade(r *http.Request) (key string, err error) {
	if up := r.Header.Get("Upgrade"); !strings.EqualFold(up, "websocket") {
		return "", Errorf(http.StatusBadRequest, "unable to upgrade to protocol '%s'", up)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return "", Errorf(http.StatusBadRequest, "unsupported websocket-version '%s'", v)
	}
	key = r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		return "", Errorf(http.StatusBadRequest, "missing websocket-key")
	}
	return key, nil
}

// serveWebSocket upgrades the call and starts relaying it to ws.Addr
// until either side ends. Errors before the upgrade are returned to be
// answered as usual; after it they are logged.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, ws *WebSocket) error {
	key, err := checkUpgrade(r)
	if err != nil {
		return err
	}
	backend, err := net.DialTimeout("tcp", ws.Addr, webSocketDialTimeout)
	if err != nil {
		return Errorf(http.StatusBadGateway, "connect to '%s' failed: %v", ws.Addr, err)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		backend.Close()
		return Errorf(http.StatusInternalServerError, "websocket upgrade failed: %v", err)
	}
	// The server's read and write deadlines were for the request.
	_ = conn.SetDeadline(time.Time{})
	var hdr strings.Builder
	hdr.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: ")
	hdr.WriteString(WebSocketAccept(key))
	hdr.WriteString("\r\n")
	// PVE echoes the protocol the client asked for, whatever it is.
	if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" && !strings.ContainsAny(p, "\r\n") {
		hdr.WriteString("Sec-WebSocket-Protocol: " + p + "\r\n")
	}
	hdr.WriteString("\r\n")
	if _, err := conn.Write([]byte(hdr.String())); err != nil {
		conn.Close()
		backend.Close()
		return nil
	}
	// The relay outlives the call, as PVE's: the access log line (101) is
	// written now and the console holds no request slot.
	path := r.URL.Path
	go func() {
		if err := RelayWebSocket(conn, brw.Reader, backend); err != nil {
			s.cfg.Log.Debug("websocket relay ended", "path", path, "err", err)
		}
	}()
	return nil
}

// RelayWebSocket relays frames read from client (through rd, which may
// hold bytes already read from it; nil: client itself) to backend and
// backend's bytes as binary frames to client, after the handshake. It
// closes both connections and returns the protocol error that ended it,
// if any.
func RelayWebSocket(client net.Conn, rd *bufio.Reader, backend net.Conn) error {
	if rd == nil {
		rd = bufio.NewReaderSize(client, 4096)
	}
	fw := &frameWriter{w: client}
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			client.Close()
			backend.Close()
		})
	}
	defer closeAll()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxFrameHeader+MaxWebSocketPayload)
		for {
			n, err := backend.Read(buf[maxFrameHeader:])
			if n > 0 {
				if werr := fw.writeFrame(opBinary, buf, n); werr != nil {
					break
				}
			}
			if err != nil {
				// The target ended: say goodbye and end the connection.
				_ = fw.writeClose(1000)
				break
			}
		}
		closeAll()
	}()
	err := readFrames(rd, fw, backend)
	if err != nil {
		var pe *frameError
		if errors.As(err, &pe) {
			_ = fw.writeClose(pe.code)
		}
	}
	closeAll()
	<-done
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errCloseReceived) {
		return nil
	}
	return err
}

// WebSocket opcodes.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxFrameHeader is the largest header of a server frame (unmasked).
const maxFrameHeader = 10

// frameError is a protocol violation by the client; code is the close
// status sent.
type frameError struct {
	code uint16
	msg  string
}

func (e *frameError) Error() string { return e.msg }

var errCloseReceived = errors.New("websocket closed by the client")

// readFrames reads the client's frames and acts on them until the client
// closes, an error, or a protocol violation (a *frameError).
func readFrames(rd *bufio.Reader, fw *frameWriter, backend io.Writer) error {
	var head [14]byte
	payload := make([]byte, MaxWebSocketPayload)
	for {
		if _, err := io.ReadFull(rd, head[:2]); err != nil {
			return err
		}
		b0, b1 := head[0], head[1]
		if b0&0x80 == 0 {
			return &frameError{1002, "received fragmented websocket frame"}
		}
		if b0&0x70 != 0 {
			return &frameError{1002, "received websocket frame with RSV flags"}
		}
		if b1&0x80 == 0 {
			return &frameError{1002, "received unmasked websocket frame from client"}
		}
		op := b0 & 0x0F
		n := uint64(b1 & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(rd, head[2:4]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(head[2:4]))
		case 127:
			if _, err := io.ReadFull(rd, head[2:10]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(head[2:10])
		}
		if n > MaxWebSocketPayload {
			return &frameError{1009, fmt.Sprintf("received too large websocket frame (len = %d)", n)}
		}
		var mask [4]byte
		if _, err := io.ReadFull(rd, mask[:]); err != nil {
			return err
		}
		p := payload[:n]
		if _, err := io.ReadFull(rd, p); err != nil {
			return err
		}
		if mask != [4]byte{} {
			for i := range p {
				p[i] ^= mask[i&3]
			}
		}
		switch op {
		case opText, opBinary:
			if _, err := backend.Write(p); err != nil {
				return err
			}
		case opClose:
			code := uint16(1000)
			if len(p) >= 2 {
				code = binary.BigEndian.Uint16(p)
			}
			_ = fw.writeClose(code)
			return errCloseReceived
		case opPing:
			if len(p) > 125 {
				return &frameError{1002, "received too large websocket control frame"}
			}
			buf := make([]byte, maxFrameHeader+len(p))
			copy(buf[maxFrameHeader:], p)
			if err := fw.writeFrame(opPong, buf, len(p)); err != nil {
				return err
			}
		case opPong:
		default:
			return &frameError{1002, fmt.Sprintf("received unhandled websocket opcode %d", op)}
		}
	}
}

// frameWriter writes whole frames to the client, one at a time.
type frameWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool // a close frame was sent: nothing may follow it
}

// writeFrame writes a final, unmasked frame of opcode op whose n-byte
// payload is at buf[maxFrameHeader:]; buf's first maxFrameHeader bytes are
// room for the header, so the frame goes out in one write.
func (fw *frameWriter) writeFrame(op byte, buf []byte, n int) error {
	var h [maxFrameHeader]byte
	h[0] = 0x80 | op
	hl := 2
	switch {
	case n <= 125:
		h[1] = byte(n)
	case n <= 0xFFFF:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		hl = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		hl = 10
	}
	start := maxFrameHeader - hl
	copy(buf[start:], h[:hl])
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed {
		return net.ErrClosed
	}
	if op == opClose {
		fw.closed = true
	}
	_, err := fw.w.Write(buf[start : maxFrameHeader+n])
	return err
}

// writeClose sends a close frame with code, once.
func (fw *frameWriter) writeClose(code uint16) error {
	// A client that does not read must not hold the relay: the frame (and
	// a write in progress) gets a few seconds.
	if c, ok := fw.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
	buf := make([]byte, maxFrameHeader+2)
	binary.BigEndian.PutUint16(buf[maxFrameHeader:], code)
	return fw.writeFrame(opClose, buf, 2)
}
