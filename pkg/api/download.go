package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Download is a handler result sent as the answer's body instead of the
// JSON envelope, whatever the format asked (json or extjs), as PVE's
// pve-http-server sends a method's {download => {...}} result. Only a method
// declared with DownloadAllowed may return one (*Download or Download).
//
// The body is copied to the client as it is read, never held whole. The
// answer is 200 with Content-Type, Content-Disposition when Filename is set,
// and Content-Length when the size is known (otherwise it is chunked, as
// PVE streams it). Compression is left to the edge: pveproxy gzips a body
// of more than 1024 bytes for a client that accepts gzip (PVE's handlers
// gzip some downloads themselves, whatever the client accepts).
//
// A body that fails to read after the header was sent cuts the connection,
// so the client sees an incomplete download rather than a short file.
type Download struct {
	// Path is a file to send; the server opens it, in the daemon that runs
	// the handler. Its size when opened is sent as Content-Length, and that
	// many bytes are sent (a file that grows meanwhile is sent as it was).
	Path string
	// Body is the content when Path is empty; the server closes it.
	Body io.ReadCloser
	// Size is the length of Body, sent as Content-Length, when positive;
	// otherwise Body is sent until it ends.
	Size int64
	// ContentType defaults to application/octet-stream.
	ContentType string
	// Filename, if set, makes the answer an attachment of that name
	// (Content-Disposition: attachment; filename="...").
	Filename string
}

// asDownload returns the download a handler answered, if it is one.
func asDownload(data any) (*Download, bool) {
	switch d := data.(type) {
	case *Download:
		return d, d != nil
	case Download:
		return &d, true
	}
	return nil, false
}

// open returns the body to send and its length, if known.
func (d *Download) open() (body io.ReadCloser, size int64, known bool, err error) {
	if d.Path == "" {
		if d.Body == nil {
			return nil, 0, false, errors.New("internal error: download without a path or a body")
		}
		return d.Body, d.Size, d.Size > 0, nil
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return nil, 0, false, fmt.Errorf("open stream path '%s' for reading failed: %s", d.Path, strerror(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, false, fmt.Errorf("stat '%s' failed: %s", d.Path, strerror(err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, false, fmt.Errorf("open stream path '%s' for reading failed: not a regular file", d.Path)
	}
	return f, fi.Size(), true, nil
}

// strerror renders an OS error as Perl's $! does: the errno's message
// with a capital first letter ("No such file or directory").
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if s := errno.Error(); s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}

// ContentDisposition returns the Content-Disposition value of an attachment
// named name, quoted as PVE writes it (attachment; filename="name"); a name
// that cannot be quoted plainly is encoded as RFC 2231 says.
func ContentDisposition(name string) string {
	plain := name != ""
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return `attachment; filename="` + name + `"`
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}

// readErrReader remembers the error of the reader it wraps, so a failed
// copy can tell a failed read (the source) from a failed write (the
// client).
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// sendDownload answers the call with d. It returns an error only when
// nothing was sent yet; a failure while sending cuts the connection.
func (s *Server) sendDownload(w http.ResponseWriter, r *http.Request, m *Method, d *Download) error {
	if !m.DownloadAllowed {
		if d.Body != nil {
			d.Body.Close()
		}
		s.cfg.Log.Error("download attempted for a method not declared DownloadAllowed", "method", m.HTTP, "path", m.Path)
		return Errorf(http.StatusInternalServerError, "internal error: download attempted for non-marked API endpoint '%s'", m.Path)
	}
	body, size, known, err := d.open()
	if err != nil {
		s.cfg.Log.Error("api call failed", "method", m.HTTP, "path", m.Path, "err", err)
		return Errorf(http.StatusInternalServerError, "%s", strings.TrimSpace(err.Error()))
	}
	defer body.Close()
	h := w.Header()
	ct := d.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h["Content-Type"] = []string{ct}
	if d.Filename != "" {
		h["Content-Disposition"] = []string{ContentDisposition(d.Filename)}
	}
	var src io.Reader = body
	if known {
		h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		src = io.LimitReader(body, size)
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	rr := &readErrReader{r: src}
	n, err := io.Copy(w, rr)
	if err == nil && known && n < size {
		rr.err = fmt.Errorf("%w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
	}
	switch {
	case rr.err != nil:
		s.cfg.Log.Error("download cut", "method", m.HTTP, "path", m.Path, "err", rr.err)
		panic(http.ErrAbortHandler)
	case err != nil && r.Context().Err() == nil && !isClosed(err):
		s.cfg.Log.Debug("download not taken by the client", "path", m.Path, "err", err)
	}
	return nil
}
