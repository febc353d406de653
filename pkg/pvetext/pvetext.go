// Package pvetext is PVE's percent-encoding of free text in its config
// files (PVE::ParseUtils::encode_text/decode_text: comments of user.cfg,
// guest configs, job files) and of cookie values.
package pvetext

import (
	"strings"
	"unicode/utf8"
)

// Encode encodes a free-text field: every control byte, '%', ':', DEL and
// every byte >= 0x80 as %XX (uppercase hex); space and all other printable
// ASCII stay.
func Encode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '%' || c == ':' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Decode reverses Encode: every %XX is decoded and the bytes are read as
// UTF-8, invalid sequences becoming U+FFFD.
func Decode(s string) string {
	d := Unescape(s)
	if utf8.ValidString(d) {
		return d
	}
	return strings.ToValidUTF8(d, "\uFFFD")
}

// Unescape decodes every %XX sequence (hex digits in either case) and keeps
// everything else, including '+' and malformed '%' sequences, unchanged.
func Unescape(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, i, len(s))
	copy(b, s[:i])
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
