package vncterm

import "unicode/utf8"

// X11 keysyms the terminal handles (X11's keysymdef.h).
const (
	ksBackSpace   = 0xff08
	ksTab         = 0xff09
	ksReturn      = 0xff0d
	ksEscape      = 0xff1b
	ksHome        = 0xff50
	ksLeft        = 0xff51
	ksUp          = 0xff52
	ksRight       = 0xff53
	ksDown        = 0xff54
	ksPageUp      = 0xff55
	ksPageDown    = 0xff56
	ksEnd         = 0xff57
	ksInsert      = 0xff63
	ksKPEnter     = 0xff8d
	ksF1          = 0xffbe
	ksF12         = 0xffc9
	ksControlL    = 0xffe3
	ksControlR    = 0xffe4
	ksMetaL       = 0xffe7
	ksMetaR       = 0xffe8
	ksAltL        = 0xffe9
	ksAltR        = 0xffea
	ksDelete      = 0xffff
	ksISOLeftTab  = 0xfe20
	ksUnicodeBase = 0x01000000
)

// keyState is what the terminal needs to know of the keyboard: the
// modifiers held.
type keyState struct {
	ctrl, alt bool
}

// event takes a KeyEvent and returns the bytes an xterm sends to the
// program for it (nil for none); appCursor is DECCKM (cursor keys send
// ESC O x instead of ESC [ x).
func (k *keyState) event(keysym uint32, down, appCursor bool) []byte {
	switch keysym {
	case ksControlL, ksControlR:
		k.ctrl = down
		return nil
	case ksAltL, ksAltR, ksMetaL, ksMetaR:
		k.alt = down
		return nil
	}
	if !down {
		return nil
	}
	b := keyBytes(keysym, k.ctrl, appCursor)
	if b != nil && k.alt {
		b = append([]byte{0x1b}, b...)
	}
	return b
}

// keyBytes is the bytes of one key press.
func keyBytes(keysym uint32, ctrl, appCursor bool) []byte {
	cursor := func(c byte) []byte {
		if appCursor {
			return []byte{0x1b, 'O', c}
		}
		return []byte{0x1b, '[', c}
	}
	switch keysym {
	case ksBackSpace:
		return []byte{0x7f}
	case ksTab:
		return []byte{'\t'}
	case ksISOLeftTab:
		return []byte("\x1b[Z")
	case ksReturn, ksKPEnter:
		return []byte{'\r'}
	case ksEscape:
		return []byte{0x1b}
	case ksUp:
		return cursor('A')
	case ksDown:
		return cursor('B')
	case ksRight:
		return cursor('C')
	case ksLeft:
		return cursor('D')
	case ksHome:
		return cursor('H')
	case ksEnd:
		return cursor('F')
	case ksInsert:
		return []byte("\x1b[2~")
	case ksDelete:
		return []byte("\x1b[3~")
	case ksPageUp:
		return []byte("\x1b[5~")
	case ksPageDown:
		return []byte("\x1b[6~")
	}
	if keysym >= ksF1 && keysym <= ksF12 {
		return []byte(functionKeys[keysym-ksF1])
	}
	var r rune
	switch {
	case keysym >= 0x20 && keysym <= 0x7e, keysym >= 0xa0 && keysym <= 0xff: // Latin-1 keysyms are the code points
		r = rune(keysym)
	case keysym >= ksUnicodeBase+0x20 && keysym <= ksUnicodeBase+0x10ffff:
		r = rune(keysym - ksUnicodeBase)
	default:
		return nil
	}
	if ctrl {
		if c, ok := controlCode(r); ok {
			return []byte{c}
		}
	}
	return utf8.AppendRune(nil, r)
}

// functionKeys is what F1..F12 send (xterm).
var functionKeys = [12]string{
	"\x1bOP", "\x1bOQ", "\x1bOR", "\x1bOS",
	"\x1b[15~", "\x1b[17~", "\x1b[18~", "\x1b[19~", "\x1b[20~", "\x1b[21~", "\x1b[23~", "\x1b[24~",
}

// controlCode is Ctrl+r: letters and @[\]^_ give C0 codes, space and 2 NUL.
func controlCode(r rune) (byte, bool) {
	switch {
	case r >= 'a' && r <= 'z':
		return byte(r - 'a' + 1), true
	case r >= '@' && r <= '_':
		return byte(r - '@'), true
	case r == ' ', r == '2':
		return 0, true
	case r == '?':
		return 0x7f, true
	}
	return 0, false
}
