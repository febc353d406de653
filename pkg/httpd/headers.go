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
	var date string
	if v := h["Date"]; len(v) > 0 {
		date = v[0]
	} else {
		date = dates.format(time.Now())
		h["Date"] = []string{date}
	}
	h["Server"] = []string{ServerName}
	delete(h, NoCompressHeader) // already canonical
	if len(h["Last-Modified"]) == 0 {
		setDefault(h, "Expires", date)
		setDefault(h, "Cache-Control", "max-age=0")
		setDefault(h, "Pragma", "no-cache")
	}
	if status >= 400 {
		h["Connection"] = []string{"close"}
	}
}

// dateCache holds the HTTP date of the current second: formatting it costs
// more than the rest of the standard headers together.
type dateCache struct {
	sec  int64
	text string
}

// dates formats HTTP dates, reusing the text made for the same second.
type dates struct {
	last atomic.Pointer[dateCache]
}

// format returns t as an HTTP date (RFC 7231, GMT).
func (d *dates) format(t time.Time) string {
	sec := t.Unix()
	if c := d.last.Load(); c != nil && c.sec == sec {
		return c.text
	}
	text := t.UTC().Format(http.TimeFormat)
	d.last.Store(&dateCache{sec: sec, text: text})
	return text
}

// setDefault sets the canonical header key to v unless the handler set it.
func setDefault(h http.Header, key, v string) {
	if len(h[key]) == 0 {
		h[key] = []string{v}
	}
}
