package pveproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/spf13/pflag"
)

// BenchmarkVersionHandler runs the whole pveproxy handler chain (without TLS
// and sockets) for an authenticated GET /api2/json/version, against the
// embedded installation under $PVENODE_BENCH_PREFIX (make run's .run/) and a
// ticket in $PVENODE_BENCH_TICKET. It is for profiling; make bench measures
// the real daemon.
func BenchmarkVersionHandler(b *testing.B) {
	prefix, tk := os.Getenv("PVENODE_BENCH_PREFIX"), os.Getenv("PVENODE_BENCH_TICKET")
	if prefix == "" || tk == "" {
		b.Skip("set PVENODE_BENCH_PREFIX and PVENODE_BENCH_TICKET")
	}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	Spec().Flags(fs)
	fs.Set("port", "28016")
	fs.Set("daemon-addr", "127.0.0.1:8585")
	svc, err := New(daemon.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Paths: buildinfo.PathsFor(prefix), Flags: fs})
	if err != nil {
		b.Fatal(err)
	}
	s := svc.(*Service)
	if err := s.Listen(context.Background()); err != nil {
		b.Fatal(err)
	}
	h := s.srv.Handler
	req := httptest.NewRequest("GET", "/api2/json/version", nil)
	req.Header.Set("Cookie", "PVEAuthCookie="+tk)
	req.RemoteAddr = "127.0.0.1:5555"
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d %s", rec.Code, rec.Body)
		}
	}
}
