package httpd

import (
	"net/http"
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hookWriter{ResponseWriter: w, before: setStdHeaders}
		next.ServeHTTP(hw, r)
		hw.finish()
	})
}

func setStdHeaders(status int, h http.Header) {
	date := h.Get("Date")
	if date == "" {
		date = time.Now().UTC().Format(http.TimeFormat)
		h.Set("Date", date)
	}
	h.Set("Server", ServerName)
	if h.Get("Last-Modified") == "" {
		setDefault(h, "Expires", date)
		setDefault(h, "Cache-Control", "max-age=0")
		setDefault(h, "Pragma", "no-cache")
	}
	if status >= 400 {
		h.Set("Connection", "close")
	}
}

func setDefault(h http.Header, key, val string) {
	if _, ok := h[key]; !ok {
		h.Set(key, val)
	}
}
