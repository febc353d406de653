package setup

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Files of the PKI and the ticket keys, relative to the config root.
const (
	CAKeyFile     = "priv/pve-root-ca.key"
	CACertFile    = "pve-root-ca.pem"
	CASerialFile  = "priv/pve-root-ca.srl"
	AuthKeyFile   = "priv/authkey.key"
	AuthPubFile   = "authkey.pub"
	WWWKeyFile    = "pve-www.key"
	nodeKeyBase   = "pve-ssl.key"
	nodeCertBase  = "pve-ssl.pem"
	ecdsaKeyBase  = "pve-ssl-ecdsa.key"
	ecdsaCertBase = "pve-ssl-ecdsa.pem"
)

// Key sizes and validity periods, as PVE's "pvecm updatecerts" uses them.
const (
	caKeyBits   = 4096
	rsaKeyBits  = 2048
	caDays      = 3650
	nodeMaxDays = 2 * 365
	// Certificates start a day early so that a client whose clock is
	// behind still accepts them (PVE runs openssl under "faketime yesterday").
	backdate = 24 * time.Hour
	day      = 24 * time.Hour
)

// initialSerial is what PVE writes to pve-root-ca.srl before its first use.
const initialSerial = "0000000000000000"

// OIDs of the subject attributes, so that the names keep PVE's order.
var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
)

// NodeCertFile returns the node certificate's name for node.
func NodeCertFile(node string) string { return "nodes/" + node + "/" + nodeCertBase }

// NodeKeyFile returns the node key's name for node.
func NodeKeyFile(node string) string { return "nodes/" + node + "/" + nodeKeyBase }

// ECDSACertFile returns the name of node's ECDSA certificate.
func ECDSACertFile(node string) string { return "nodes/" + node + "/" + ecdsaCertBase }

// ECDSAKeyFile returns the name of node's ECDSA key.
func ECDSAKeyFile(node string) string { return "nodes/" + node + "/" + ecdsaKeyBase }

// ensurePKI creates the missing keys and certificates.
func (e *ensurer) ensurePKI() error {
	if err := e.ensureAuthKey(); err != nil {
		return err
	}
	if ok, err := e.exists(WWWKeyFile); err != nil {
		return err
	} else if !ok {
		k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return fmt.Errorf("generate %s: %w", WWWKeyFile, err)
		}
		if err := e.writeKey(WWWKeyFile, k, false); err != nil {
			return err
		}
	}

	nodeKey, newNodeKey, err := e.loadOrCreateKey(NodeKeyFile(e.node), false)
	if err != nil {
		return err
	}
	caCert, caKey, newCA, err := e.ensureCA()
	if err != nil {
		return err
	}
	// A certificate is issued when it is missing, when the CA is new, and
	// when its key is new (a leftover certificate would not match it).
	if err := e.ensureNodeCert(NodeCertFile(e.node), nodeKey.Public(), caCert, caKey, newCA || newNodeKey); err != nil {
		return err
	}
	ecKey, newECKey, err := e.loadOrCreateKey(ECDSAKeyFile(e.node), true)
	if err != nil {
		return err
	}
	if err := e.ensureNodeCert(ECDSACertFile(e.node), ecKey.Public(), caCert, caKey, newCA || newECKey); err != nil {
		return err
	}

	for _, f := range []struct {
		name string
		dst  *string
	}{
		{CACertFile, &e.res.CAFingerprint},
		{NodeCertFile(e.node), &e.res.NodeFingerprint},
		{ECDSACertFile(e.node), &e.res.ECDSAFingerprint},
	} {
		data, err := e.root.ReadFile(f.name)
		if err != nil {
			return err
		}
		fp, err := CertFingerprint(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = fp
	}
	return nil
}

