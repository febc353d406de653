package httpd

import (
	"bufio"
	"net"
	"net/http"
)

// hookWriter calls before once, just before the response header is sent
// (first WriteHeader, Write or Flush). Flush and Hijack are methods of their
// own because gzhttp and older handlers use type assertions; they reach the
// connection through http.ResponseController, as does everything else via
// Unwrap.
type hookWriter struct {
	http.ResponseWriter
	before func(status int, h http.Header)
	fired  bool // before was called, or the connection was hijacked
}

// finish calls before for a handler that returned without writing anything
// (net/http then sends an empty 200 with the header map as it is).
func (w *hookWriter) finish() { w.fire(http.StatusOK) }

func (w *hookWriter) fire(status int) {
	if w.fired {
		return
	}
	w.fired = true
	w.before(status, w.ResponseWriter.Header())
}

func (w *hookWriter) WriteHeader(status int) {
	if status >= 100 && status <= 199 && status != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(status) // informational, the real header follows
		return
	}
	w.fire(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *hookWriter) Write(b []byte) (int, error) {
	w.fire(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *hookWriter) Flush() {
	w.fire(http.StatusOK)
	_ = http.NewResponseController(w.ResponseWriter).Flush() // not flushable: nothing to do
}

func (w *hookWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.fired = true // the header is the hijacker's business now
	}
	return c, rw, err
}

func (w *hookWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ http.Flusher  = (*hookWriter)(nil)
	_ http.Hijacker = (*hookWriter)(nil)
)

// recorder remembers the status and the number of body bytes written through
// it, for the access log.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
}

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 && (status < 100 || status > 199 || status == http.StatusSwitchingProtocols) {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush() // not flushable: nothing to do
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ http.Flusher  = (*recorder)(nil)
	_ http.Hijacker = (*recorder)(nil)
)
