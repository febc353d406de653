package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

func testOptions(t *testing.T) (options, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	o := options{listen: "127.0.0.1:0", contentType: "application/json;charset=UTF-8"}
	o.certFile, o.keyFile = filepath.Join(dir, "rsa.pem"), filepath.Join(dir, "rsa.key")
	o.ecdsaCert, o.ecdsaKey = filepath.Join(dir, "ecdsa.pem"), filepath.Join(dir, "ecdsa.key")
	ca.WritePair(t, dir, "rsa", tlstest.RSA)
	ca.WritePair(t, dir, "ecdsa", tlstest.ECDSA)
	o.bodyFile = filepath.Join(dir, "body.json")
	if err := os.WriteFile(o.bodyFile, []byte(`{"data":{"version":"9.1.3"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	o.headers = headerList{"Cache-Control: max-age=0", "Pragma: no-cache"}
	return o, ca.Pool()
}

// serve starts srv on a loopback port and stops it when the test ends.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func TestServes(t *testing.T) {
	o, roots := testOptions(t)
	srv, err := newServer(o)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	addr := serve(t, srv)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true, // the server must still answer with HTTP/1.1
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	for i := range 2 { // the second request reuses the connection
		resp, err := client.Get("https://" + addr + "/api2/json/version")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read body: %v", err)
		}
		if got, want := string(body), `{"data":{"version":"9.1.3"}}`; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if resp.Proto != "HTTP/1.1" {
			t.Errorf("proto = %s, want HTTP/1.1", resp.Proto)
		}
		for k, want := range map[string]string{
			"Content-Type":   "application/json;charset=UTF-8",
			"Cache-Control":  "max-age=0",
			"Pragma":         "no-cache",
			"Content-Length": "28",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
	}
}

func TestCertificateChoice(t *testing.T) {
	o, roots := testOptions(t)
	srv, err := newServer(o)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	addr := serve(t, srv)
	tests := []struct {
		name string
		cfg  *tls.Config
		want string // public key algorithm of the served leaf
	}{
		{"tls13 default", &tls.Config{}, "ECDSA"},
		{"tls12 rsa suites", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, "RSA"},
		{"tls12 ecdsa suites", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, "ECDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.RootCAs = roots
			c, err := tls.Dial("tcp", addr, tt.cfg)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm.String(); got != tt.want {
				t.Errorf("served %s certificate, want %s", got, tt.want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ok", []string{"-cert", "c", "-key", "k", "-body-file", "b"}, ""},
		{"no cert", []string{"-body-file", "b"}, "-cert and -key are required"},
		{"no body", []string{"-cert", "c", "-key", "k"}, "-body-file is required"},
		{"half ecdsa", []string{"-cert", "c", "-key", "k", "-body-file", "b", "-ecdsa-cert", "e"}, "go together"},
		{"bad header", []string{"-header", "nocolon"}, `want "Name: value"`},
		{"extra arg", []string{"-cert", "c", "-key", "k", "-body-file", "b", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseArgs(tt.args, &stderr)
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

func TestRunBadFiles(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-cert", "/nonexistent.pem", "-key", "/nonexistent.key", "-body-file", "/nonexistent"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "/nonexistent.pem") {
		t.Errorf("run = %d, stderr %q; want 1 and a message naming the file", code, stderr.String())
	}
}
