package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// nodeServer runs a TLS server with the cluster CA of nd and returns its
// address and the handshake states it saw.
func nodeServer(t *testing.T, nd *tlstest.NodeDir) (string, chan tls.ConnectionState) {
	t.Helper()
	cs, err := LoadCertificates(nd.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	cs.ClusterCAs = x509.NewCertPool()
	cs.ClusterCAs.AddCert(nd.CA.Cert)
	m, err := New(DefaultSettings(), cs, discard())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	states := make(chan tls.ConnectionState, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if tc.Handshake() == nil {
				states <- tc.ConnectionState()
			}
			tc.Close()
		}
	}()
	return ln.Addr().String(), states
}

func TestNodeHandshakes(t *testing.T) {
	nd := tlstest.NewNodeDir(t)
	addr, states := nodeServer(t, nd)
	serverFP := Fingerprint(nd.Node.Cert)
	own := nd.CA.Issue(t, tlstest.RSA, "n2").TLSCertificate(t)
	foreign := tlstest.NewCA(t).Issue(t, tlstest.RSA, "n2").TLSCertificate(t)

	dial := func(cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		if err != nil && err.Error() == "EOF" {
			return nil // the test server closes after the handshake
		}
		return err
	}
	// A node with a certificate of the cluster CA, pinning the server.
	if err := dial(NodeClientConfig(&own, []string{serverFP})); err != nil {
		t.Fatalf("node handshake: %v", err)
	}
	if st := <-states; !IsNodeConnection(&st) {
		t.Errorf("node connection not recognised: %+v", st.PeerCertificates)
	}
	// A certificate of another CA, or none, with the node protocol: refused.
	if err := dial(NodeClientConfig(&foreign, []string{serverFP})); err == nil {
		t.Error("certificate of another CA accepted")
	}
	noCert := NodeClientConfig(&own, []string{serverFP})
	noCert.Certificates = nil
	if err := dial(noCert); err == nil {
		t.Error("node handshake without a certificate accepted")
	}
	// A pin that does not match: the client refuses the server.
	if err := dial(NodeClientConfig(&own, []string{"00:11"})); err == nil {
		t.Error("server with another fingerprint accepted")
	}
	if err := dial(NodeClientConfig(&own, nil)); err == nil {
		t.Error("no pins accepted a server")
	}
	// An ordinary client is not asked for a certificate.
	for len(states) > 0 {
		<-states
	}
	pool := x509.NewCertPool()
	pool.AddCert(nd.CA.Cert)
	if err := dial(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatalf("ordinary client: %v", err)
	}
	select {
	case st := <-states:
		if IsNodeConnection(&st) {
			t.Error("ordinary client counted as a node")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake seen for the ordinary client")
	}
}
