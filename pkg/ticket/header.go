package ticket

import (
	"strings"

	"github.com/pvenode/pvenode/pkg/pvetext"
)

// Default credential names used by pveproxy.
const (
	// CookieName is the name of the login ticket cookie.
	CookieName = "PVEAuthCookie"
	// TokenName is the scheme name of API tokens in the Authorization header.
	TokenName = "PVEAPIToken"
)

// ExtractCookie finds name in an HTTP Cookie or Authorization header value
// the way PVE does: name at the start of the header or after whitespace,
// followed by '=' or a space, then everything up to the next ';' is the
// value, which is percent-decoded (%XX only; '+' stays '+'). ok is false if
// name is absent or its value is empty.
func ExtractCookie(header, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for s := 0; s+len(name) < len(header); s++ {
		if s > 0 && !isSpace(header[s-1]) {
			continue
		}
		if !strings.HasPrefix(header[s:], name) {
			continue
		}
		e := s + len(name)
		if header[e] != '=' && header[e] != ' ' {
			continue
		}
		v := header[e+1:]
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		if v == "" {
			return "", false
		}
		return Unescape(v), true
	}
	return "", false
}

// ParseAPIToken extracts an API token from an Authorization header value
// ("PVEAPIToken=<tokenid>=<secret>" or "PVEAPIToken <urlencoded value>"),
// splitting the value at its last '='. The token id is not validated here
// (see ParseTokenID).
func ParseAPIToken(authorization string) (tokenID, secret string, ok bool) {
	v, ok := ExtractCookie(authorization, TokenName)
	if !ok || strings.ContainsRune(v, '\n') {
		return "", "", false
	}
	i := strings.LastIndexByte(v, '=')
	if i < 0 {
		return "", "", false
	}
	return v[:i], v[i+1:], true
}

// FormatTokenHeader returns the Authorization header value pveproxy sends
// when it forwards an API token: "PVEAPIToken <urlencoded tokenid=secret>".
func FormatTokenHeader(tokenID, secret string) string {
	return TokenName + " " + Escape(tokenID+"="+secret)
}

// CookieHeader returns the cookie pveproxy sends when it forwards a ticket,
// which is also what the HTML login form sets:
// "PVEAuthCookie=<urlencoded ticket>; path=/; secure; SameSite=Lax;".
func CookieHeader(ticket string) string {
	const prefix, suffix = CookieName + "=", "; path=/; secure; SameSite=Lax;"
	b := make([]byte, 0, len(prefix)+escapedLen(ticket)+len(suffix))
	b = append(b, prefix...)
	b = appendEscaped(b, ticket)
	b = append(b, suffix...)
	return string(b)
}

// Escape percent-encodes every byte except the RFC 3986 unreserved
// characters A-Z a-z 0-9 - . _ ~, with uppercase hex digits.
func Escape(s string) string {
	n := escapedLen(s)
	if n == len(s) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, n), s))
}

// unreserved marks the bytes Escape keeps as they are.
var unreserved = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
	}
	return t
}()

// escapedLen is the length of Escape(s).
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !unreserved[s[i]] {
			n += 2
		}
	}
	return n
}

// appendEscaped appends Escape(s) to b.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return b
}

// Unescape decodes every %XX sequence (hex digits in either case) and keeps
// everything else, including '+' and malformed '%' sequences, unchanged.
func Unescape(s string) string { return pvetext.Unescape(s) }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
