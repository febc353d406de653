package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// NodeProto is the ALPN protocol a node of the cluster offers (beside
// http/1.1) when it forwards a call to another node's pveproxy. A handshake
// offering it must present a client certificate issued by the cluster CA;
// other clients (browsers, API clients) are never asked for one, so that no
// browser prompts its user to pick a certificate. The server then
// negotiates http/1.1 as for everyone.
const NodeProto = "pvenode-node/1"

// LoadClusterCA reads the cluster CA certificate (PVE's
// /etc/pve/pve-root-ca.pem) into a pool.
func LoadClusterCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return pool, nil
}

// nodeConfig returns the configuration of node handshakes: base's, plus a
// required client certificate chained to cas. The chain is verified here
// rather than by crypto/tls, because node certificates made by PVE carry
// only the serverAuth extended key usage, which Go's client-certificate
// check would refuse. http/1.1 is negotiated (Go's HTTP server would close
// a connection with another protocol).
func nodeConfig(base *tls.Config, cas *x509.CertPool) *tls.Config {
	c := base.Clone()
	c.ClientAuth = tls.RequireAnyClientCert
	c.NextProtos = []string{"http/1.1"}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyNodeCert(cs.PeerCertificates, cas)
	}
	return c
}

// verifyNodeCert checks that certs[0] chains to cas (any key usage).
func verifyNodeCert(certs []*x509.Certificate, cas *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("node certificate required")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: cas, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	return nil
}

// IsNodeConnection reports whether a connection's TLS state is a node
// handshake: only handshakes offering NodeProto are asked for a client
// certificate, and they succeed only when it chains to the cluster CA.
func IsNodeConnection(cs *tls.ConnectionState) bool {
	return cs != nil && len(cs.PeerCertificates) > 0
}

// offersNodeProto reports whether a ClientHello offers NodeProto.
func offersNodeProto(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, NodeProto)
}

// NodeClientConfig is the client side of a node handshake: this node's
// certificate as client certificate, NodeProto offered, and the peer's
// certificate accepted only if its SHA-256 fingerprint is one of pinned
// (PVE pins the target node's pveproxy-ssl.pem or pve-ssl.pem instead of
// verifying a chain, since a custom pveproxy certificate need not come from
// the cluster CA). Verification is never off: an empty pinned list
// refuses every peer.
func NodeClientConfig(own *tls.Certificate, pinned []string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{*own},
		NextProtos:         []string{NodeProto, "http/1.1"},
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer sent no certificate")
			}
			fp := Fingerprint(cs.PeerCertificates[0])
			if !slices.Contains(pinned, fp) {
				return fmt.Errorf("certificate fingerprint %s is not the node's", fp)
			}
			return nil
		},
	}
}

// NodeCertFingerprints returns the fingerprints of a node's certificates
// in the config root (read by readFile): its custom pveproxy-ssl.pem, its
// pve-ssl.pem, then the ECDSA ones its pveproxy serves to clients that take
// them; those that exist and parse. PVE reports the first.
func NodeCertFingerprints(readFile func(name string) ([]byte, error), node string) []string {
	var out []string
	for _, name := range []string{CustomCertFile, NodeCertFile, CustomECDSACertFile, NodeECDSACertFile} {
		data, err := readFile("nodes/" + node + "/" + name)
		if err != nil {
			continue
		}
		if fp, err := FingerprintPEM(data); err == nil {
			out = append(out, fp)
		}
	}
	return out
}

// NodeCertFingerprint is the first of NodeCertFingerprints, or "".
func NodeCertFingerprint(readFile func(name string) ([]byte, error), node string) string {
	if fps := NodeCertFingerprints(readFile, node); len(fps) > 0 {
		return fps[0]
	}
	return ""
}