// ensureAuthKey creates the ticket signing key pair if the private key is
// missing, and restores a missing public key from the private one.
func (e *ensurer) ensureAuthKey() error {
	havePriv, err := e.exists(AuthKeyFile)
	if err != nil {
		return err
	}
	havePub, err := e.exists(AuthPubFile)
	if err != nil {
		return err
	}
	if havePriv && havePub {
		return nil
	}
	var key crypto.Signer
	if havePriv {
		if key, err = e.loadKey(AuthKeyFile); err != nil {
			return err
		}
	} else {
		k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return fmt.Errorf("generate %s: %w", AuthKeyFile, err)
		}
		key = k
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode %s: %w", AuthPubFile, err)
	}
	// The public key goes first: the private key's presence marks a
	// complete pair, so an interrupted run starts over.
	if err := e.writeNew(AuthPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), false); err != nil {
		return err
	}
	if havePriv {
		return nil
	}
	return e.writeKey(AuthKeyFile, key, true)
}

// loadOrCreateKey returns the private key in name, generating it (RSA 2048,
// or ECDSA P-256 when ec is set) if the file is missing; created reports
// the latter. Node keys are not private files: pveproxy (www-data) reads
// them.
func (e *ensurer) loadOrCreateKey(name string, ec bool) (key crypto.Signer, created bool, err error) {
	ok, err := e.exists(name)
	if err != nil {
		return nil, false, err
	}
	if ok {
		key, err := e.loadKey(name)
		return key, false, err
	}
	if key, err = generateNodeKey(name, ec); err != nil {
		return nil, false, err
	}
	if err := e.writeKey(name, key, false); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// generateNodeKey makes a new key for the node key file name: ECDSA P-256
// when ec is set, else RSA 2048.
func generateNodeKey(name string, ec bool) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if ec {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, rsaKeyBits)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	return key, nil
}

// loadKey reads a PEM private key (PKCS#8, PKCS#1 or SEC 1).
func (e *ensurer) loadKey(name string) (crypto.Signer, error) {
	data, err := e.root.ReadFile(name)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// ensureCA returns the CA certificate and a loader for its key, creating
// the key and the certificate if either is missing; newCA reports that the
// certificate was created now.
func (e *ensurer) ensureCA() (cert *x509.Certificate, key func() (crypto.Signer, error), newCA bool, err error) {
	haveKey, err := e.exists(CAKeyFile)
	if err != nil {
		return nil, nil, false, err
	}
	haveCert, err := e.exists(CACertFile)
	if err != nil {
		return nil, nil, false, err
	}
	if haveKey && haveCert {
		data, err := e.root.ReadFile(CACertFile)
		if err != nil {
			return nil, nil, false, err
		}
		cert, err := ParseCertificate(data)
		if err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", CACertFile, err)
		}
		var cached crypto.Signer
		load := func() (crypto.Signer, error) {
			if cached == nil {
				k, err := e.loadKey(CAKeyFile)
				if err != nil {
					return nil, err
				}
				cached = k
			}
			return cached, nil
		}
		return cert, load, false, nil
	}

	var caKey crypto.Signer
	if haveKey {
		if caKey, err = e.loadKey(CAKeyFile); err != nil {
			return nil, nil, false, err
		}
	} else {
		k, err := rsa.GenerateKey(rand.Reader, caKeyBits)
		if err != nil {
			return nil, nil, false, fmt.Errorf("generate %s: %w", CAKeyFile, err)
		}
		caKey = k
		if err := e.writeKey(CAKeyFile, k, true); err != nil {
			return nil, nil, false, err
		}
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, nil, false, fmt.Errorf("uuid: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, nil, false, fmt.Errorf("ca serial: %w", err)
	}
	notBefore := e.now.Add(-backdate).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oidCN, Value: "Proxmox Virtual Environment"},
			{Type: oidOU, Value: id.String()},
			{Type: oidO, Value: "PVE Cluster Manager CA"},
		}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(caDays * day),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, false, fmt.Errorf("create %s: %w", CACertFile, err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, fmt.Errorf("create %s: %w", CACertFile, err)
	}
	if err := e.writeNew(CACertFile, certPEM(der), false); err != nil {
		return nil, nil, false, err
	}
	return cert, func() (crypto.Signer, error) { return caKey, nil }, true, nil
}

