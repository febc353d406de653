package httpd

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Limits applies PVE's request limits for the API servers, allowing the
// methods GET, POST, PUT and DELETE; see LimitsFor.
//
// HEAD is refused like any other method (PVE answers it with 501), although
// net/http would route it to GET handlers; over plain HTTP it still gets the
// 301 redirect from TLSSniffListener, as with PVE.
func Limits(maxBody int64) func(http.Handler) http.Handler {
	return LimitsFor(maxBody, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
}

// LimitsFor applies PVE's request limits with the given set of allowed
// methods (spiceproxy allows only CONNECT). maxBody <= 0 selects MaxBody.
// Violations are answered with WriteError, checked in this order:
//
//   - more than MaxHeaderLines header lines: 431 "too many http header lines (> 64)"
//   - header lines totalling MaxHeaderBytes or more: 431 "http header too large"
//     (PVE counts "Name: value" without line ends; net/http answers 431 itself
//     for headers beyond ServerConfig.MaxHeaderBytes plus its 4 KiB slack)
//   - a method not in the set: 501 "method '<M>' not available"
//   - a chunked (or any other) transfer coding: 501
//     "chunked transfer encoding not supported"
//   - a body on a method other than POST and PUT: 501
//     "Unexpected content for method '<M>'"
//   - a body over maxBody: 501 "for data too large", decided from
//     Content-Length before anything is read; the body is also wrapped in
//     http.MaxBytesReader, whose *http.MaxBytesError callers map to the same
//     answer
//   - a body whose Content-Type is not empty,
//     application/x-www-form-urlencoded or application/json: 506
//     "upload 'Content-Type '<value>' not implemented"
//
// multipart/form-data bodies pass with neither size limit nor wrapper: they
// are file uploads, and the API layer must refuse them for methods that are
// not uploads (PVE decides this after authentication).
//
// Unlike PVE, which authenticates before it looks at the body, these checks
// run first, so an unauthenticated oversized request gets 501, not 401.
func LimitsFor(maxBody int64, methods ...string) func(http.Handler) http.Handler {
	if maxBody <= 0 {
		maxBody = MaxBody
	}
	methods = slices.Clone(methods)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lines, size := headerSize(r)
			switch {
			case lines > MaxHeaderLines:
				WriteError(w, r, http.StatusRequestHeaderFieldsTooLarge,
					fmt.Sprintf("too many http header lines (> %d)", MaxHeaderLines))
				return
			case size >= MaxHeaderBytes:
				WriteError(w, r, http.StatusRequestHeaderFieldsTooLarge, "http header too large")
				return
			case !slices.Contains(methods, r.Method):
				WriteError(w, r, http.StatusNotImplemented, fmt.Sprintf("method '%s' not available", r.Method))
				return
			case len(r.TransferEncoding) > 0:
				if strings.EqualFold(r.TransferEncoding[0], "chunked") {
					WriteError(w, r, http.StatusNotImplemented, "chunked transfer encoding not supported")
				} else {
					WriteError(w, r, http.StatusNotImplemented,
						fmt.Sprintf("Unknown transfer encoding '%s'", strings.Join(r.TransferEncoding, ", ")))
				}
				return
			}
			if r.ContentLength == 0 {
				next.ServeHTTP(w, r)
				return
			}
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				WriteError(w, r, http.StatusNotImplemented, fmt.Sprintf("Unexpected content for method '%s'", r.Method))
				return
			}
			ctype := r.Header.Get("Content-Type")
			ct := mediaType(ctype)
			if ct == "multipart/form-data" {
				next.ServeHTTP(w, r)
				return
			}
			if r.ContentLength > maxBody {
				WriteError(w, r, http.StatusNotImplemented, "for data too large")
				return
			}
			if ct != "" && ct != "application/x-www-form-urlencoded" && ct != "application/json" {
				WriteError(w, r, 506, fmt.Sprintf("upload 'Content-Type '%s' not implemented", ctype))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			next.ServeHTTP(w, r)
		})
	}
}

// headerSize counts the request's header lines and their bytes as PVE does
// ("Name: value", no line end), including the Host line net/http moves out
// of r.Header.
func headerSize(r *http.Request) (lines, size int) {
	if r.Host != "" {
		lines, size = 1, len("Host: ")+len(r.Host)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			lines++
			size += len(k) + 2 + len(v)
		}
	}
	return lines, size
}

// mediaType returns the lower-cased media type of a Content-Type value: the
// part before the first ';' or ',' (PVE splits on both), trimmed.
func mediaType(ctype string) string {
	if i := strings.IndexAny(ctype, ";,"); i >= 0 {
		ctype = ctype[:i]
	}
	return strings.ToLower(strings.TrimSpace(ctype))
}
