package httpd

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// CompressMinSize is the smallest body that is compressed: PVE compresses
// bodies of more than 1024 bytes.
const CompressMinSize = 1025

// NoCompressHeader is the response header by which a handler opts out of
// compression (any value); it is never sent to the client. Use NoCompress.
const NoCompressHeader = gzhttp.HeaderNoCompression

// NoCompress marks the response on w as not to be compressed. Call it before
// the first Write; the forwarder uses it for proxied responses (PVE passes
// those through as received) and streaming handlers for streams, which PVE
// never compresses either.
func NoCompress(w http.ResponseWriter) {
	w.Header().Set(NoCompressHeader, "1")
}

// Compress returns a middleware that gzips a response when enabled reports
// true (nil = always; it is asked per request, so COMPRESSION can change at
// reload without rebuilding the server), the client's Accept-Encoding allows
// gzip, the body is larger than 1024 bytes, the handler did not call
// NoCompress or set Content-Encoding itself, and the content type is not
// already compressed (images other than SVG, fonts, PDF, archives, audio,
// video).
//
// PVE falls back to zlib "deflate" for clients that accept only deflate; this
// sends those the identity encoding instead, which HTTP allows and which
// every client of the API accepts. zstd is never used. A request that cannot
// be compressed (disabled, or gzip not accepted) passes straight through
// without a wrapper; StdHeaders, outside Compress, strips the opt-out header.
func Compress(enabled func() bool) func(http.Handler) http.Handler {
	wrap, err := gzhttp.NewWrapper(
		gzhttp.MinSize(CompressMinSize),
		gzhttp.EnableZstd(false),
		gzhttp.ContentTypeFilter(compressible),
	)
	if err != nil {
		// The options are constants; this only fails if gzhttp changes.
		panic(fmt.Sprintf("httpd: gzhttp options rejected: %v", err))
	}
	return func(next http.Handler) http.Handler {
		gz := wrap(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if (enabled == nil || enabled()) && acceptsGzip(r.Header.Get("Accept-Encoding")) {
				gz.ServeHTTP(w, r)
				return
			}
			// Nothing to compress for: no wrapper at all (StdHeaders strips
			// the opt-out header).
			next.ServeHTTP(w, r)
		})
	}
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (or *)
// with a non-zero quality.
func acceptsGzip(ae string) bool {
	for ae != "" {
		var part string
		part, ae, _ = strings.Cut(ae, ",")
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") && coding != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		if q == "q=0" || q == "q=0." || strings.HasPrefix(q, "q=0.0") && strings.Trim(q[3:], "0.") == "" {
			continue
		}
		return true
	}
	return false
}

// compressible reports whether a response of content type ct is worth
// compressing, following PVE's list of static types it leaves alone.
func compressible(ct string) bool {
	if !gzhttp.DefaultContentTypeFilter(ct) {
		return false
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	switch {
	case strings.HasPrefix(ct, "image/"):
		return strings.HasPrefix(ct, "image/svg")
	case strings.HasPrefix(ct, "font/"),
		strings.HasPrefix(ct, "application/font-"),
		strings.HasPrefix(ct, "application/pdf"),
		strings.HasPrefix(ct, "application/java-archive"):
		return false
	}
	return true
}
