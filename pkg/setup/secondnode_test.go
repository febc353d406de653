package setup

import (
	"bytes"
	"context"
	"crypto/x509"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Nodes of one cluster share the config root. These tests start a second
// node (another --node name) on the root of the first and check that it
// gets its own certificates from the cluster CA, that the CA and the first
// node's files stay as they are, and that the CA key stays in priv/.

func secondNodeOpts() Options {
	o := testOpts()
	o.NodeName = "pve2"
	o.IPs = []netip.Addr{netip.MustParseAddr("192.0.2.20")}
	return o
}

// caPool returns the cluster CA of the root as a pool.
func caPool(t *testing.T, r *pvefs.Root) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, r, CACertFile))
	return pool
}

// verifyNodeCert checks that the certificate name was issued by the cluster
// CA to node, with its names.
func verifyNodeCert(t *testing.T, r *pvefs.Root, name, node string, ip string) *x509.Certificate {
	t.Helper()
	c := readCert(t, r, name)
	if _, err := c.Verify(x509.VerifyOptions{
		Roots:       caPool(t, r),
		DNSName:     node,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		CurrentTime: testNow,
	}); err != nil {
		t.Errorf("%s does not verify against the cluster CA for %s: %v", name, node, err)
	}
	if want := node + ".example.com"; c.Subject.CommonName != want {
		t.Errorf("%s: CN %q; want %q", name, c.Subject.CommonName, want)
	}
	if !slices.Contains(c.DNSNames, node) {
		t.Errorf("%s: DNS names %v lack %s", name, c.DNSNames, node)
	}
	if err := c.VerifyHostname(ip); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	return c
}

func TestSecondNodeOnSharedRoot(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	first := mustEnsure(t, r, testOpts())
	before := map[string][]byte{}
	for _, name := range []string{CACertFile, CAKeyFile, NodeCertFile("pve1"), NodeKeyFile("pve1"),
		ECDSACertFile("pve1"), ECDSAKeyFile("pve1"), AuthKeyFile, AuthPubFile, WWWKeyFile, "user.cfg"} {
		data, err := r.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = data
	}

	second := mustEnsure(t, r, secondNodeOpts())
	if second.NodeName != "pve2" {
		t.Fatalf("NodeName = %q", second.NodeName)
	}
	if second.CAFingerprint != first.CAFingerprint {
		t.Errorf("second node sees another CA")
	}
	if second.NodeFingerprint == first.NodeFingerprint || second.ECDSAFingerprint == first.ECDSAFingerprint {
		t.Errorf("second node got the first node's certificate")
	}
	if second.AdminPassword != "" {
		t.Errorf("second node created another administrator")
	}
	// The CA, the shared keys and everything of pve1 are untouched.
	for name, data := range before {
		if now, _ := r.ReadFile(name); !bytes.Equal(now, data) {
			t.Errorf("starting pve2 changed %s", name)
		}
	}
	for _, name := range second.Created {
		if name == CACertFile || name == CAKeyFile || strings.HasPrefix(name, "nodes/pve1/") {
			t.Errorf("starting pve2 created %s", name)
		}
	}

	// Each node's certificates come from the same CA and name their node.
	c1 := verifyNodeCert(t, r, NodeCertFile("pve1"), "pve1", "192.0.2.10")
	c2 := verifyNodeCert(t, r, NodeCertFile("pve2"), "pve2", "192.0.2.20")
	e1 := verifyNodeCert(t, r, ECDSACertFile("pve1"), "pve1", "192.0.2.10")
	e2 := verifyNodeCert(t, r, ECDSACertFile("pve2"), "pve2", "192.0.2.20")
	if slices.Contains(c2.DNSNames, "pve1") || c2.VerifyHostname("192.0.2.10") == nil {
		t.Errorf("pve2's certificate names pve1: %v %v", c2.DNSNames, c2.IPAddresses)
	}
	serials := map[string]bool{}
	for _, c := range []*x509.Certificate{c1, c2, e1, e2} {
		s := c.SerialNumber.String()
		if serials[s] {
			t.Errorf("serial %s issued twice", s)
		}
		serials[s] = true
	}
	k1, _ := r.ReadFile(NodeKeyFile("pve1"))
	k2, _ := r.ReadFile(NodeKeyFile("pve2"))
	if bytes.Equal(k1, k2) {
		t.Errorf("both nodes have the same key")
	}

	// A restart of pve2 creates nothing. (A restart of pve1 would point
	// the local, qemu-server and lxc links back to pve1: on a plain shared
	// directory they are one node's, unlike pmxcfs's per-node view; see
	// TestEnsureRetargetsLocalLink.)
	again := mustEnsure(t, r, secondNodeOpts())
	if len(again.Created) != 0 || again.NodeFingerprint != second.NodeFingerprint || again.ECDSAFingerprint != second.ECDSAFingerprint {
		t.Errorf("second start of pve2 created %v", again.Created)
	}
}

