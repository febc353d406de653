package access

import (
	"strings"
	"unicode/utf8"

	"github.com/pvenode/pvenode/pkg/ticket"
)

// EncodeText encodes a free-text field (first name, last name, comment) for
// user.cfg: the UTF-8 bytes with every control byte, '%', ':', DEL and every
// byte >= 0x80 percent-encoded (uppercase hex); space and all other
// printable ASCII stay.
func EncodeText(s string) string {
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

// DecodeText reverses EncodeText: every %XX is decoded and the bytes are
// read as UTF-8, invalid sequences becoming U+FFFD.
func DecodeText(s string) string {
	d := ticket.Unescape(s)
	if utf8.ValidString(d) {
		return d
	}
	return strings.ToValidUTF8(d, "\uFFFD")
}

// SplitList splits a list field on ',', ';' and whitespace, dropping empty
// items (PVE's split_list). A list containing a NUL byte is split on NUL
// only, dropping trailing empty items as Perl's split does.
func SplitList(s string) []string {
	if strings.IndexByte(s, 0) >= 0 {
		if s = strings.TrimRight(s, "\x00"); s == "" {
			return nil
		}
		return strings.Split(s, "\x00")
	}
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
	})
}

// perlTrue reports whether a field is true in Perl's sense: neither empty
// nor "0".
func perlTrue(s string) bool { return s != "" && s != "0" }

// trimSpace trims the bytes Perl's \s matches.
func trimSpace(s string) string { return strings.Trim(s, " \t\n\v\f\r") }

// boolDigit renders b as "1" or "0".
func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
