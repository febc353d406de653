package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/setup"
)

// setUpNode makes node's files on the config root under prefix as its
// first start at issued makes them, with the fixture CA key of pkg/setup
// (generating a 4096-bit key would slow the test down).
func setUpNode(t *testing.T, prefix, node string, issued time.Time) *pvefs.Root {
	t.Helper()
	r, err := pvefs.Open(configRoot(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(setup.CAKeyFile); err != nil {
		key, err := os.ReadFile("../../pkg/setup/testdata/pve-root-ca.key")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.MkdirAll("priv", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteFile(setup.CAKeyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = setup.Ensure(context.Background(), r, setup.Options{
		NodeName: node, Domain: "example.com", ResolvConf: "/nonexistent",
		IPs: []netip.Addr{netip.MustParseAddr("192.0.2.99")},
		Now: func() time.Time { return issued },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// nodePair returns node's certificate after checking that it matches its
// key and chains to the cluster CA now.
func nodePair(t *testing.T, r *pvefs.Root, node string) *x509.Certificate {
	t.Helper()
	certPEM, err := r.ReadFile(setup.NodeCertFile(node))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := r.ReadFile(setup.NodeKeyFile(node))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("%s: key and certificate do not match: %v", node, err)
	}
	caPEM, _ := r.ReadFile(setup.CACertFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := setup.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: node}); err != nil {
		t.Errorf("%s: certificate does not chain to the cluster CA: %v", node, err)
	}
	return c
}

func TestClusterUpdateCerts(t *testing.T) {
	prefix := t.TempDir()
	root := configRoot(prefix)
	r := setUpNode(t, prefix, "pve1", time.Now())
	rsaPath := filepath.Join(root, "nodes/pve1/pve-ssl.pem")
	ecPath := filepath.Join(root, "nodes/pve1/pve-ssl-ecdsa.pem")

	// Valid certificates are kept.
	before, _ := r.ReadFile(setup.NodeCertFile("pve1"))
	out := mustRunCluster(t, prefix, "updatecerts", "--node", "pve1")
	kept := regexp.MustCompile(`^` + regexp.QuoteMeta(rsaPath) + `: valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, kept\n` +
		regexp.QuoteMeta(ecPath) + `: valid until [^,]+, kept\n$`)
	if !kept.MatchString(out) {
		t.Errorf("updatecerts on valid certificates printed:\n%s", out)
	}
	if after, _ := r.ReadFile(setup.NodeCertFile("pve1")); !bytes.Equal(before, after) {
		t.Errorf("valid certificate replaced")
	}

	// --force renews them, keeping the keys.
	keyBefore, _ := r.ReadFile(setup.NodeKeyFile("pve1"))
	out = mustRunCluster(t, prefix, "updatecerts", "--node", "pve1", "--force")
	forced := regexp.MustCompile(`^generate new node certificate\n` +
		regexp.QuoteMeta(rsaPath) + `: forced, renewed: valid until [^,]+, fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}\n` +
		regexp.QuoteMeta(ecPath) + `: forced, renewed: valid until [^,]+, fingerprint [0-9A-F:]+\n` +
		`Run 'systemctl reload pveproxy pvestatd' on pve1 so that its daemons use the new certificate.\n$`)
	if !forced.MatchString(out) {
		t.Errorf("updatecerts --force printed:\n%s", out)
	}
	if after, _ := r.ReadFile(setup.NodeCertFile("pve1")); bytes.Equal(before, after) {
		t.Errorf("--force kept the certificate")
	}
	if keyAfter, _ := r.ReadFile(setup.NodeKeyFile("pve1")); !bytes.Equal(keyBefore, keyAfter) {
		t.Errorf("--force replaced the key")
	}
	c := nodePair(t, r, "pve1")
	if fp := setup.Fingerprint(c.Raw); !strings.Contains(out, fp) {
		t.Errorf("output lacks the new fingerprint %s:\n%s", fp, out)
	}
}

func TestClusterUpdateCertsExpiring(t *testing.T) {
	prefix := t.TempDir()
	// Issued 720 days ago, the certificates (730 days from a day before
	// their issue) end in 9 days.
	r := setUpNode(t, prefix, "pve1", time.Now().Add(-720*24*time.Hour))
	old := nodePair(t, r, "pve1")
	out := mustRunCluster(t, prefix, "updatecerts", "--node", "pve1")
	for _, want := range []string{
		filepath.Join(configRoot(prefix), "nodes/pve1/pve-ssl.pem") + ": expires within 14 days, renewed: valid until ",
		filepath.Join(configRoot(prefix), "nodes/pve1/pve-ssl-ecdsa.pem") + ": expires within 14 days, renewed: valid until ",
		"Run 'systemctl reload pveproxy pvestatd' on pve1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if c := nodePair(t, r, "pve1"); time.Until(c.NotAfter) < 700*24*time.Hour || c.SerialNumber.Cmp(old.SerialNumber) <= 0 {
		t.Errorf("renewed certificate ends %v, serial %v (old %v)", c.NotAfter, c.SerialNumber, old.SerialNumber)
	}
	// Nothing is due any more.
	if out := mustRunCluster(t, prefix, "updatecerts", "--node", "pve1"); strings.Contains(out, "renewed") {
		t.Errorf("second run renewed:\n%s", out)
	}
}

// TestClusterUpdateCertsOtherNode renews another member's certificate on
// the shared root: its addresses come from corosync.conf, not from this
// host.
func TestClusterUpdateCertsOtherNode(t *testing.T) {
	prefix := t.TempDir()
	setUpNode(t, prefix, "pve1", time.Now())
	r := setUpNode(t, prefix, "pve2", time.Now())
	mustRunCluster(t, prefix, "create", "demo", "--node", "pve1", "--link0", "192.0.2.11")
	mustRunCluster(t, prefix, "addnode", "pve2", "--node", "pve1", "--link0", "192.0.2.12")
	pve1Before, _ := r.ReadFile(setup.NodeCertFile("pve1"))
	out := mustRunCluster(t, prefix, "updatecerts", "--node", "pve2", "--force")
	if !strings.Contains(out, "nodes/pve2/pve-ssl.pem: forced, renewed") || !strings.Contains(out, " on pve2 ") {
		t.Errorf("updatecerts --node pve2 printed:\n%s", out)
	}
	c := nodePair(t, r, "pve2")
	want := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback, net.ParseIP("192.0.2.12").To4()}
	if len(c.IPAddresses) != len(want) {
		t.Errorf("pve2's certificate has IPs %v; want %v", c.IPAddresses, want)
	}
	for i := range min(len(want), len(c.IPAddresses)) {
		if !c.IPAddresses[i].Equal(want[i]) {
			t.Errorf("pve2's certificate has IPs %v; want %v", c.IPAddresses, want)
			break
		}
	}
	if after, _ := r.ReadFile(setup.NodeCertFile("pve1")); !bytes.Equal(pve1Before, after) {
		t.Errorf("renewing pve2 changed pve1's certificate")
	}
}

func TestClusterUpdateCertsNotSetUp(t *testing.T) {
	prefix := t.TempDir()
	root := configRoot(prefix)
	_, err := runCluster(t, prefix, "updatecerts", "--node", "pve1")
	if err == nil || err.Error() != "config root "+root+" does not exist: the node's first start makes it and the certificates" {
		t.Errorf("missing root: %v", err)
	}
	if _, serr := os.Stat(root); !os.IsNotExist(serr) {
		t.Errorf("updatecerts created the config root")
	}

	setUpNode(t, prefix, "pve1", time.Now())
	_, err = runCluster(t, prefix, "updatecerts", "--node", "pve3")
	if err == nil || !strings.Contains(err.Error(), "node not set up: nodes/pve3 does not exist") {
		t.Errorf("node without files: %v", err)
	}

	// A failed renewal (the CA ends within two weeks) leaves the pair.
	prefix = t.TempDir()
	r := setUpNode(t, prefix, "pve1", time.Now().Add(-3640*24*time.Hour))
	before, _ := r.ReadFile(setup.NodeCertFile("pve1"))
	out, err := runCluster(t, prefix, "updatecerts", "--node", "pve1", "--force")
	if err == nil || !strings.Contains(err.Error(), "less than two weeks") || strings.Contains(out, "renewed") {
		t.Errorf("renewal with an expiring CA: %v\n%s", err, out)
	}
	if after, _ := r.ReadFile(setup.NodeCertFile("pve1")); !bytes.Equal(before, after) {
		t.Errorf("failed renewal changed the certificate")
	}
}
