package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// handshake connects with cfg (verifying against the node's CAs) and
// returns the connection state or the handshake error.
func handshake(n *node, cfg *tls.Config) (tls.ConnectionState, error) {
	cfg = cfg.Clone()
	cfg.RootCAs = n.certPool()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", fmt.Sprintf("127.0.0.1:%d", n.pport), cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// tls12Only is a TLS 1.2 client offering suites (Go's defaults if none).
func tls12Only(suites ...uint16) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: suites}
}

// tls13Only is a TLS 1.3 client.
func tls13Only() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS13} }

// TestTLSSettings applies the TLS keys of /etc/default/pveproxy with reloads
// and checks that a handshake that must fail does fail.
func TestTLSSettings(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{proxyFG: true})

	type hs struct {
		name string
		cfg  *tls.Config
		ok   bool
	}
	aes128 := tls12Only(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	aes256 := tls12Only(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
	rows := []struct {
		name string
		cfg  string
		hs   []hs
	}{
		{"Defaults", "", []hs{
			{"TLS1.2", tls12Only(), true}, {"TLS1.3", tls13Only(), true},
			{"TLS1.2/AES256", aes256, true}, {"TLS1.2/AES128", aes128, true},
			{"TLS1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		}},
		{"DisableTLS12", "DISABLE_TLS_1_2=1\n", []hs{
			{"TLS1.2", tls12Only(), false}, {"TLS1.3", tls13Only(), true},
		}},
		{"DisableTLS13", "DISABLE_TLS_1_3=1\n", []hs{
			{"TLS1.3", tls13Only(), false}, {"TLS1.2", tls12Only(), true},
		}},
		{"Ciphers", "CIPHERS=ECDHE-RSA-AES128-GCM-SHA256\n", []hs{
			{"TLS1.2/AES256", aes256, false}, {"TLS1.2/AES128", aes128, true}, {"TLS1.3", tls13Only(), true},
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			n.writeDefaults(t, row.cfg)
			n.mustReload(t)
			for _, c := range row.hs {
				_, err := handshake(n, c.cfg)
				if c.ok && err != nil {
					t.Errorf("%s handshake: %v; want success", c.name, err)
				}
				if !c.ok && err == nil {
					t.Errorf("%s handshake succeeded; want it to fail", c.name)
				}
				// The server must be the one that refuses, with an alert.
				if !c.ok && err != nil && !strings.Contains(err.Error(), "remote error") {
					t.Errorf("%s handshake: %v; want the server's alert", c.name, err)
				}
			}
		})
	}

	t.Run("UnknownCipherReloadKeepsOld", func(t *testing.T) {
		n.writeDefaults(t, "CIPHERS=ECDHE-RSA-AES128-GCM-SHA256\n")
		n.mustReload(t)
		n.writeDefaults(t, "CIPHERS=ECDHE-RSA-AES128-GCM-SHA256:BOGUS-CIPHER-E2E\n")
		r := n.reloadProxy(t)
		if r.ok || !strings.Contains(r.line, "BOGUS-CIPHER-E2E") {
			t.Errorf("reload with an unknown cipher: ok=%v, %q; want it refused naming the cipher", r.ok, r.line)
		}
		if _, err := handshake(n, aes256); err == nil || !strings.Contains(err.Error(), "remote error") {
			t.Errorf("after the refused reload an AES256 client: %v; want the server's alert (old CIPHERS kept)", err)
		}
		if _, err := handshake(n, aes128); err != nil {
			t.Errorf("after the refused reload an AES128 client failed: %v; want the old CIPHERS kept", err)
		}
	})

	t.Run("ECDSA", func(t *testing.T) {
		n.writeDefaults(t, "")
		n.mustReload(t)
		for _, tt := range []struct {
			name  string
			cfg   *tls.Config
			ecdsa bool
		}{
			{"ECDSASuitesOnly", tls12Only(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), true},
			{"RSASuitesOnly", tls12Only(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), false},
		} {
			st, err := handshake(n, tt.cfg)
			if err != nil {
				t.Errorf("%s: handshake: %v", tt.name, err)
				continue
			}
			_, isEC := st.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey)
			_, isRSA := st.PeerCertificates[0].PublicKey.(*rsa.PublicKey)
			if isEC != tt.ecdsa || isRSA == tt.ecdsa {
				t.Errorf("%s: served a %T certificate; want ECDSA=%v", tt.name, st.PeerCertificates[0].PublicKey, tt.ecdsa)
			}
		}
	})
}

// TestCertificates checks which certificate pveproxy serves: the custom
// pveproxy-ssl.pem when it and its key exist, else pve-ssl.pem; TLS_KEY_FILE;
// and that a keep-alive connection survives the reloads.
func TestCertificates(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{noStart: true})
	ca := tlstest.NewCA(t)
	n.trust(ca.Cert)
	custom := ca.Issue(t, tlstest.RSA, "localhost", "127.0.0.1", "::1", nodeName)
	customPEM, customKey := filepath.Join(n.nodeDir(), "pveproxy-ssl.pem"), filepath.Join(n.nodeDir(), "pveproxy-ssl.key")
	n.writeServiceFile(t, customPEM, custom.CertPEM)
	n.writeServiceFile(t, customKey, custom.KeyPEM)

	t.Cleanup(n.stopAll)
	if err := n.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	if err := n.startProxy(true); err != nil {
		t.Fatal(err)
	}
	nodePEM, err := os.ReadFile(filepath.Join(n.nodeDir(), "pve-ssl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	nodeBlock, _ := pem.Decode(nodePEM)
	nodeCert, err := x509.ParseCertificate(nodeBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaClient := tls12Only(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	leaf := func(t *testing.T, cfg *tls.Config) *x509.Certificate {
		t.Helper()
		st, err := handshake(n, cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return st.PeerCertificates[0]
	}

	// One keep-alive connection, opened before the reloads, used after each.
	ka := n.client(t, clientOpts{keepAlive: true})
	ka.mustLogin(adminUser, h.adminPW)
	var reused, conns int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		conns++
		if i.Reused {
			reused++
		}
	}}
	kaGet := func(t *testing.T) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ka.base+"/api2/json/version", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		req.Header.Set("Cookie", "PVEAuthCookie="+ka.ticket)
		resp, err := ka.hc.Do(req)
		if err != nil {
			t.Fatalf("keep-alive GET /version: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // a body not read to the end closes the connection
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("keep-alive GET /version: status %d", resp.StatusCode)
		}
	}
	kaGet(t)

	t.Run("Custom", func(t *testing.T) {
		for _, cfg := range []*tls.Config{rsaClient, {}} {
			if got := leaf(t, cfg); !bytes.Equal(got.Raw, custom.Cert.Raw) {
				t.Errorf("served %q; want the custom pveproxy-ssl.pem", got.Subject)
			}
		}
		kaGet(t)
	})
	t.Run("FallbackAfterRemoval", func(t *testing.T) {
		for _, p := range []string{customPEM, customKey} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		n.mustReload(t)
		if got := leaf(t, rsaClient); !bytes.Equal(got.Raw, nodeCert.Raw) {
			t.Errorf("served %q; want pve-ssl.pem", got.Subject)
		}
		kaGet(t)
	})
	t.Run("CertWithoutKeyFallsBack", func(t *testing.T) {
		n.writeServiceFile(t, customPEM, custom.CertPEM)
		n.mustReload(t)
		if got := leaf(t, rsaClient); !bytes.Equal(got.Raw, nodeCert.Raw) {
			t.Errorf("custom certificate without key: served %q; want pve-ssl.pem", got.Subject)
		}
		kaGet(t)
	})
	t.Run("TLSKeyFile", func(t *testing.T) {
		alt := filepath.Join(n.prefix, "etc/pveproxy-alt.key")
		n.writeServiceFile(t, alt, custom.KeyPEM)
		n.writeDefaults(t, "TLS_KEY_FILE="+alt+"\n")
		n.mustReload(t)
		if got := leaf(t, rsaClient); !bytes.Equal(got.Raw, custom.Cert.Raw) {
			t.Errorf("with TLS_KEY_FILE: served %q; want the custom certificate", got.Subject)
		}
		kaGet(t)
	})
	t.Run("EncryptedKeyReloadKeepsOld", func(t *testing.T) {
		alt := filepath.Join(n.prefix, "etc/pveproxy-alt.key")
		n.writeServiceFile(t, alt, encryptedKey(t, custom.KeyPEM))
		r := n.reloadProxy(t)
		if r.ok || !strings.Contains(r.line, alt) || !strings.Contains(r.line, "passphrase") {
			t.Errorf("reload with an encrypted key: ok=%v, %q; want it refused naming %s and the passphrase", r.ok, r.line, alt)
		}
		if got := leaf(t, rsaClient); !bytes.Equal(got.Raw, custom.Cert.Raw) {
			t.Errorf("after the refused reload: served %q; want the custom certificate still", got.Subject)
		}
	})
	t.Run("KeepAliveSurvived", func(t *testing.T) {
		kaGet(t)
		// The connection was opened by the login, before the first request.
		if conns < 2 || reused != conns {
			t.Errorf("keep-alive requests: %d, on the login's connection: %d; want all", conns, reused)
		}
	})
}

// encryptedKey returns keyPEM protected by a passphrase (legacy PEM
// encryption, as `openssl rsa -aes256` writes it).
func encryptedKey(t *testing.T, keyPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	eb, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", b.Bytes, []byte("secret"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(eb)
}