// ensureNodeCert issues the node certificate name for pub if it is missing
// or force is set.
func (e *ensurer) ensureNodeCert(name string, pub crypto.PublicKey, ca *x509.Certificate, caKey func() (crypto.Signer, error), force bool) error {
	if !force {
		ok, err := e.exists(name)
		if err != nil || ok {
			return err
		}
	}
	signer, err := caKey()
	if err != nil {
		return err
	}
	der, err := e.issueNodeCert(pub, ca, signer)
	if err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	return e.writeNew(name, certPEM(der), false)
}

// issueNodeCert signs a server certificate for this node.
func (e *ensurer) issueNodeCert(pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer) ([]byte, error) {
	days := int(ca.NotAfter.Sub(e.now) / day)
	if days < 14 {
		return nil, fmt.Errorf("ca certificate expires in %d days, less than two weeks", days)
	}
	// End a little before the CA; browsers refuse very long validity.
	days = min(days-2, nodeMaxDays)

	serial, err := e.nextSerial()
	if err != nil {
		return nil, err
	}
	fqdn := e.node
	dns := []string{"localhost", e.node}
	if e.domain != "" {
		fqdn = e.node + "." + e.domain
		dns = append(dns, fqdn)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, a := range e.ips {
		a = a.Unmap()
		if a.IsLoopback() || !a.IsValid() {
			continue
		}
		ips = append(ips, net.IP(a.AsSlice()))
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	notBefore := e.now.Add(-backdate).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oidOU, Value: "PVE Cluster Node"},
			{Type: oidO, Value: "Proxmox Virtual Environment"},
			{Type: oidCN, Value: fqdn},
		}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(time.Duration(days) * day),
		BasicConstraintsValid: true,
		IsCA:                  false,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              dns,
		IPAddresses:           ips,
		SubjectKeyId:          ski,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
}

// nextSerial advances the CA's serial file and returns the new serial, as
// "openssl x509 -CAserial" does.
func (e *ensurer) nextSerial() (*big.Int, error) {
	data, err := e.root.ReadFileOrEmpty(CASerialFile)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		s = initialSerial
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() < 0 {
		return nil, fmt.Errorf("%s: serial %q is not a hex number", CASerialFile, s)
	}
	n.Add(n, big.NewInt(1))
	hex := strings.ToUpper(n.Text(16))
	if len(hex)%2 == 1 {
		hex = "0" + hex
	}
	if err := e.root.WriteFile(CASerialFile, []byte(hex+"\n"), 0o600); err != nil {
		return nil, err
	}
	e.created(CASerialFile)
	return n, nil
}

// subjectKeyID is the SHA-1 of the subject public key bits (RFC 5280
// method 1), as OpenSSL computes it.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// keyPEM encodes a private key as PKCS#8 PEM ("BEGIN PRIVATE KEY").
func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeKey writes a new private key file.
func (e *ensurer) writeKey(name string, k crypto.Signer, private bool) error {
	data, err := keyPEM(k)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return e.writeNew(name, data, private)
}

// certPEM encodes a certificate as PEM.
func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ErrNoPEM is returned when a file holds no PEM block of the expected kind.
var ErrNoPEM = errors.New("no PEM data of the expected type")

// ParsePrivateKey parses the first private key PEM block of data: PKCS#8
// ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY", as PVE writes rotated
// authkeys) or SEC 1 ("EC PRIVATE KEY").
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoPEM
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", strings.ToLower(b.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

// ParseCertificate parses the first CERTIFICATE PEM block of data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoPEM
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return c, nil
	}
}

// CertFingerprint returns the SHA-256 fingerprint of the first certificate
// in the PEM data as PVE shows it: uppercase hex bytes joined by colons.
func CertFingerprint(pemData []byte) (string, error) {
	c, err := ParseCertificate(pemData)
	if err != nil {
		return "", err
	}
	return Fingerprint(c.Raw), nil
}

// Fingerprint formats the SHA-256 of der as uppercase hex bytes joined by
// colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var sb strings.Builder
	for i, b := range sum {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", b)
	}
	return sb.String()
}
