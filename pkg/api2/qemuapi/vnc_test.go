package qemuapi_test

import (
	"bufio"
	"context"
	"crypto/des"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/font/inconsolata"
	"golang.org/x/image/math/fixed"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/vncterm"
)

// vncProxyReply is vncproxy's answer.
type vncProxyReply struct {
	User     string `json:"user"`
	Ticket   string `json:"ticket"`
	Port     int    `json:"port"`
	UPID     string `json:"upid"`
	Cert     string `json:"cert"`
	Password string `json:"password"`
}

// wsDial opens the vncwebsocket of vmid on srv as user's ticket and
// returns the connection after a 101, or the status line and body of a
// refusal.
func wsDial(t *testing.T, srvURL, loginTicket, vmid string, port int, vncticket string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	u, _ := url.Parse(srvURL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"port": {strconv.Itoa(port)}, "vncticket": {vncticket}}
	rd, hdr, refusal := apitest.WSHandshake(t, c, u.Host, "/api2/json/nodes/"+node+"/qemu/"+vmid+"/vncwebsocket?"+q.Encode(), loginTicket)
	if rd == nil {
		c.Close()
		return nil, nil, refusal
	}
	if got := hdr.Get("Sec-WebSocket-Protocol"); got != "binary" {
		t.Errorf("Sec-WebSocket-Protocol %q, want the client's echoed", got)
	}
	t.Cleanup(func() { c.Close() })
	return c, rd, ""
}

// readFrame reads one server frame.
func readFrame(t *testing.T, rd *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	f, err := apitest.ReadWSFrame(rd)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if !f.Final || f.Masked {
		t.Fatalf("frame opcode %d: not final or masked", f.Op)
	}
	return f.Op, f.Payload
}

// writeFrame writes one masked client frame.
func writeFrame(t *testing.T, c net.Conn, op byte, p []byte) {
	t.Helper()
	if _, err := c.Write(apitest.WSClientFrame(op, p)); err != nil {
		t.Fatal(err)
	}
}

