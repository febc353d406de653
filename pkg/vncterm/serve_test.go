package vncterm

import (
	"bufio"
	"context"
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/math/fixed"
)

const testPassword = "s3cr3t!x"

// session is a Serve under test: an RFB client on one side, the backend's
// other end on the other.
type session struct {
	t       *testing.T
	cli     net.Conn
	rd      *bufio.Reader
	backend net.Conn // what the VM's serial port would be
	result  chan error
	cancel  context.CancelFunc
}

// startServe runs Serve on loopback TCP with a pipe backend.
func startServe(t *testing.T, opts Options) *session {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	backendOurs, backendTheirs := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{t: t, cli: cli, rd: bufio.NewReader(cli), backend: backendTheirs, result: make(chan error, 1), cancel: cancel}
	go func() { s.result <- Serve(ctx, srv, backendOurs, opts) }()
	t.Cleanup(func() {
		cancel()
		cli.Close()
		backendTheirs.Close()
		select {
		case <-s.result:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after the test")
		}
	})
	_ = cli.SetDeadline(time.Now().Add(10 * time.Second))
	return s
}

// wait returns Serve's result, within 5 s.
func (s *session) wait() error {
	s.t.Helper()
	select {
	case err := <-s.result:
		s.result <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		s.t.Fatal("Serve did not return")
		return nil
	}
}

