package httpd

import (
	"net/http"
	"sync/atomic"
	"time"
)

// ServerName is the Server header PVE's API daemons send.
const ServerName = "pve-api-daemon/3.0"

// StdHeaders sets the headers PVE puts on every response, just before the
// header is sent: Server, Date, and for dynamic responses (those without
// Last-Modified) Expires equal to Date, Cache-Control: max-age=0 and Pragma:
// no-cache; handler-set values are kept. A response with status 400 or above
// gets Connection: close, so the connection ends after it, as with PVE.
func StdHeaders(next http.Handler) http.Handler {
	dates := new(dates)
	before := func(status int, h http.Header) { setStdHeaders(dates, status, h) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hookWriter{ResponseWriter: w, before: before}
		next.ServeHTTP(hw, r)
		hw.finish()
	})
}

func setStdHeaders(dates *dates, status int, h http.Header) {
	// Canonical keys used directly: this runs for every response.
	if len(h["Date"]) == 0 {
		h["Date"] = dates.value(time.Now())
	}
	h["Server"] = serverValue
	delete(h, NoCompressHeader) // already canonical
	if len(h["Last-Modified"]) == 0 {
		if len(h["Expires"]) == 0 {
			h["Expires"] = h["Date"]
		}
		setDefault(h, "Cache-Control", maxAgeZero)
		setDefault(h, "Pragma", noCache)
	}
	if status >= 400 {
		h["Connection"] = connectionClose
	}
}

// dateCache holds the HTTP date of the current second: formatting it costs
// more than the rest of the standard headers together.
type dateCache struct {
	sec   int64
	value []string // the date text, as a header value; never modified
}

// dates formats HTTP dates, reusing the text made for the same second.
type dates struct {
	last atomic.Pointer[dateCache]
}

// value returns t as an HTTP date (RFC 7231, GMT) header value.
func (d *dates) value(t time.Time) []string {
	sec := t.Unix()
	if c := d.last.Load(); c != nil && c.sec == sec {
		return c.value
	}
	v := []string{t.UTC().Format(http.TimeFormat)}
	d.last.Store(&dateCache{sec: sec, value: v})
	return v
}

// Header values shared by every response. They are never modified: a
// header value slice is replaced, not written to, by http.Header's methods
// (Add appends to a full slice, which copies it).
var (
	serverValue     = []string{ServerName}
	maxAgeZero      = []string{"max-age=0"}
	noCache         = []string{"no-cache"}
	connectionClose = []string{"close"}
)

// setDefault sets the canonical header key to v unless the handler set it.
func setDefault(h http.Header, key string, v []string) {
	if len(h[key]) == 0 {
		h[key] = v
	}
}