// TestVNCWebSocket is the console path with a real QEMU: vncproxy, then
// vncwebsocket upgraded, and QEMU's RFB greeting arrives through it.
func TestVNCWebSocket(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", url.Values{"vga": {"std"}}) // a display, so QEMU serves VNC
	if st := e.task("POST", "/nodes/"+node+"/qemu/100/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	srv := httptest.NewServer(e.Server)
	defer srv.Close()

	var vp vncProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	if vp.User != "admin@pve" || vp.Port < 5900 || vp.Port > 5999 || !strings.HasPrefix(vp.UPID, "UPID:"+node+":") ||
		!strings.Contains(vp.UPID, ":vncproxy:100:admin@pve:") || len(vp.Password) != 8 ||
		!strings.HasPrefix(vp.Ticket, vp.Password+":PVEVNC:") {
		t.Fatalf("vncproxy answer: %+v", vp)
	}
	login := e.Login("admin").Ticket

	// Refused: a forged ticket, another port's, another VM's, another
	// user's. None of them takes the task's one connection.
	forged := vp.Ticket[:len(vp.Ticket)-4] + "AAAA"
	for _, c := range []struct {
		name, vmid, ticket string
		port               int
	}{
		{"forged", "100", forged, vp.Port},
		{"port", "100", vp.Ticket, vp.Port + 1},
		{"garbage", "100", "PVEVNC:00000000::abc", vp.Port},
	} {
		if conn, _, refusal := wsDial(t, srv.URL, login, c.vmid, c.port, c.ticket); conn != nil || !strings.HasPrefix(refusal, "401") ||
			!strings.Contains(refusal, "invalid PVEVNC ticket") {
			t.Errorf("%s ticket: %q", c.name, refusal)
		}
	}
	// Signed with the real key for the right user, path and port, but 60 s
	// old (PVE accepts 40 s at most).
	key, err := ticket.ParsePrivateKey([]byte(e.File(access.AuthKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	secret := fmt.Sprintf("admin@pve:/vms/100:%d", vp.Port)
	expired, err := ticket.Sign(key, access.PrefixVNC, "", secret, time.Now().Add(-60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if conn, _, refusal := wsDial(t, srv.URL, login, "100", vp.Port, expired); conn != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("expired ticket: %q", refusal)
	}
	// The same, fresh, verifies (so the refusal above is the age's).
	fresh, _ := ticket.Sign(key, access.PrefixVNC, "", secret, time.Now())
	if err := e.Auth.VerifyVNCTicket(fresh, "admin@pve", "/vms/100", vp.Port); err != nil {
		t.Errorf("fresh ticket: %v", err)
	}
	alice := e.Login("alice").Ticket // may use the console of VM 100, but the ticket is admin's
	if conn, _, refusal := wsDial(t, srv.URL, alice, "100", vp.Port, vp.Ticket); conn != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("another user's ticket: %q", refusal)
	}

	conn, rd, refusal := wsDial(t, srv.URL, login, "100", vp.Port, vp.Ticket)
	if conn == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	op, p := readFrame(t, rd)
	if op != 2 || string(p) != "RFB 003.008\n" {
		t.Fatalf("first frame: op %d %q, want binary RFB 003.008 (task: %s)", op, p, e.wait(vp.UPID))
	}
	// The RFB handshake goes on through the relay: our version, then
	// QEMU's security types (VNC authentication, type 2: a password is set).
	writeFrame(t, conn, 2, []byte("RFB 003.008\n"))
	op, p = readFrame(t, rd)
	if op != 2 || len(p) < 2 || p[0] == 0 || !strings.Contains(string(p[1:1+int(p[0])]), "\x02") {
		t.Fatalf("security types: op %d %q", op, p)
	}
	// ping → pong with the same payload.
	writeFrame(t, conn, 9, []byte("hi"))
	if op, p = readFrame(t, rd); op != 0xA || string(p) != "hi" {
		t.Errorf("pong: op %d %q", op, p)
	}
	// close → close, and the task ends.
	writeFrame(t, conn, 8, []byte{0x03, 0xE8})
	if op, _ = readFrame(t, rd); op != 8 {
		t.Errorf("close answered with op %d", op)
	}
	if st := e.wait(vp.UPID); st != "OK" {
		t.Errorf("vncproxy task: %s", st)
	}

	// The task's one connection is used: the port is closed.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", vp.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still open after the task", vp.Port)
	}
}

// TestVNCProxyTimeout: without a connection within 10 s the task fails
// with PVE's message; an expired ticket is refused.
func TestVNCProxyTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	e := newEnv(t)
	e.createVM("100", nil)
	var vp vncProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	if st := e.wait(vp.UPID); !strings.Contains(st, "connection timed out") {
		t.Errorf("task status %q", st)
	}
}

// TestVNCProxyRefusals: vncproxy checks the VM and the permission.
func TestVNCProxyRefusals(t *testing.T) {
	e := newEnv(t)
	if r := e.Do("admin", "POST", "/nodes/"+node+"/qemu/101/vncproxy", nil); r.Status != 500 || !strings.Contains(r.Message, "does not exist") {
		t.Errorf("missing VM: %d %s", r.Status, r.Message)
	}
	e.createVM("100", nil)
	if r := e.Do("ticket:PVE:x", "POST", "/nodes/"+node+"/qemu/100/vncproxy", nil); r.Status != 401 {
		t.Errorf("no login: %d %s", r.Status, r.Message)
	}
	// Without the upgrade, vncwebsocket answers {port} for a valid ticket
	// only.
	if r := e.Do("admin", "GET", "/nodes/"+node+"/qemu/100/vncwebsocket", url.Values{"port": {"5900"}, "vncticket": {"x"}}); r.Status != 401 {
		t.Errorf("bad ticket without upgrade: %d %s", r.Status, r.Message)
	}
}

// rfbStream is the RFB byte stream of a vncwebsocket: binary frames out,
// the server's frames' payloads in as one stream.
type rfbStream struct {
	t   *testing.T
	c   net.Conn
	rd  *bufio.Reader
	buf []byte
}

func (s *rfbStream) write(p []byte) { s.t.Helper(); writeFrame(s.t, s.c, 2, p) }

// read returns the next n bytes of the stream, within 20 s.
func (s *rfbStream) read(n int) []byte {
	s.t.Helper()
	_ = s.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(s.buf) < n {
		f, err := apitest.ReadWSFrame(s.rd)
		if err != nil || f.Op == 8 {
			s.t.Fatalf("reading %d bytes: op %d, %v; have %q", n, f.Op, err, s.buf)
		}
		s.buf = append(s.buf, f.Payload...)
	}
	b := s.buf[:n:n]
	s.buf = s.buf[n:]
	return b
}

func (s *rfbStream) u32() uint32 { s.t.Helper(); return binary.BigEndian.Uint32(s.read(4)) }

// vncAuth is the VNC authentication response: the challenge DES-encrypted
// with the password's bytes, each bit-reversed, as the key.
func vncAuth(t *testing.T, password string, challenge []byte) []byte {
	t.Helper()
	key := make([]byte, 8)
	copy(key, password)
	for i := range key {
		key[i] = bits.Reverse8(key[i])
	}
	c, err := des.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 16)
	c.Encrypt(out[:8], challenge[:8])
	c.Encrypt(out[8:], challenge[8:])
	return out
}

// login is a 3.8 client's handshake: it returns the SecurityResult and
// the failure's reason.
func (s *rfbStream) login(password string) (uint32, string) {
	s.t.Helper()
	if v := string(s.read(12)); v != "RFB 003.008\n" {
		s.t.Fatalf("server version %q", v)
	}
	s.write([]byte("RFB 003.008\n"))
	if types := s.read(int(s.read(1)[0])); string(types) != "\x02" {
		s.t.Fatalf("security types %v, want VNC authentication only", types)
	}
	s.write([]byte{2})
	s.write(vncAuth(s.t, password, s.read(16)))
	if r := s.u32(); r != 0 {
		return r, string(s.read(int(s.u32())))
	}
	return 0, ""
}

// screenReader turns the framebuffer of a vncterm (8x16 cells of
// Inconsolata, light grey on black) back into text.
type screenReader struct {
	w, h   int
	pix    []byte // 32-bit pixels, the server's format
	glyphs map[[16]byte]rune
}

// inkBits is the cell bitmap of pixels whose green is at least 0x80.
func inkBits(green func(x, y int) uint8) [16]byte {
	var k [16]byte
	for y := range 16 {
		for x := range 8 {
			if green(x, y) >= 0x80 {
				k[y] |= 1 << x
			}
		}
	}
	return k
}

func newScreenReader(w, h int) *screenReader {
	sr := &screenReader{w: w, h: h, pix: make([]byte, w*h*4), glyphs: map[[16]byte]rune{}}
	face := inconsolata.Regular8x16
	for ch := rune(0x20); ch <= 0x7e; ch++ {
		dr, mask, mp, _, _ := face.Glyph(fixed.P(0, face.Ascent), ch)
		k := inkBits(func(x, y int) uint8 {
			if x < dr.Min.X || x >= dr.Max.X || y < dr.Min.Y || y >= dr.Max.Y {
				return 0
			}
			_, _, _, a := mask.At(mp.X+x-dr.Min.X, mp.Y+y-dr.Min.Y).RGBA()
			return uint8(int(a>>8) * 0xaa / 0xff) // light grey over black
		})
		sr.glyphs[k] = ch // of look-alikes at this threshold ('!' and '.'), the last wins
	}
	return sr
}

// apply reads one FramebufferUpdate of raw rectangles into the picture.
func (sr *screenReader) apply(s *rfbStream) {
	s.t.Helper()
	h := s.read(4)
	if h[0] != 0 {
		s.t.Fatalf("server message %d, want an update", h[0])
	}
	for range int(binary.BigEndian.Uint16(h[2:])) {
		r := s.read(12)
		x, y := int(binary.BigEndian.Uint16(r)), int(binary.BigEndian.Uint16(r[2:]))
		w, hh := int(binary.BigEndian.Uint16(r[4:])), int(binary.BigEndian.Uint16(r[6:]))
		if enc := binary.BigEndian.Uint32(r[8:]); enc != 0 || x+w > sr.w || y+hh > sr.h {
			s.t.Fatalf("rectangle %d,%d %dx%d encoding %d", x, y, w, hh, enc)
		}
		p := s.read(w * hh * 4)
		for row := range hh {
			copy(sr.pix[((y+row)*sr.w+x)*4:], p[row*w*4:(row+1)*w*4])
		}
	}
}

// text is the screen's characters, '?' for a cell that is no glyph (the
// cursor's), rows ending in "\n".
func (sr *screenReader) text() string {
	var b strings.Builder
	for cy := range sr.h / 16 {
		for cx := range sr.w / 8 {
			k := inkBits(func(x, y int) uint8 { return sr.pix[((cy*16+y)*sr.w+cx*8+x)*4+1] })
			if ch, ok := sr.glyphs[k]; ok {
				b.WriteRune(ch)
			} else {
				b.WriteRune('?')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// readUntil asks for updates until the screen shows want, within 20 s.
func (sr *screenReader) readUntil(s *rfbStream, want string) string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.write([]byte{3, 1, 0, 0, 0, 0, byte(sr.w >> 8), byte(sr.w), byte(sr.h >> 8), byte(sr.h)})
		sr.apply(s)
		txt := sr.text()
		if strings.Contains(txt, want) {
			return txt
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen without %q:\n%s", want, txt)
		}
	}
}

// TestVNCTermSerial is the console of a VM whose display is its serial
// port, with a real QEMU: vncproxy, vncwebsocket, RFB with the one-time
// password through it, SeaBIOS's serial output on the framebuffer (read
// back glyph by glyph), ESC as a key event, the boot menu on the screen.
func TestVNCTermSerial(t *testing.T) {
	e := newEnv(t)
	e.startSeaBIOSConsoleVM("100", url.Values{"vga": {"serial0"}})
	srv := httptest.NewServer(e.Server)
	defer srv.Close()
	login := e.Login("admin").Ticket

	// A wrong password is refused with RFB's reason and fails the task.
	var vp vncProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	c, rd, refusal := wsDial(t, srv.URL, login, "100", vp.Port, vp.Ticket)
	if c == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	wrong := []byte(vp.Password)
	wrong[0] ^= 1
	s := &rfbStream{t: t, c: c, rd: rd}
	if r, reason := s.login(string(wrong)); r != 1 || reason != "Authentication failed" {
		t.Errorf("wrong password: result %d %q", r, reason)
	}
	if st := e.wait(vp.UPID); !strings.Contains(st, "authentication failed") {
		t.Errorf("task after a wrong password: %q", st)
	}
	c.Close()

	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	if vp.User != "admin@pve" || vp.Port < 5900 || vp.Port > 5999 || !strings.Contains(vp.UPID, ":vncproxy:100:admin@pve:") ||
		len(vp.Password) != 8 || !strings.HasPrefix(vp.Ticket, vp.Password+":PVEVNC:") {
		t.Fatalf("vncproxy answer: %+v", vp)
	}
	c, rd, refusal = wsDial(t, srv.URL, login, "100", vp.Port, vp.Ticket)
	if c == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	s = &rfbStream{t: t, c: c, rd: rd}
	if r, reason := s.login(vp.Password); r != 0 {
		t.Fatalf("refused: %d %q (task %s)", r, reason, e.wait(vp.UPID))
	}
	s.write([]byte{1}) // ClientInit, shared
	init := s.read(24)
	w, h := int(binary.BigEndian.Uint16(init)), int(binary.BigEndian.Uint16(init[2:]))
	if name := string(s.read(int(binary.BigEndian.Uint32(init[20:])))); w != 640 || h != 400 || name != "VM 100 serial0" {
		t.Fatalf("ServerInit %dx%d %q", w, h, name)
	}
	// The console holds the serial socket.
	if fn := e.serialChardev(100); strings.HasPrefix(fn, "disconnected:") {
		t.Errorf("serial0 with the console: %q", fn)
	}

	if st := e.task("POST", "/nodes/"+node+"/qemu/100/status/resume", nil); st != "OK" {
		t.Fatalf("resume: %s", st)
	}
	sr := newScreenReader(w, h)
	// The first request is non-incremental: the whole screen.
	s.write([]byte{3, 0, 0, 0, 0, 0, byte(w >> 8), byte(w), byte(h >> 8), byte(h)})
	sr.apply(s)
	sr.readUntil(s, "SeaBIOS")
	sr.readUntil(s, "Press ESC for boot menu")
	s.write([]byte{4, 1, 0, 0, 0, 0, 0xff, 0x1b, 4, 0, 0, 0, 0, 0, 0xff, 0x1b}) // Escape down, up
	sr.readUntil(s, "Select boot device:")

	// The client's end ends the task, OK.
	writeFrame(t, c, 8, []byte{0x03, 0xE8})
	c.Close()
	if st := e.wait(vp.UPID); st != "OK" {
		t.Errorf("task status %q", st)
	}
}

// TestVNCTermQmTerminalErrors: qm terminal's checks of a serial display
// fail the vncproxy task with its messages once a client is in.
func TestVNCTermQmTerminalErrors(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", url.Values{"vga": {"serial1"}})
	e.appendConfig("100", "serial1: /dev/ttyS0\n")
	e.createVM("101", url.Values{"vga": {"serial2"}})
	e.createVM("102", url.Values{"vga": {"serial0"}})
	e.appendConfig("102", "serial0: socket\n")
	for _, tt := range []struct{ vmid, want string }{
		{"100", "wrong serial type on interface 'serial1'"},
		{"101", "serial interface 'serial2' is not configured"},
		{"102", "VM 102 not running"},
	} {
		var vp vncProxyReply
		if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/"+tt.vmid+"/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", vp.Port))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("VM %s: got %q, %v; want the connection closed", tt.vmid, b, err)
		}
		c.Close()
		if st := e.wait(vp.UPID); st != tt.want {
			t.Errorf("VM %s: task %q, want %q", tt.vmid, st, tt.want)
		}
	}
}

// serialTerminal is pvedaemon's Deps.SerialTerminal: pkg/vncterm.
func serialTerminal(ctx context.Context, client net.Conn, serial io.ReadWriteCloser, password, name string) error {
	return vncterm.Serve(ctx, client, serial, vncterm.Options{Password: password, Name: name})
}
