package tlsconf

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// serve runs a TLS echo server with cfg on 127.0.0.1 until the test ends and
// returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c) // handshakes on first read, then echoes
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects and completes the handshake.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// echo checks that c is usable.
func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

func peer(c *tls.Conn) *x509.Certificate { return c.ConnectionState().PeerCertificates[0] }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newManager(t *testing.T, s Settings, dir, keyFile string) *Manager {
	t.Helper()
	cs, err := LoadCertificates(dir, keyFile)
	if err != nil {
		t.Fatalf("LoadCertificates: %v", err)
	}
	m, err := New(s, cs, discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestVersions(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	for _, tt := range []struct {
		name       string
		off12      bool
		off13      bool
		minV, maxV uint16 // client; 0 = Go default
		want       uint16 // negotiated version; 0 = handshake must fail
	}{
		{"default, client default", false, false, 0, 0, tls.VersionTLS13},
		{"default, client max 1.2", false, false, 0, tls.VersionTLS12, tls.VersionTLS12},
		{"default, client max 1.1", false, false, tls.VersionTLS10, tls.VersionTLS11, 0},
		{"DISABLE_TLS_1_2, client max 1.2", true, false, 0, tls.VersionTLS12, 0},
		{"DISABLE_TLS_1_2, client default", true, false, 0, 0, tls.VersionTLS13},
		{"DISABLE_TLS_1_3, client min 1.3", false, true, tls.VersionTLS13, 0, 0},
		{"DISABLE_TLS_1_3, client default", false, true, 0, 0, tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSettings()
			s.DisableTLS12, s.DisableTLS13 = tt.off12, tt.off13
			addr := serve(t, newManager(t, s, nd.Dir, "").ServerConfig())
			cfg := nd.ClientConfig()
			cfg.MinVersion, cfg.MaxVersion = tt.minV, tt.maxV
			c, err := dial(t, addr, cfg)
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("handshake succeeded with %s; want failure", tls.VersionName(c.ConnectionState().Version))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := c.ConnectionState().Version; got != tt.want {
				t.Errorf("version = %s; want %s", tls.VersionName(got), tls.VersionName(tt.want))
			}
			echo(t, c, "hello")
		})
	}
}

func TestCiphers(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	for _, tt := range []struct {
		name    string
		ciphers string
		client  uint16 // the only TLS 1.2 suite the client offers
		ok      bool
	}{
		{"listed", "ECDHE-RSA-AES128-GCM-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, true},
		{"not listed", "ECDHE-RSA-AES128-GCM-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, false},
		{"listed by IANA name", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{"default has gcm", "", tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{"default lacks cbc-sha256", "", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, false},
		{"default lacks rsa kex", "", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, false},
		{"insecure rsa kex when named", "AES128-GCM-SHA256", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, true},
		{"insecure cbc-sha256 when named", DefaultCiphers, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, true},
		{"legacy cbc-sha when named", "ECDHE-RSA-AES256-SHA", tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, true},
		{"3des when named", "DES-CBC3-SHA", tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSettings()
			s.Ciphers = tt.ciphers
			addr := serve(t, newManager(t, s, nd.Dir, "").ServerConfig())
			cfg := nd.ClientConfig()
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = []uint16{tt.client}
			c, err := dial(t, addr, cfg)
			if !tt.ok {
				if err == nil {
					t.Fatalf("handshake with %s succeeded; want failure", tls.CipherSuiteName(tt.client))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake with %s: %v", tls.CipherSuiteName(tt.client), err)
			}
			if got := c.ConnectionState().CipherSuite; got != tt.client {
				t.Errorf("suite = %s; want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(tt.client))
			}
			echo(t, c, "hello")
		})
	}
}

func TestCertificateFallback(t *testing.T) {
	for _, tt := range []struct {
		name       string
		customCert bool // write pveproxy-ssl.pem
		customKey  bool // write pveproxy-ssl.key
		keyElse    bool // write the custom key elsewhere and pass it as TLS_KEY_FILE
		keyMissing bool // pass a TLS_KEY_FILE that does not exist
		wantCustom bool
		wantWarn   string
	}{
		{"no custom certificate", false, false, false, false, false, ""},
		{"custom pair", true, true, false, false, true, ""},
		{"custom key missing", true, false, false, false, false, "pveproxy-ssl.pem exists but its key"},
		{"custom key without certificate", false, true, false, false, false, ""},
		{"TLS_KEY_FILE override", true, false, true, false, true, ""},
		{"TLS_KEY_FILE missing", true, true, false, true, false, "missing.key does not"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nd := tlstest.NewNodeDir(t)
			custom := nd.CA.Issue(t, tlstest.RSA, "localhost", "custom.example")
			if tt.customCert {
				os.WriteFile(filepath.Join(nd.Dir, CustomCertFile), custom.CertPEM, 0o644)
			}
			if tt.customKey {
				os.WriteFile(filepath.Join(nd.Dir, CustomKeyFile), custom.KeyPEM, 0o600)
			}
			keyFile := ""
			if tt.keyElse {
				keyFile = filepath.Join(t.TempDir(), "elsewhere.key")
				os.WriteFile(keyFile, custom.KeyPEM, 0o600)
			}
			if tt.keyMissing {
				keyFile = filepath.Join(t.TempDir(), "missing.key")
			}
			cs, err := LoadCertificates(nd.Dir, keyFile)
			if err != nil {
				t.Fatalf("LoadCertificates: %v", err)
			}
			if cs.Custom != tt.wantCustom {
				t.Errorf("Custom = %v; want %v", cs.Custom, tt.wantCustom)
			}
			if got := strings.Join(cs.Warnings, "\n"); (tt.wantWarn == "") != (got == "") || !strings.Contains(got, tt.wantWarn) {
				t.Errorf("Warnings = %q; want one containing %q", cs.Warnings, tt.wantWarn)
			}
			m, err := New(DefaultSettings(), cs, discard())
			if err != nil {
				t.Fatal(err)
			}
			c, err := dial(t, serve(t, m.ServerConfig()), nd.ClientConfig())
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			want := nd.Node.Cert
			if tt.wantCustom {
				want = custom.Cert
			}
			if got := peer(c); !got.Equal(want) {
				t.Errorf("served %s (serial %v); want %s", got.DNSNames, got.SerialNumber, want.DNSNames)
			}
		})
	}
}

func TestLoadCertificatesErrors(t *testing.T) {
	encrypted := map[string]string{
		"legacy": "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
		"pkcs8":  "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
	}
	for name, key := range encrypted {
		t.Run("encrypted "+name, func(t *testing.T) {
			nd := tlstest.NewNodeDir(t)
			path := filepath.Join(nd.Dir, NodeKeyFile)
			os.WriteFile(path, []byte(key), 0o600)
			_, err := LoadCertificates(nd.Dir, "")
			if !errors.Is(err, ErrEncryptedKey) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadCertificates error = %v; want ErrEncryptedKey naming %s", err, path)
			}
		})
	}
	t.Run("encrypted custom key does not fall back", func(t *testing.T) {
		nd := tlstest.NewNodeDir(t)
		nd.Write(t, "pveproxy-ssl", tlstest.RSA)
		path := filepath.Join(nd.Dir, CustomKeyFile)
		os.WriteFile(path, []byte(encrypted["pkcs8"]), 0o600)
		if _, err := LoadCertificates(nd.Dir, ""); !errors.Is(err, ErrEncryptedKey) || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadCertificates error = %v; want ErrEncryptedKey naming %s", err, path)
		}
	})
	t.Run("no certificate at all", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadCertificates(dir, "")
		if want := filepath.Join(dir, NodeCertFile); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCertificates error = %v; want it to name %s", err, want)
		}
	})
	t.Run("key does not match", func(t *testing.T) {
		nd := tlstest.NewNodeDir(t)
		other := nd.CA.Issue(t, tlstest.RSA)
		os.WriteFile(filepath.Join(nd.Dir, NodeKeyFile), other.KeyPEM, 0o600)
		_, err := LoadCertificates(nd.Dir, "")
		if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), NodeCertFile) {
			t.Errorf("LoadCertificates error = %v; want a mismatch naming %s", err, NodeCertFile)
		}
	})
	t.Run("garbage certificate", func(t *testing.T) {
		nd := tlstest.NewNodeDir(t)
		os.WriteFile(filepath.Join(nd.Dir, NodeCertFile), []byte("junk"), 0o644)
		if _, err := LoadCertificates(nd.Dir, ""); err == nil || !strings.Contains(err.Error(), NodeCertFile) {
			t.Errorf("LoadCertificates error = %v; want it to name %s", err, NodeCertFile)
		}
	})
	t.Run("ecdsa file holds rsa", func(t *testing.T) {
		nd := tlstest.NewNodeDir(t)
		nd.Write(t, "pve-ssl-ecdsa", tlstest.RSA)
		if _, err := LoadCertificates(nd.Dir, ""); err == nil || !strings.Contains(err.Error(), "not an ECDSA certificate") {
			t.Errorf("LoadCertificates error = %v; want not an ECDSA certificate", err)
		}
	})
	t.Run("ecdsa key missing", func(t *testing.T) {
		nd := tlstest.NewNodeDir(t)
		nd.Write(t, "pve-ssl-ecdsa", tlstest.ECDSA)
		os.Remove(filepath.Join(nd.Dir, NodeECDSAKeyFile))
		cs, err := LoadCertificates(nd.Dir, "")
		if err != nil || cs.ECDSA != nil || len(cs.Warnings) != 1 {
			t.Errorf("LoadCertificates = ECDSA %v, warnings %q, %v; want no ECDSA and one warning", cs.ECDSA != nil, cs.Warnings, err)
		}
	})
}

