package audit

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Event kinds: the value of the "event" field.
const (
	// KindLogin is a login (POST /access/ticket, creating or verifying a
	// ticket), successful or not.
	KindLogin = "login"
	// KindAuth is a refused authentication: no credentials, a bad ticket or
	// token, a token used from outside its allowed networks, a bad CSRF
	// token (any call answered 401 except a login).
	KindAuth = "auth"
	// KindPerm is a permission denial (any call answered 403).
	KindPerm = "perm"
	// KindWrite is a POST, PUT or DELETE call that was neither refused
	// authentication nor permission, with its final status.
	KindWrite = "write"
	// KindDropped reports events the logger had to drop (see Logger).
	KindDropped = "dropped"
)

// Results: the value of the "result" field.
const (
	ResultOK     = "ok"
	ResultFail   = "fail"
	ResultDenied = "denied"
)

// MaxReason bounds the reason field, in bytes.
const MaxReason = 256

// Event is one audit record.
type Event struct {
	// Time is when the outcome was known; zero means the Logger's clock at
	// Record.
	Time time.Time
	// Kind is one of the Kind constants.
	Kind string
	// Status is the API status of the call: the HTTP status, or for the
	// extjs format (which answers errors with HTTP 200) the status in the
	// envelope.
	Status int
	// User is the user or full token id ("admin@pve!ci"): the authenticated
	// one, or for a refusal the one the credentials claimed ("" if none).
	User string
	// Client is the client address (PROXY_REAL_IP_HEADER applied as for the
	// access log); Peer is the TCP peer, recorded only when it differs.
	Client, Peer netip.Addr
	Method, Path string
	// Reason says why a call was refused or failed, or for a success what
	// the call noted (a login waiting for its second factor); it is cut to
	// MaxReason bytes.
	Reason string
}

// Result returns the result word of e: "denied" for a permission denial,
// "fail" for a refused authentication and for a login or write with a
// status of 400 or more, "ok" otherwise.
func (e *Event) Result() string {
	switch {
	case e.Kind == KindPerm:
		return ResultDenied
	case e.Kind == KindAuth, e.Status >= 400:
		return ResultFail
	}
	return ResultOK
}

// timeFormat is RFC 3339 with milliseconds and the numeric zone.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// AppendLine appends e as one JSON line (with the newline) to b. daemon is
// the name of the recording daemon. The keys come in a fixed order; "peer"
// and "reason" are left out when empty.
func AppendLine(b []byte, daemon string, e *Event) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, timeFormat)
	b = append(b, `","daemon":`...)
	b = appendString(b, daemon)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"result":"`...)
	b = append(b, e.Result()...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"user":`...)
	b = appendString(b, e.User)
	b = append(b, `,"client":"`...)
	b = appendAddr(b, e.Client)
	b = append(b, '"')
	if e.Peer.IsValid() && e.Peer != e.Client {
		b = append(b, `,"peer":"`...)
		b = appendAddr(b, e.Peer)
		b = append(b, '"')
	}
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, cut(e.Reason, MaxReason))
	}
	return append(b, "}\n"...)
}

// appendDropped appends the line that reports n dropped events.
func appendDropped(b []byte, daemon string, now time.Time, n uint64) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, timeFormat)
	b = append(b, `","daemon":`...)
	b = appendString(b, daemon)
	b = append(b, `,"event":"dropped","count":`...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, "}\n"...)
}

// appendAddr appends a (an invalid address as the empty string).
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	return a.AppendTo(b)
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