func (s *session) write(b []byte) {
	s.t.Helper()
	if _, err := s.cli.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) read(n int) []byte {
	s.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rd, b); err != nil {
		s.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func (s *session) u32() uint32 { s.t.Helper(); return binary.BigEndian.Uint32(s.read(4)) }

// serverInitMsg is what ServerInit said.
type serverInitMsg struct {
	width, height int
	pf            []byte
	name          string
}

// login runs the client's handshake as a 3.minor client with password
// and returns the SecurityResult (and for a failure the reason, 3.8).
func (s *session) login(minor int, password string) (result uint32, reason string) {
	s.t.Helper()
	if v := string(s.read(12)); v != "RFB 003.008\n" {
		s.t.Fatalf("server version %q", v)
	}
	s.write(fmt.Appendf(nil, "RFB 003.%03d\n", minor))
	if minor >= 7 {
		n := s.read(1)[0]
		types := s.read(int(n))
		if string(types) != "\x02" {
			s.t.Fatalf("security types %v, want [2]", types)
		}
		s.write([]byte{2})
	} else if typ := s.u32(); typ != 2 {
		s.t.Fatalf("3.3 security type %d", typ)
	}
	var challenge [16]byte
	copy(challenge[:], s.read(16))
	resp := desResponse(password, challenge)
	s.write(resp[:])
	result = s.u32()
	if result != 0 && minor >= 8 {
		reason = string(s.read(int(s.u32())))
	}
	return result, reason
}

// desResponse is the VNC authentication response: the server's
// function, checked against a key worked out by hand in
// TestVNCAuthResponse.
func desResponse(password string, challenge [16]byte) [16]byte {
	return vncAuthResponse(password, challenge)
}

// init sends ClientInit and reads ServerInit.
func (s *session) init() serverInitMsg {
	s.t.Helper()
	s.write([]byte{1})
	var m serverInitMsg
	h := s.read(24)
	m.width, m.height = int(binary.BigEndian.Uint16(h)), int(binary.BigEndian.Uint16(h[2:]))
	m.pf = h[4:20]
	m.name = string(s.read(int(binary.BigEndian.Uint32(h[20:]))))
	return m
}

// connect logs in as a 3.8 client and reads ServerInit.
func (s *session) connect() serverInitMsg {
	s.t.Helper()
	if r, reason := s.login(8, testPassword); r != 0 {
		s.t.Fatalf("login refused: %s", reason)
	}
	return s.init()
}

func (s *session) request(incremental bool, x, y, w, h int) {
	s.t.Helper()
	b := []byte{3, 0}
	if incremental {
		b[1] = 1
	}
	for _, v := range []int{x, y, w, h} {
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	s.write(b)
}

// rect is one raw rectangle of an update.
type rect struct {
	x, y, w, h int
	pixels     []byte
}

// readUpdate reads one FramebufferUpdate of raw rectangles, bpp bytes a
// pixel.
func (s *session) readUpdate(bpp int) []rect {
	s.t.Helper()
	h := s.read(4)
	if h[0] != 0 {
		s.t.Fatalf("message type %d, want FramebufferUpdate", h[0])
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	rects := make([]rect, n)
	for i := range rects {
		r := s.read(12)
		rc := rect{x: int(binary.BigEndian.Uint16(r)), y: int(binary.BigEndian.Uint16(r[2:])),
			w: int(binary.BigEndian.Uint16(r[4:])), h: int(binary.BigEndian.Uint16(r[6:]))}
		if enc := int32(binary.BigEndian.Uint32(r[8:])); enc != 0 {
			s.t.Fatalf("encoding %d, want raw", enc)
		}
		rc.pixels = s.read(rc.w * rc.h * bpp)
		rects[i] = rc
	}
	return rects
}

// framebuffer is the client's picture, 32-bit pixels as the server's
// default format sends them.
type framebuffer struct {
	w, h int
	pix  []uint32
}

func newFramebuffer(w, h int) *framebuffer {
	return &framebuffer{w: w, h: h, pix: make([]uint32, w*h)}
}

func (fb *framebuffer) apply(t *testing.T, rects []rect) {
	t.Helper()
	for _, r := range rects {
		if r.x+r.w > fb.w || r.y+r.h > fb.h {
			t.Fatalf("rectangle %+v outside %dx%d", r, fb.w, fb.h)
		}
		for y := range r.h {
			for x := range r.w {
				fb.pix[(r.y+y)*fb.w+r.x+x] = binary.LittleEndian.Uint32(r.pixels[(y*r.w+x)*4:])
			}
		}
	}
}

// checkGlyph checks that cell (cx, cy) shows ch in fg on bg: each pixel
// is fg over bg by the font's coverage of it.
func (fb *framebuffer) checkGlyph(t *testing.T, cx, cy int, ch rune, fg, bg uint32) {
	t.Helper()
	face := fontFace(false)
	dr, mask, mp, _, ok := face.Glyph(fixed.P(0, face.Ascent), ch)
	if !ok {
		t.Fatalf("font lacks %q", ch)
	}
	covered := 0
	for y := range cellHeight {
		for x := range cellWidth {
			var a uint32
			if x >= dr.Min.X && x < dr.Max.X && y >= dr.Min.Y && y < dr.Max.Y {
				_, _, _, a = mask.At(mp.X+x-dr.Min.X, mp.Y+y-dr.Min.Y).RGBA()
				a >>= 8
			}
			got := fb.pix[(cy*cellHeight+y)*fb.w+cx*cellWidth+x]
			if a > 0 {
				covered++
			}
			// Each channel is the font's coverage of fg over bg, ±1.
			for sh := 0; sh < 24; sh += 8 {
				f, b, g := int(fg>>sh&0xff), int(bg>>sh&0xff), int(got>>sh&0xff)
				want := (f*int(a) + b*(255-int(a))) / 255
				if g < want-1 || g > want+1 {
					t.Fatalf("cell %d,%d %q pixel %d,%d: %06x, want coverage %d of %06x over %06x", cx, cy, ch, x, y, got, a, fg, bg)
				}
			}
		}
	}
	if covered == 0 {
		t.Fatalf("%q: no pixel of the glyph in the cell", ch)
	}
}

// blankCell says whether cell (cx, cy) is all c.
func (fb *framebuffer) blankCell(cx, cy int, c uint32) bool {
	for y := range cellHeight {
		for x := range cellWidth {
			if fb.pix[(cy*cellHeight+y)*fb.w+cx*cellWidth+x] != c {
				return false
			}
		}
	}
	return true
}

// TestVNCAuthResponse: the response is DES of the challenge with the
// password's bytes bit-reversed as the key (RFB's quirk), "password"'s
// key worked out by hand here.
func TestVNCAuthResponse(t *testing.T) {
	var ch [16]byte
	for i := range ch {
		ch[i] = byte(i * 17)
	}
	// p=0x70→0x0e a=0x61→0x86 s=0x73→0xce w=0x77→0xee o=0x6f→0xf6
	// r=0x72→0x4e d=0x64→0x26
	c, err := des.NewCipher([]byte{0x0e, 0x86, 0xce, 0xce, 0xee, 0xf6, 0x4e, 0x26})
	if err != nil {
		t.Fatal(err)
	}
	var want [16]byte
	c.Encrypt(want[:8], ch[:8])
	c.Encrypt(want[8:], ch[8:])
	if got := vncAuthResponse("password", ch); got != want {
		t.Errorf("response %x, want %x", got, want)
	}
	// Only the first 8 password bytes count; shorter ones are zero-padded.
	if vncAuthResponse("password-and-more", ch) != want {
		t.Error("bytes past the 8th changed the response")
	}
	if vncAuthResponse("passwore", ch) == want || vncAuthResponse("passwor", ch) == want {
		t.Error("another password gave the same response")
	}
}

// TestHandshake: 3.3, 3.7 and 3.8 clients (and 3.5 as 3.3, 3.889 as 3.8)
// log in and get the framebuffer's size, the 32-bit pixel format and the
// name.
func TestHandshake(t *testing.T) {
	for _, minor := range []int{3, 5, 7, 8, 889} {
		t.Run(fmt.Sprint(minor), func(t *testing.T) {
			s := startServe(t, Options{Password: testPassword, Name: "VM 100 serial0"})
			if r, reason := s.login(minor, testPassword); r != 0 {
				t.Fatalf("refused: %d %q", r, reason)
			}
			m := s.init()
			if m.width != 80*8 || m.height != 25*16 || m.name != "VM 100 serial0" {
				t.Errorf("ServerInit %dx%d %q", m.width, m.height, m.name)
			}
			want := []byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
			if string(m.pf) != string(want) {
				t.Errorf("pixel format % x", m.pf)
			}
		})
	}
}

// TestWrongPassword: refused with the 3.8 reason (none for 3.3/3.7), and
// Serve says so.
func TestWrongPassword(t *testing.T) {
	for _, minor := range []int{3, 7, 8} {
		t.Run(fmt.Sprint(minor), func(t *testing.T) {
			s := startServe(t, Options{Password: testPassword})
			r, reason := s.login(minor, "wrong")
			if r != 1 {
				t.Fatalf("result %d", r)
			}
			if minor == 8 && reason != "Authentication failed" {
				t.Errorf("reason %q", reason)
			}
			if err := s.wait(); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("Serve: %v", err)
			}
			// The connection is closed.
			if _, err := s.rd.ReadByte(); err == nil {
				t.Error("connection still open")
			}
		})
	}
}

// TestHandshakeRefusals: no "None" security, no other protocol, and a
// client that says nothing is dropped after the handshake timeout.
func TestHandshakeRefusals(t *testing.T) {
	t.Run("security None", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.read(12)
		s.write([]byte("RFB 003.008\n"))
		s.read(2)
		s.write([]byte{1})
		if r := s.u32(); r != 1 {
			t.Errorf("result %d", r)
		}
		if err := s.wait(); err == nil || !strings.Contains(err.Error(), "security type 1") {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("not RFB", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.read(12)
		s.write([]byte("GET / HTTP/1\n"))
		if err := s.wait(); err == nil || !strings.Contains(err.Error(), "bad protocol version") {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword, HandshakeTimeout: 100 * time.Millisecond})
		start := time.Now()
		if err := s.wait(); err == nil || time.Since(start) > 3*time.Second {
			t.Errorf("Serve: %v after %v", err, time.Since(start))
		}
	})
	t.Run("no password", func(t *testing.T) {
		s := startServe(t, Options{})
		if err := s.wait(); err == nil {
			t.Error("served without a password")
		}
	})
}

// TestRenderText: the backend's "hello" shows in the glyphs of the font,
// light grey on black, the cursor after it reversed, the rest black; a
// red "x" then comes as an incremental update.
func TestRenderText(t *testing.T) {
	s := startServe(t, Options{Password: testPassword, Cols: 20, Rows: 4})
	m := s.connect()
	fb := newFramebuffer(m.width, m.height)
	if _, err := s.backend.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The first update may show the screen before the backend's bytes
	// arrived: ask until "hello" is there.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.request(false, 0, 0, m.width, m.height)
		fb.apply(t, s.readUpdate(4))
		if !fb.blankCell(4, 0, 0) || time.Now().After(deadline) {
			break
		}
	}
	const grey, black = 0xaaaaaa, 0x000000
	for i, ch := range "hello" {
		fb.checkGlyph(t, i, 0, ch, grey, black)
	}
	if !fb.blankCell(5, 0, grey) {
		t.Error("no cursor at column 5")
	}
	for _, c := range [][2]int{{6, 0}, {19, 0}, {0, 1}, {19, 3}} {
		if !fb.blankCell(c[0], c[1], black) {
			t.Errorf("cell %v not blank", c)
		}
	}

	// Incremental: nothing changed, so no answer yet.
	s.request(true, 0, 0, m.width, m.height)
	_ = s.cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := s.rd.Peek(1); err == nil {
		t.Fatal("incremental update without a change")
	}
	_ = s.cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.backend.Write([]byte("\x1b[31mx")); err != nil {
		t.Fatal(err)
	}
	rects := s.readUpdate(4)
	if len(rects) != 1 || rects[0].y != 0 || rects[0].x != 5*8 || rects[0].w != 2*8 {
		t.Errorf("incremental update: %d rects, first %+v", len(rects), rects[0])
	}
	fb.apply(t, rects)
	fb.checkGlyph(t, 5, 0, 'x', 0xaa0000, black)
	fb.checkGlyph(t, 0, 0, 'h', grey, black)
}

// TestPixelFormat16: after SetPixelFormat RGB565 the pixels are 2 bytes;
// a colour-map format ends the session with a clear error.
func TestPixelFormat16(t *testing.T) {
	s := startServe(t, Options{Password: testPassword, Cols: 4, Rows: 1})
	m := s.connect()
	pf := []byte{0, 0, 0, 0, 16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0}
	s.write(pf)
	if _, err := s.backend.Write([]byte("\x1b[?25l\x1b[47m \x1b[44m ")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	s.request(false, 0, 0, m.width, m.height)
	rects := s.readUpdate(2)
	if len(rects) != 1 || rects[0].w != 32 {
		t.Fatalf("rects %+v", rects)
	}
	px := func(x int) uint16 { return binary.LittleEndian.Uint16(rects[0].pixels[x*2:]) }
	// aaaaaa in 565: 21,42,21; 0000aa: 0,0,21.
	if got, want := px(0), uint16(21<<11|42<<5|21); got != want {
		t.Errorf("light grey: %04x, want %04x", got, want)
	}
	if got, want := px(8), uint16(21); got != want {
		t.Errorf("blue: %04x, want %04x", got, want)
	}

	s.write([]byte{0, 0, 0, 0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if err := s.wait(); err == nil || !strings.Contains(err.Error(), "colour map") {
		t.Errorf("Serve after a colour-map format: %v", err)
	}
}

// TestKeys: key events reach the backend as an xterm's bytes.
func TestKeys(t *testing.T) {
	s := startServe(t, Options{Password: testPassword})
	s.connect()
	key := func(sym uint32, down bool) []byte {
		b := []byte{4, 0, 0, 0}
		if down {
			b[1] = 1
		}
		return binary.BigEndian.AppendUint32(b, sym)
	}
	var msgs []byte
	for _, k := range []struct {
		sym  uint32
		down bool
	}{
		{'l', true}, {'l', false}, {ksReturn, true}, {ksControlL, true}, {'c', true}, {ksControlL, false},
		{ksUp, true}, {ksEscape, true},
	} {
		msgs = append(msgs, key(k.sym, k.down)...)
	}
	// Other messages in between are read and ignored.
	msgs = append(msgs, 5, 0, 0, 1, 0, 1) // PointerEvent
	msgs = append(msgs, 6, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c')
	msgs = append(msgs, 2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1) // SetEncodings raw, CopyRect
	msgs = append(msgs, key(ksF5, true)...)
	s.write(msgs)
	want := "l\r\x03\x1b[A\x1b\x1b[15~"
	got := make([]byte, len(want))
	_ = s.backend.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s.backend, got); err != nil || string(got) != want {
		t.Errorf("backend got %q (%v), want %q", got, err, want)
	}
}

const ksF5 = ksF1 + 4

// TestKeyBytes is the keysym table.
func TestKeyBytes(t *testing.T) {
	for _, tt := range []struct {
		sym             uint32
		ctrl, appCursor bool
		want            string
	}{
		{'a', false, false, "a"},
		{'A', false, false, "A"},
		{'~', false, false, "~"},
		{0xe9, false, false, "é"}, // eacute, Latin-1
		{ksUnicodeBase + 0x20ac, false, false, "€"},
		{ksReturn, false, false, "\r"},
		{ksKPEnter, false, false, "\r"},
		{ksBackSpace, false, false, "\x7f"},
		{ksTab, false, false, "\t"},
		{ksISOLeftTab, false, false, "\x1b[Z"},
		{ksEscape, false, false, "\x1b"},
		{ksUp, false, false, "\x1b[A"},
		{ksDown, false, false, "\x1b[B"},
		{ksRight, false, false, "\x1b[C"},
		{ksLeft, false, false, "\x1b[D"},
		{ksUp, false, true, "\x1bOA"},
		{ksHome, false, false, "\x1b[H"},
		{ksEnd, false, false, "\x1b[F"},
		{ksPageUp, false, false, "\x1b[5~"},
		{ksPageDown, false, false, "\x1b[6~"},
		{ksInsert, false, false, "\x1b[2~"},
		{ksDelete, false, false, "\x1b[3~"},
		{ksF1, false, false, "\x1bOP"},
		{ksF1 + 3, false, false, "\x1bOS"},
		{ksF5, false, false, "\x1b[15~"},
		{ksF1 + 10, false, false, "\x1b[23~"},
		{ksF12, false, false, "\x1b[24~"},
		{'c', true, false, "\x03"},
		{'C', true, false, "\x03"},
		{'[', true, false, "\x1b"},
		{' ', true, false, "\x00"},
		{'1', true, false, "1"},
		{0xffe1, false, false, ""}, // Shift alone
		{0xfe50, false, false, ""}, // a dead key
	} {
		if got := string(keyBytes(tt.sym, tt.ctrl, tt.appCursor)); got != tt.want {
			t.Errorf("keysym %#x ctrl %v: %q, want %q", tt.sym, tt.ctrl, got, tt.want)
		}
	}
	// Alt prefixes ESC; releases send nothing.
	var k keyState
	k.event(ksAltL, true, false)
	if got := string(k.event('x', true, false)); got != "\x1bx" {
		t.Errorf("Alt+x: %q", got)
	}
	if got := k.event('x', false, false); got != nil {
		t.Errorf("release: %q", got)
	}
}

// TestBurst: 8 MiB from the backend while the client asks for nothing
// are taken in as they come (the backend never blocks on the client),
// without the heap growing with them, and the next update shows the last
// state only.
func TestBurst(t *testing.T) {
	s := startServe(t, Options{Password: testPassword, Cols: 80, Rows: 25})
	m := s.connect()
	lines := []byte(strings.Repeat(strings.Repeat("0123456789", 7)+"abcdefghij\r\n", 64))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_ = s.backend.SetWriteDeadline(time.Now().Add(20 * time.Second))
	const total = 8 << 20
	for n := 0; n < total; n += len(lines) {
		if _, err := s.backend.Write(lines); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.backend.Write([]byte("END")); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2<<20 {
		t.Errorf("heap grew by %d bytes during an 8 MiB burst", grown)
	}
	time.Sleep(50 * time.Millisecond)
	s.request(false, 0, 0, m.width, m.height)
	rects := s.readUpdate(4)
	if len(rects) != 25 {
		t.Errorf("full update of %d rects, want one a row", len(rects))
	}
	fb := newFramebuffer(m.width, m.height)
	fb.apply(t, rects)
	fb.checkGlyph(t, 0, 24, 'E', 0xaaaaaa, 0)
	fb.checkGlyph(t, 79, 23, 'j', 0xaaaaaa, 0)
}

// TestEnds: Serve returns when the backend ends, when the client ends,
// and when the context is cancelled, with a stalled client too.
func TestEnds(t *testing.T) {
	t.Run("backend", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.connect()
		s.backend.Close()
		if err := s.wait(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("client", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.connect()
		s.cli.Close()
		if err := s.wait(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("cancel with a stalled client", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword, Cols: 120, Rows: 60})
		m := s.connect()
		// Ask for updates and never read them: the server blocks writing.
		for range 50 {
			s.request(false, 0, 0, m.width, m.height)
		}
		time.Sleep(100 * time.Millisecond)
		s.cancel()
		if err := s.wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("bad message", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.connect()
		s.write([]byte{99})
		if err := s.wait(); err == nil || !strings.Contains(err.Error(), "unknown client message type 99") {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("cut text too long", func(t *testing.T) {
		s := startServe(t, Options{Password: testPassword})
		s.connect()
		s.write([]byte{6, 0, 0, 0, 0x10, 0, 0, 0})
		if err := s.wait(); err == nil || !strings.Contains(err.Error(), "cut text") {
			t.Errorf("Serve: %v", err)
		}
	})
}

// FuzzClientMessages: any bytes from the client are messages or an
// error, never a panic, and parsing ends.
func FuzzClientMessages(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 2, 128, 1, 144})
	f.Add([]byte{4, 1, 0, 0, 0, 0, 0xff, 0x0d, 5, 0, 0, 1, 0, 1, 6, 0, 0, 0, 0, 0, 0, 1, 'x'})
	f.Add([]byte{0, 0, 0, 0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(strings.NewReader(string(data)))
		for range len(data) + 1 {
			m, err := readClientMessage(r)
			if err != nil {
				return
			}
			if m.typ == msgSetPixelFormat && (!m.pf.trueColour || m.pf.bytesPerPixel() == 0) {
				t.Fatalf("accepted pixel format %+v", m.pf)
			}
		}
		t.Fatal("more messages than bytes")
	})
}