func TestECDSASelection(t *testing.T) {
	ecdhe12RSA := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
	ecdhe12ECDSA := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	for _, tt := range []struct {
		name      string
		custom    bool     // node has a custom RSA pair and a custom ECDSA pair
		ciphers   string   // server CIPHERS
		maxV      uint16   // client
		suites    []uint16 // client TLS 1.2 suites
		wantECDSA bool
	}{
		{"tls 1.3 client", false, "", 0, nil, true},
		{"tls 1.2 ecdsa-capable client", false, "", tls.VersionTLS12, nil, true},
		{"tls 1.2 rsa-only client", false, "", tls.VersionTLS12, ecdhe12RSA, false},
		{"tls 1.2 ecdsa-only client", false, "", tls.VersionTLS12, ecdhe12ECDSA, true},
		{"server allows rsa suites only", false, "ECDHE-RSA-AES128-GCM-SHA256", tls.VersionTLS12, nil, false},
		{"custom pair with custom ecdsa", true, "", 0, nil, true},
		{"custom pair, rsa-only client", true, "", tls.VersionTLS12, ecdhe12RSA, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nd := tlstest.NewNodeDir(t)
			nodeEC := nd.Write(t, "pve-ssl-ecdsa", tlstest.ECDSA)
			wantRSA, wantEC := nd.Node.Cert, nodeEC.Cert
			if tt.custom {
				wantRSA = nd.Write(t, "pveproxy-ssl", tlstest.RSA).Cert
				wantEC = nd.Write(t, "pveproxy-ssl-ecdsa", tlstest.ECDSA).Cert
			}
			s := DefaultSettings()
			s.Ciphers = tt.ciphers
			addr := serve(t, newManager(t, s, nd.Dir, "").ServerConfig())
			cfg := nd.ClientConfig()
			cfg.MaxVersion, cfg.CipherSuites = tt.maxV, tt.suites
			c, err := dial(t, addr, cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			want := wantRSA
			if tt.wantECDSA {
				want = wantEC
			}
			if got := peer(c); !got.Equal(want) {
				t.Errorf("served %v certificate; want %v", got.PublicKeyAlgorithm, want.PublicKeyAlgorithm)
			}
			echo(t, c, "hello")
		})
	}
}

