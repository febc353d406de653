package tlsconf

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File names in the node directory (/etc/pve/local).
const (
	CustomCertFile      = "pveproxy-ssl.pem"
	CustomKeyFile       = "pveproxy-ssl.key"
	NodeCertFile        = "pve-ssl.pem"
	NodeKeyFile         = "pve-ssl.key"
	CustomECDSACertFile = "pveproxy-ssl-ecdsa.pem"
	CustomECDSAKeyFile  = "pveproxy-ssl-ecdsa.key"
	NodeECDSACertFile   = "pve-ssl-ecdsa.pem"
	NodeECDSAKeyFile    = "pve-ssl-ecdsa.key"
)

// ErrEncryptedKey is returned (wrapped, with the file name) for a private key
// that is protected by a passphrase.
var ErrEncryptedKey = errors.New("private key is protected by a passphrase; pveproxy needs an unencrypted key")

// CertSet is the certificates a server presents. It is not modified after
// LoadCertificates returns.
type CertSet struct {
	// Primary is served to every client that cannot use ECDSA.
	Primary *tls.Certificate
	// CertFile and KeyFile are the files Primary came from.
	CertFile, KeyFile string
	// Custom is true when Primary is pveproxy-ssl.pem.
	Custom bool
	// ECDSA is the optional ECDSA certificate, or nil.
	ECDSA *tls.Certificate
	// ECDSACertFile and ECDSAKeyFile are the files ECDSA came from.
	ECDSACertFile, ECDSAKeyFile string
	// Warnings are notes for the log, such as a custom certificate whose key
	// is missing.
	Warnings []string
	// ClusterCAs, when set, are the CAs of the cluster's node certificates:
	// handshakes offering NodeProto must present a client certificate
	// from them.
	ClusterCAs *x509.CertPool
}

// LoadCertificates loads the certificates of the node directory localDir
// (/etc/pve/local). keyFileOverride is TLS_KEY_FILE ("" for the default
// pveproxy-ssl.key in localDir).
func LoadCertificates(localDir, keyFileOverride string) (*CertSet, error) {
	cs := &CertSet{}
	customCert := filepath.Join(localDir, CustomCertFile)
	customKey := keyFileOverride
	if customKey == "" {
		customKey = filepath.Join(localDir, CustomKeyFile)
	}
	certOK, keyOK := isFile(customCert), isFile(customKey)
	ecdsaCert, ecdsaKey := filepath.Join(localDir, NodeECDSACertFile), filepath.Join(localDir, NodeECDSAKeyFile)
	if certOK && keyOK {
		cs.Custom = true
		cs.CertFile, cs.KeyFile = customCert, customKey
		ecdsaCert, ecdsaKey = filepath.Join(localDir, CustomECDSACertFile), filepath.Join(localDir, CustomECDSAKeyFile)
	} else {
		if certOK {
			cs.Warnings = append(cs.Warnings, fmt.Sprintf("%s exists but its key %s does not; using %s", customCert, customKey, NodeCertFile))
		}
		cs.CertFile, cs.KeyFile = filepath.Join(localDir, NodeCertFile), filepath.Join(localDir, NodeKeyFile)
	}
	var err error
	if cs.Primary, err = loadPair(cs.CertFile, cs.KeyFile); err != nil {
		return nil, err
	}

	switch ec, ek := isFile(ecdsaCert), isFile(ecdsaKey); {
	case ec && ek:
		c, err := loadPair(ecdsaCert, ecdsaKey)
		if err != nil {
			return nil, err
		}
		if _, ok := c.Leaf.PublicKey.(*ecdsa.PublicKey); !ok {
			return nil, fmt.Errorf("load certificate %s: not an ECDSA certificate", ecdsaCert)
		}
		cs.ECDSA, cs.ECDSACertFile, cs.ECDSAKeyFile = c, ecdsaCert, ecdsaKey
	case ec:
		cs.Warnings = append(cs.Warnings, fmt.Sprintf("%s exists but its key %s does not; no ECDSA certificate", ecdsaCert, ecdsaKey))
	case ek:
		cs.Warnings = append(cs.Warnings, fmt.Sprintf("%s exists but its certificate %s does not; no ECDSA certificate", ecdsaKey, ecdsaCert))
	}
	return cs, nil
}

// isFile reports whether path is a regular file (following symlinks), as
// Perl's -f does.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// loadPair loads a certificate chain and its private key, refusing encrypted
// keys with a clear error.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if encryptedPEM(keyPEM) {
		return nil, fmt.Errorf("load key %s: %w", keyFile, ErrEncryptedKey)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load certificate %s: %w", certFile, err)
		}
	}
	return &c, nil
}

// encryptedPEM reports whether data holds a passphrase-protected private key:
// a PKCS#8 "ENCRYPTED PRIVATE KEY" block or a legacy block with a
// "Proc-Type: 4,ENCRYPTED" header.
func encryptedPEM(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}

// Fingerprint returns the SHA-256 fingerprint of cert as PVE shows it:
// uppercase hex byte pairs separated by ':'.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// FingerprintPEM returns the Fingerprint of the first certificate in PEM
// data, such as the contents of pve-ssl.pem.
func FingerprintPEM(data []byte) (string, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return "", errors.New("fingerprint: no PEM certificate found")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
		return Fingerprint(c), nil
	}
}
