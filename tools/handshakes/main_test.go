package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// server is a TLS listener that completes handshakes and counts them, with
// an RSA and an ECDSA certificate chosen as pveproxy chooses.
type server struct {
	addr    string
	caFile  string         // the CA of its certificates, as -ca takes it
	roots   *x509.CertPool // the same, for configs built in tests
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex // guards resumed
	resumed int
}

func startServer(t *testing.T) *server {
	t.Helper()
	ca := tlstest.NewCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	rcert := ca.Issue(t, tlstest.RSA).TLSCertificate(t)
	ecert := ca.Issue(t, tlstest.ECDSA).TLSCertificate(t)
	rc, ec := &rcert, &ecert
	cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if h.SupportsCertificate(ec) == nil {
			return ec, nil
		}
		return rc, nil
	}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String(), caFile: caFile, roots: ca.Pool(), ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			s.wg.Go(func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				if tc.ConnectionState().DidResume {
					s.mu.Lock()
					s.resumed++
					s.mu.Unlock()
				}
				_, _ = io.Copy(io.Discard, tc) // until the client's close
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func TestMeasureModes(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		mode, curve           string
		wantVersion, wantCert string
		wantCurve             tls.CurveID
	}{
		{"tls13", "x25519", "TLS1.3", "ECDSA-P256", tls.X25519},
		{"tls13", "", "TLS1.3", "ECDSA-P256", tls.X25519MLKEM768},
		{"tls12-rsa", "", "TLS1.2", "RSA-2048", tls.X25519},
		{"tls12-ecdsa", "p256", "TLS1.2", "ECDSA-P256", tls.CurveP256},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.curve, func(t *testing.T) {
			c := config{addr: s.addr, roots: s.roots, conns: 4, duration: time.Minute, max: 20,
				timeout: 10 * time.Second, mode: tt.mode, curve: tt.curve, pids: []int{os.Getpid()}}
			res, err := measure(context.Background(), c)
			if err != nil {
				t.Fatalf("measure: %v", err)
			}
			if res.ok != 20 || res.failed != 0 {
				t.Fatalf("ok=%d failed=%d (first error %v), want 20 and 0", res.ok, res.failed, res.firstErr)
			}
			line := res.line(c)
			for _, want := range []string{
				"mode=" + tt.mode, " ok=20 ", " version=" + tt.wantVersion, " cert=" + tt.wantCert,
				" curve=" + tt.wantCurve.String(), " server_cpu_ms=",
			} {
				if !strings.Contains(line, want) {
					t.Errorf("line %q lacks %q", line, want)
				}
			}
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumed != 0 {
		t.Errorf("%d handshakes resumed a session, want none", s.resumed)
	}
}

func TestMeasureStopsAtDuration(t *testing.T) {
	s := startServer(t)
	c := config{addr: s.addr, roots: s.roots, conns: 2, duration: 200 * time.Millisecond, max: 0,
		timeout: 10 * time.Second, mode: "tls12-ecdsa"}
	res, err := measure(context.Background(), c)
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	if res.ok == 0 {
		t.Errorf("no handshake completed: first error %v", res.firstErr)
	}
	if res.cpuTicks != -1 || strings.Contains(res.line(c), "server_cpu_ms") {
		t.Errorf("cpu reported without -pid: %q", res.line(c))
	}
}

func TestMeasureRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stdout, stderr bytes.Buffer
	code := run([]string{"-addr", addr, "-ca", writeCA(t), "-conns", "1", "-max", "3"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "ok=0 failed=3") || !strings.Contains(stdout.String(), "first_error=") {
		t.Errorf("run = %d, stdout %q; want 1 and ok=0 failed=3 with first_error", code, stdout.String())
	}
}

// writeCA writes a throwaway CA certificate for -ca and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, tlstest.NewCA(t).CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseArgs(t *testing.T) {
	ca := writeCA(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ok", []string{"-addr", "127.0.0.1:1", "-ca", ca, "-pid", "1,2"}, ""},
		{"no ca", []string{"-addr", "127.0.0.1:1"}, "-ca is required"},
		{"no addr", nil, "-addr is required"},
		{"bad mode", []string{"-addr", "a:1", "-mode", "ssl3"}, `-mode "ssl3"`},
		{"bad curve", []string{"-addr", "a:1", "-curve", "p521"}, `-curve "p521"`},
		{"bad pid", []string{"-addr", "a:1", "-ca", ca, "-pid", "1,x"}, `"x" is not a process id`},
		{"zero conns", []string{"-addr", "a:1", "-conns", "0"}, "-conns 0"},
		{"negative max", []string{"-addr", "a:1", "-max", "-1"}, "-max -1"},
		{"extra", []string{"-addr", "a:1", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args, io.Discard)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Errorf("parseArgs(%q) error = %q, want containing %q", tt.args, got, tt.wantErr)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"42 (pve proxy) S 1 42 42 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 8 0", 175, false},
		{"42 (a) b) S 1 42 42 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 8 0", 10, false},
		{"42 pveproxy S 1", 0, true},
		{"42 (x) S 1 2 3", 0, true},
		{"42 (x) S 1 42 42 0 -1 4194560 1 0 0 0 a 3 0", 0, true},
	}
	for _, tt := range tests {
		got, err := parseStat(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseStat(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %d, want 0", got)
	}
}
