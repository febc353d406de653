package httpd

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCompress(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	alog, lines := testLog(t)
	big := `{"data":[` + strings.Repeat(`{"id":"node/pve","type":"node"},`, 100) + `{}]}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("optout") {
			NoCompress(w)
		}
		ct := r.URL.Query().Get("ct")
		if ct == "" {
			ct = "application/json;charset=UTF-8"
		}
		w.Header().Set("Content-Type", ct)
		body := big
		if r.URL.Query().Has("small") {
			body = big[:1024]
		}
		_, _ = io.WriteString(w, body)
	})
	ln := listen(t, "127.0.0.1")
	// StdHeaders is part of the chain: it strips the opt-out header when
	// Compress passes the request straight through (the production order).
	serve(t, ln, Chain(h, StdHeaders, alog.Wrap, Compress(on.Load)))
	base := "http://" + ln.Addr().String() + "/?x"

	for i, tt := range []struct {
		name, query, accept string
		off                 bool
		wantGzip            bool
	}{
		{"large json, gzip accepted", "", "gzip, deflate", false, true},
		{"large json, gzip with q", "", "br;q=1.0, gzip;q=0.8", false, true},
		{"1024 bytes stays plain", "&small", "gzip", false, false},
		{"client without gzip", "", "", false, false},
		{"deflate only", "", "deflate", false, false},
		{"disabled at reload", "", "gzip", true, false},
		{"opted out", "&optout", "gzip", false, false},
		{"opted out while disabled", "&optout", "gzip", true, false},
		{"opted out, client without gzip", "&optout", "", false, false},
		{"gzip refused with q=0", "", "gzip;q=0, identity", false, false},
		{"png not compressed", "&ct=image/png", "gzip", false, false},
		{"svg compressed", "&ct=image/svg%2Bxml", "gzip", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			on.Store(!tt.off)
			req := newRequest(t, "GET", base+tt.query, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			resp, body := do(t, plainClient(nil), req)
			if _, ok := resp.Header[http.CanonicalHeaderKey(NoCompressHeader)]; ok {
				t.Errorf("opt-out header %s sent to the client", NoCompressHeader)
			}
			gotGzip := resp.Header.Get("Content-Encoding") == "gzip"
			if gotGzip != tt.wantGzip {
				t.Fatalf("Content-Encoding = %q; want gzip %v", resp.Header.Get("Content-Encoding"), tt.wantGzip)
			}
			plain := body
			if gotGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip reader: %v", err)
				}
				if plain, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			want := big
			if strings.Contains(tt.query, "small") {
				want = big[:1024]
			}
			if string(plain) != want {
				t.Errorf("body differs from what the handler wrote (%d bytes; want %d)", len(plain), len(want))
			}
			// The access log counts what went over the wire.
			logged := waitLines(t, lines, i+1)[i]
			if want := " " + strconv.Itoa(len(body)); !strings.HasSuffix(logged, want) {
				t.Errorf("access log %q; want byte count%s", logged, want)
			}
		})
	}
}