func TestReload(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	m := newManager(t, DefaultSettings(), nd.Dir, "")
	addr := serve(t, m.ServerConfig())

	old, err := dial(t, addr, nd.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	echo(t, old, "before")
	if !peer(old).Equal(nd.Node.Cert) {
		t.Fatal("first connection did not get pve-ssl.pem")
	}

	// A renewed custom certificate and TLS 1.3 switched off.
	custom := nd.Write(t, "pveproxy-ssl", tlstest.RSA)
	cs, err := LoadCertificates(nd.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	s := DefaultSettings()
	s.DisableTLS13 = true
	if err := m.Reload(s, cs); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	fresh, err := dial(t, addr, nd.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !peer(fresh).Equal(custom.Cert) {
		t.Error("connection after reload did not get the new certificate")
	}
	if v := fresh.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Errorf("version after reload = %s; want TLS 1.2", tls.VersionName(v))
	}
	echo(t, fresh, "after")
	echo(t, old, "still open") // the established connection survives the reload
	if v := old.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("old connection version = %s; want TLS 1.3", tls.VersionName(v))
	}
	if _, got := m.Current(); got != cs {
		t.Error("Current does not return the reloaded certificates")
	}
}

func TestReloadFailureKeepsOld(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	m := newManager(t, DefaultSettings(), nd.Dir, "")
	addr := serve(t, m.ServerConfig())
	_, good := m.Current()
	key := nd.Node.TLSCertificate(t).PrivateKey

	// A renewed certificate that is broken on disk never gets to Reload.
	os.WriteFile(filepath.Join(nd.Dir, NodeCertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	if _, err := LoadCertificates(nd.Dir, ""); err == nil {
		t.Fatal("LoadCertificates accepted a broken certificate")
	}
	for _, tt := range []struct {
		name  string
		s     Settings
		certs *CertSet
	}{
		{"broken certificate", DefaultSettings(), &CertSet{Primary: &tls.Certificate{Certificate: [][]byte{[]byte("junk")}, PrivateKey: key}}},
		{"certificate without key", DefaultSettings(), &CertSet{Primary: &tls.Certificate{Certificate: [][]byte{nd.Node.Cert.Raw}}}},
		{"no certificate", DefaultSettings(), &CertSet{}},
		{"nil certificates", DefaultSettings(), nil},
		{"no TLS version", Settings{DisableTLS12: true, DisableTLS13: true}, good},
		{"unknown cipher", Settings{Ciphers: "NOPE"}, good},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Reload(tt.s, tt.certs); err == nil {
				t.Fatal("Reload succeeded; want error")
			}
			c, err := dial(t, addr, nd.ClientConfig())
			if err != nil {
				t.Fatalf("handshake after failed reload: %v", err)
			}
			if !peer(c).Equal(nd.Node.Cert) {
				t.Error("failed reload changed the served certificate")
			}
			if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
				t.Errorf("failed reload changed the version to %s", tls.VersionName(v))
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	cs, err := LoadCertificates(nd.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Settings{DisableTLS12: true, DisableTLS13: true}, cs, discard()); err == nil ||
		!strings.Contains(err.Error(), "DISABLE_TLS_1_3") {
		t.Errorf("New error = %v; want DISABLE_TLS_1_3 problem", err)
	}
	if _, err := New(DefaultSettings(), nil, discard()); err == nil {
		t.Error("New(nil certs) succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fingerprint.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// fingerprint.txt is the output of openssl x509 -noout -fingerprint -sha256.
	want, err := os.ReadFile(filepath.Join("testdata", "fingerprint.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, wantFP, _ := strings.Cut(strings.TrimSpace(string(want)), "=")
	if got := Fingerprint(cert); got != wantFP {
		t.Errorf("Fingerprint = %s; want %s", got, wantFP)
	}
	if got, err := FingerprintPEM(append([]byte("junk\n-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"), data...)); got != wantFP || err != nil {
		t.Errorf("FingerprintPEM = %s, %v; want %s", got, err, wantFP)
	}
	if _, err := FingerprintPEM([]byte("junk")); err == nil {
		t.Error("FingerprintPEM(junk) succeeded")
	}
}