// TestCAKeyOnlyInPriv checks that, with two nodes on the root, the CA's
// private key exists once, as priv/pve-root-ca.key (0600 in the 0700 priv/),
// and that the only private keys outside priv/ are the node keys and the
// CSRF key that pveproxy reads.
func TestCAKeyOnlyInPriv(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	mustEnsure(t, r, testOpts())
	mustEnsure(t, r, secondNodeOpts())

	caKeyData, err := r.ReadFile(CAKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ParsePrivateKey(caKeyData)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := r.Stat(CAKeyFile); fi.Mode() != 0o600 {
		t.Errorf("%s mode %v; want 0600", CAKeyFile, fi.Mode())
	}
	if fi, _ := r.Stat("priv"); fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("priv mode %v; want drwx------", fi.Mode())
	}
	wantOutside := []string{WWWKeyFile, NodeKeyFile("pve1"), ECDSAKeyFile("pve1"), NodeKeyFile("pve2"), ECDSAKeyFile("pve2")}
	var outside []string
	err = filepath.WalkDir(r.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(r.Dir(), p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		k, err := ParsePrivateKey(data)
		if err != nil {
			return nil // not a key
		}
		if pub, ok := k.Public().(interface{ Equal(any) bool }); ok && pub.Equal(caKey.Public()) && rel != CAKeyFile {
			t.Errorf("the CA key is also in %s", rel)
		}
		if !strings.HasPrefix(rel, "priv/") {
			outside = append(outside, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(outside)
	slices.Sort(wantOutside)
	if !slices.Equal(outside, wantOutside) {
		t.Errorf("private keys outside priv/: %v; want %v", outside, wantOutside)
	}
}

// TestTwoNodesFirstStartConcurrently starts both nodes at once on an empty
// root: one CA is made, and both node certificates come from it.
func TestTwoNodesFirstStartConcurrently(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r) // the CA certificate is still made by Ensure
	var wg sync.WaitGroup
	res := make([]*Result, 2)
	errs := make([]error, 2)
	for i, o := range []Options{testOpts(), secondNodeOpts()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Roots, as separate daemons would have.
			ri, err := pvefs.Open(r.Dir())
			if err == nil {
				res[i], err = Ensure(context.Background(), ri, o)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
	}
	if res[0].CAFingerprint != res[1].CAFingerprint {
		t.Errorf("the nodes made different CAs")
	}
	verifyNodeCert(t, r, NodeCertFile("pve1"), "pve1", "192.0.2.10")
	verifyNodeCert(t, r, NodeCertFile("pve2"), "pve2", "192.0.2.20")
	verifyNodeCert(t, r, ECDSACertFile("pve1"), "pve1", "192.0.2.10")
	verifyNodeCert(t, r, ECDSACertFile("pve2"), "pve2", "192.0.2.20")
}
