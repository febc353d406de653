package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KeyType selects the key of a leaf certificate.
type KeyType int

// Key types.
const (
	RSA   KeyType = iota // RSA 2048 bit
	ECDSA                // ECDSA P-256
)

// DefaultNames are the names a leaf certificate is valid for when Issue gets
// none: what tests dial.
var DefaultNames = []string{"localhost", "127.0.0.1", "::1"}

// CA is a throwaway certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// Leaf is an issued certificate with its PEM files' contents.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte // leaf certificate only
	KeyPEM  []byte // unencrypted PKCS#8
}

// NewCA creates a CA with an ECDSA P-256 key, valid from an hour ago for a day.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("tlstest: generate CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "tlstest CA", Organization: []string{"PVE Cluster Manager CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("tlstest: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("tlstest: parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool returns a pool holding only the CA, for a client's RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue creates a server certificate for names (DefaultNames if none; IP
// literals become IP SANs). The common name is the first name.
func (ca *CA) Issue(tb testing.TB, kt KeyType, names ...string) *Leaf {
	tb.Helper()
	if len(names) == 0 {
		names = DefaultNames
	}
	var key crypto.Signer
	var err error
	switch kt {
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case ECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		tb.Fatalf("tlstest: unknown key type %d", kt)
	}
	if err != nil {
		tb.Fatalf("tlstest: generate key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"PVE Cluster Node"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatalf("tlstest: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("tlstest: parse certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("tlstest: marshal key: %v", err)
	}
	return &Leaf{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// TLSCertificate returns l as a tls.Certificate.
func (l *Leaf) TLSCertificate(tb testing.TB) tls.Certificate {
	tb.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		tb.Fatalf("tlstest: key pair: %v", err)
	}
	return c
}

// Write writes the certificate to certPath and the key to keyPath (mode 0600).
func (l *Leaf) Write(tb testing.TB, certPath, keyPath string) {
	tb.Helper()
	if err := os.WriteFile(certPath, l.CertPEM, 0o644); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	if err := os.WriteFile(keyPath, l.KeyPEM, 0o600); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
}

// WritePair issues a certificate and writes it as dir/base.pem and
// dir/base.key, for example base "pve-ssl" or "pveproxy-ssl-ecdsa".
func (ca *CA) WritePair(tb testing.TB, dir, base string, kt KeyType, names ...string) *Leaf {
	tb.Helper()
	l := ca.Issue(tb, kt, names...)
	l.Write(tb, filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key"))
	return l
}

// NodeDir is a node directory (/etc/pve/local) in a temporary directory.
type NodeDir struct {
	Dir  string // the node directory
	CA   *CA
	Node *Leaf // pve-ssl.pem / pve-ssl.key (RSA)
}

// NewNodeDir creates a CA, writes it as pve-root-ca.pem in a temporary
// directory, and a node directory "local" in it holding pve-ssl.pem and
// pve-ssl.key (RSA-2048), as pvecm creates them.
func NewNodeDir(tb testing.TB) *NodeDir {
	tb.Helper()
	root := tb.TempDir()
	dir := filepath.Join(root, "local")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	ca := NewCA(tb)
	if err := os.WriteFile(filepath.Join(root, "pve-root-ca.pem"), ca.CertPEM, 0o644); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	return &NodeDir{Dir: dir, CA: ca, Node: ca.WritePair(tb, dir, "pve-ssl", RSA)}
}

// Write issues a certificate and writes it under base in the node directory.
func (d *NodeDir) Write(tb testing.TB, base string, kt KeyType, names ...string) *Leaf {
	tb.Helper()
	return d.CA.WritePair(tb, d.Dir, base, kt, names...)
}

// ClientConfig returns a client configuration trusting the CA, for
// "localhost".
func (d *NodeDir) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: d.CA.Pool(), ServerName: "localhost"}
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatalf("tlstest: serial: %v", err)
	}
	return n
}
