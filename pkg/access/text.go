package access

import (
	"strings"
)

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
