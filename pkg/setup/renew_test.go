package setup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// pairFiles are pve1's node certificate files, RSA then ECDSA.
var pairFiles = []string{NodeCertFile("pve1"), NodeKeyFile("pve1"), ECDSACertFile("pve1"), ECDSAKeyFile("pve1")}

// setUpAt makes pve1's config root as its first start at issued makes it.
func setUpAt(t *testing.T, issued time.Time) *pvefs.Root {
	t.Helper()
	r := openRoot(t)
	withCAKey(t, r)
	o := testOpts()
	o.Now = func() time.Time { return issued }
	mustEnsure(t, r, o)
	return r
}

func renewOpts(at time.Time, force bool) RenewOptions {
	o := testOpts()
	o.Now = func() time.Time { return at }
	return RenewOptions{Options: o, Force: force}
}

func mustRenew(t *testing.T, r *pvefs.Root, o RenewOptions) *RenewResult {
	t.Helper()
	res, err := RenewNodeCertificates(context.Background(), r, o)
	if err != nil {
		t.Fatalf("RenewNodeCertificates: %v", err)
	}
	if len(res.Certs) != 2 || res.Certs[0].CertFile != NodeCertFile("pve1") || res.Certs[1].KeyFile != ECDSAKeyFile("pve1") {
		t.Fatalf("RenewNodeCertificates: Certs = %+v; want the RSA and the ECDSA pair", res.Certs)
	}
	return res
}

// readFiles returns the content of the named files.
func readFiles(t *testing.T, r *pvefs.Root, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		data, err := r.ReadFile(n)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[n] = data
	}
	return out
}

// checkPair checks that the pair on disk is usable at the time at: the key
// matches the certificate (as crypto/tls loads them), and the certificate
// chains to the cluster CA for pve1 and its address.
func checkPair(t *testing.T, r *pvefs.Root, certName, keyName string, at time.Time) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM := readString(t, r, certName), readString(t, r, keyName)
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		t.Errorf("%s and %s do not match: %v", certName, keyName, err)
	}
	c := readCert(t, r, certName)
	if _, err := c.Verify(x509.VerifyOptions{
		Roots: caPool(t, r), DNSName: "pve1.example.com", CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("%s does not chain to the cluster CA: %v", certName, err)
	}
	if err := c.VerifyHostname("192.0.2.10"); err != nil {
		t.Errorf("%s: %v", certName, err)
	}
	return c
}

func TestRenewKeepsValidCertificates(t *testing.T) {
	r := setUpAt(t, testNow)
	before := snapshot(t, r)
	res := mustRenew(t, r, renewOpts(testNow.Add(30*day), false))
	if res.Renewed() || res.NodeName != "pve1" {
		t.Errorf("Renewed() = %v, NodeName %q; want nothing renewed for pve1", res.Renewed(), res.NodeName)
	}
	for _, c := range res.Certs {
		cur := readCert(t, r, c.CertFile)
		if c.Renewed || c.Reason != "" || c.NewKey || !c.NotAfter.Equal(cur.NotAfter) || c.Fingerprint != Fingerprint(cur.Raw) {
			t.Errorf("%+v; want kept, with the certificate's end %v and fingerprint", c, cur.NotAfter)
		}
	}
	if after := snapshot(t, r); !mapsEqual(before, after) {
		t.Errorf("renewal of valid certificates changed the tree:\nbefore %v\nafter  %v", before, after)
	}
}

func TestRenewForced(t *testing.T) {
	r := setUpAt(t, testNow)
	at := testNow.Add(day)
	old := readFiles(t, r, append(pairFiles, CACertFile)...)
	oldCerts := []*x509.Certificate{readCert(t, r, NodeCertFile("pve1")), readCert(t, r, ECDSACertFile("pve1"))}
	res := mustRenew(t, r, renewOpts(at, true))
	if !res.Renewed() {
		t.Fatal("Renewed() = false with Force")
	}
	for i, c := range res.Certs {
		if !c.Renewed || c.Reason != ReasonForced || c.NewKey {
			t.Errorf("%s: %+v; want renewed, forced, key kept", c.CertFile, c)
		}
		if bytes.Equal(old[c.CertFile], readFiles(t, r, c.CertFile)[c.CertFile]) {
			t.Errorf("%s unchanged", c.CertFile)
		}
		if now := readFiles(t, r, c.KeyFile)[c.KeyFile]; !bytes.Equal(old[c.KeyFile], now) {
			t.Errorf("%s replaced; a renewal keeps the key as PVE does", c.KeyFile)
		}
		nc := checkPair(t, r, c.CertFile, c.KeyFile, at)
		if c.Fingerprint != Fingerprint(nc.Raw) || !c.NotAfter.Equal(nc.NotAfter) {
			t.Errorf("%s: result %s %v; file %s %v", c.CertFile, c.Fingerprint, c.NotAfter, Fingerprint(nc.Raw), nc.NotAfter)
		}
		// Issued now, by the same code as the first start: the same
		// subject and names, a new serial, a later end.
		oc := oldCerts[i]
		if !bytes.Equal(nc.RawSubject, oc.RawSubject) || !slices.Equal(nc.DNSNames, oc.DNSNames) ||
			len(nc.IPAddresses) != len(oc.IPAddresses) {
			t.Errorf("%s: subject %q %v %v; was %q %v %v", c.CertFile, rdnString(t, nc.RawSubject), nc.DNSNames, nc.IPAddresses,
				rdnString(t, oc.RawSubject), oc.DNSNames, oc.IPAddresses)
		}
		if nc.SerialNumber.Cmp(oc.SerialNumber) <= 0 {
			t.Errorf("%s: serial %v; want above the old %v", c.CertFile, nc.SerialNumber, oc.SerialNumber)
		}
		if want := at.Add(-backdate).Add(nodeMaxDays * day); !nc.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v; want %v", c.CertFile, nc.NotAfter, want)
		}
	}
	if !bytes.Equal(readFiles(t, r, CAKeyFile)[CAKeyFile], mustReadFixture(t)) ||
		!bytes.Equal(readFiles(t, r, CACertFile)[CACertFile], old[CACertFile]) {
		t.Errorf("the CA changed")
	}
}

func mustReadFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/pve-root-ca.key")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenewByExpiry issues the certificates through the first start's code
// at one time and renews at another: PVE's thresholds (pveupdate) are
// expired, within 14 days, and more than two years left.
func TestRenewByExpiry(t *testing.T) {
	// A certificate issued at issued runs until issued - 1 day + 730 days.
	issued := testNow.Add(-700 * day)
	end := issued.Add(-backdate).Add(nodeMaxDays * day)
	for _, tt := range []struct {
		name string
		at   time.Time
		want RenewReason
	}{
		{"15 days left", end.Add(-15 * day), ""},
		{"14 days left", end.Add(-RenewBefore), ""},
		{"just under 14 days left", end.Add(-RenewBefore + time.Second), ReasonExpiresSoon},
		{"one day left", end.Add(-day), ReasonExpiresSoon},
		{"ends now", end, ReasonExpiresSoon}, // not expired at its NotAfter (PVE: not_after < now)
		{"expired", end.Add(time.Second), ReasonExpired},
		{"two years left", issued.Add(-backdate), ReasonTooLong},
		{"just under two years left", issued.Add(-backdate + time.Second), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := setUpAt(t, issued)
			old := readFiles(t, r, pairFiles...)
			res := mustRenew(t, r, renewOpts(tt.at, false))
			for _, c := range res.Certs {
				if c.Reason != tt.want || c.Renewed != (tt.want != "") {
					t.Errorf("%s at %v (end %v): renewed %v, reason %q; want %q", c.CertFile, tt.at, end, c.Renewed, c.Reason, tt.want)
				}
				now := readFiles(t, r, c.CertFile, c.KeyFile)
				if changed := !bytes.Equal(now[c.CertFile], old[c.CertFile]); changed != c.Renewed {
					t.Errorf("%s: file changed %v; renewed %v", c.CertFile, changed, c.Renewed)
				}
				if !bytes.Equal(now[c.KeyFile], old[c.KeyFile]) {
					t.Errorf("%s replaced", c.KeyFile)
				}
				if c.Renewed {
					nc := checkPair(t, r, c.CertFile, c.KeyFile, tt.at)
					if nc.NotAfter.Sub(tt.at) < 700*day {
						t.Errorf("%s: renewed until %v only", c.CertFile, nc.NotAfter)
					}
				}
			}
		})
	}
}

// otherCA makes a CA with an ECDSA key and the given subject (raw, if
// rawSubject is set).
func otherCA(t *testing.T, subject pkix.Name, rawSubject []byte) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: subject, RawSubject: rawSubject,
		NotBefore: testNow.Add(-day), NotAfter: testNow.Add(3650 * day),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func TestRenewCertificateOfAnotherCA(t *testing.T) {
	for _, sameName := range []bool{false, true} {
		// With the same name, the CA was made again (another key) under
		// the cluster CA's very name: only the signature tells.
		t.Run("same name "+strconv.FormatBool(sameName), func(t *testing.T) {
			r := setUpAt(t, testNow)
			var raw []byte
			if sameName {
				raw = readCert(t, r, CACertFile).RawSubject
			}
			ca, caKey := otherCA(t, pkix.Name{CommonName: "Some Other CA"}, raw)
			if sameName != bytes.Equal(ca.RawSubject, readCert(t, r, CACertFile).RawSubject) {
				t.Fatalf("test CA subject %q", rdnString(t, ca.RawSubject))
			}
			key, err := ParsePrivateKey([]byte(readString(t, r, NodeKeyFile("pve1"))))
			if err != nil {
				t.Fatal(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "pve1.example.com"},
				NotBefore: testNow.Add(-day), NotAfter: testNow.Add(365 * day), DNSNames: []string{"pve1"},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.WriteFile(NodeCertFile("pve1"), certPEM(der), 0o640); err != nil {
				t.Fatal(err)
			}
			oldECDSA := readFiles(t, r, ECDSACertFile("pve1"))
			res := mustRenew(t, r, renewOpts(testNow, false))
			if c := res.Certs[0]; !c.Renewed || c.Reason != ReasonOtherCA || c.NewKey {
				t.Errorf("RSA pair: %+v; want renewed, %q, key kept", c, ReasonOtherCA)
			}
			checkPair(t, r, NodeCertFile("pve1"), NodeKeyFile("pve1"), testNow)
			if c := res.Certs[1]; c.Renewed || !bytes.Equal(oldECDSA[c.CertFile], readFiles(t, r, c.CertFile)[c.CertFile]) {
				t.Errorf("ECDSA pair renewed (%+v); want kept", c)
			}
		})
	}
}

func TestRenewBrokenPairs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		breaks func(t *testing.T, r *pvefs.Root)
		rsa    RenewReason // want for the RSA pair
		newKey bool
	}{
		{"certificate missing", func(t *testing.T, r *pvefs.Root) { mustRemove(t, r, NodeCertFile("pve1")) }, ReasonMissing, false},
		{"certificate unparsable", func(t *testing.T, r *pvefs.Root) {
			mustWrite(t, r, NodeCertFile("pve1"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, ReasonUnparsable, false},
		{"certificate of the other key", func(t *testing.T, r *pvefs.Root) {
			mustWrite(t, r, NodeCertFile("pve1"), readString(t, r, ECDSACertFile("pve1")))
		}, ReasonKeyMismatch, false},
		{"key missing", func(t *testing.T, r *pvefs.Root) { mustRemove(t, r, NodeKeyFile("pve1")) }, ReasonKeyMissing, true},
		{"key unparsable", func(t *testing.T, r *pvefs.Root) { mustWrite(t, r, NodeKeyFile("pve1"), "garbage\n") }, ReasonKeyUnparsable, true},
		{"pair missing", func(t *testing.T, r *pvefs.Root) {
			mustRemove(t, r, NodeKeyFile("pve1"))
			mustRemove(t, r, NodeCertFile("pve1"))
		}, ReasonKeyMissing, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := setUpAt(t, testNow)
			oldKey := readFiles(t, r, NodeKeyFile("pve1"))[NodeKeyFile("pve1")]
			tt.breaks(t, r)
			res := mustRenew(t, r, renewOpts(testNow, false))
			c := res.Certs[0]
			if !c.Renewed || c.Reason != tt.rsa || c.NewKey != tt.newKey {
				t.Errorf("%+v; want renewed, reason %q, new key %v", c, tt.rsa, tt.newKey)
			}
			checkPair(t, r, c.CertFile, c.KeyFile, testNow)
			if key := readFiles(t, r, c.KeyFile)[c.KeyFile]; bytes.Equal(key, oldKey) == tt.newKey {
				t.Errorf("key replaced: %v; want %v", !bytes.Equal(key, oldKey), tt.newKey)
			}
			if k, err := ParsePrivateKey([]byte(readString(t, r, c.KeyFile))); err != nil {
				t.Errorf("%s: %v", c.KeyFile, err)
			} else if _, ok := k.(*rsa.PrivateKey); !ok {
				t.Errorf("%s is not an RSA key", c.KeyFile)
			}
			if res.Certs[1].Renewed {
				t.Errorf("ECDSA pair renewed: %+v", res.Certs[1])
			}
			// The next run finds everything in order.
			if again := mustRenew(t, r, renewOpts(testNow, false)); again.Renewed() {
				t.Errorf("second run renewed %+v", again.Certs)
			}
		})
	}
}

func mustRemove(t *testing.T, r *pvefs.Root, name string) {
	t.Helper()
	if err := r.Remove(name); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, r *pvefs.Root, name, data string) {
	t.Helper()
	if err := r.WriteFile(name, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestRenewFailureKeepsOldPair checks that a renewal that cannot issue
// writes nothing: the old pair stays, and a key that had to be made anew
// is not written either.
func TestRenewFailureKeepsOldPair(t *testing.T) {
	caEnd := func(r *pvefs.Root) time.Time { return readCert(t, r, CACertFile).NotAfter }
	for _, tt := range []struct {
		name   string
		prep   func(t *testing.T, r *pvefs.Root)
		at     func(r *pvefs.Root) time.Time
		errHas string
	}{
		{"CA expires within two weeks", nil, func(r *pvefs.Root) time.Time { return caEnd(r).Add(-10 * day) }, "less than two weeks"},
		{"CA key is not the CA certificate's", func(t *testing.T, r *pvefs.Root) {
			_, k := otherCA(t, pkix.Name{CommonName: "x"}, nil)
			data, err := keyPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, r, CAKeyFile, string(data))
		}, func(*pvefs.Root) time.Time { return testNow }, "match"},
		{"CA key unreadable", func(t *testing.T, r *pvefs.Root) { mustWrite(t, r, CAKeyFile, "garbage\n") },
			func(*pvefs.Root) time.Time { return testNow }, CAKeyFile},
		{"key missing and CA expiring", func(t *testing.T, r *pvefs.Root) { mustRemove(t, r, NodeKeyFile("pve1")) },
			func(r *pvefs.Root) time.Time { return caEnd(r).Add(-10 * day) }, "less than two weeks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := setUpAt(t, testNow)
			if tt.prep != nil {
				tt.prep(t, r)
			}
			before := readFiles(t, r, append(pairFiles, CACertFile, CAKeyFile)...)
			res, err := RenewNodeCertificates(context.Background(), r, renewOpts(tt.at(r), true))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("RenewNodeCertificates: %v; want an error about %q", err, tt.errHas)
			}
			if res == nil || res.Renewed() {
				t.Errorf("result %+v; want nothing renewed", res)
			}
			after := readFiles(t, r, append(pairFiles, CACertFile, CAKeyFile)...)
			for name, data := range before {
				if !bytes.Equal(after[name], data) {
					t.Errorf("failed renewal changed %s", name)
				}
			}
		})
	}
}

func TestRenewNotSetUp(t *testing.T) {
	r := openRoot(t)
	_, err := RenewNodeCertificates(context.Background(), r, renewOpts(testNow, true))
	if !errors.Is(err, ErrNotSetUp) || !strings.Contains(err.Error(), "nodes/pve1 does not exist") {
		t.Errorf("empty root: %v; want ErrNotSetUp for nodes/pve1", err)
	}

	r = setUpAt(t, testNow)
	mustRemove(t, r, CACertFile)
	before := snapshot(t, r)
	_, err = RenewNodeCertificates(context.Background(), r, renewOpts(testNow, true))
	if !errors.Is(err, ErrNotSetUp) || !strings.Contains(err.Error(), CACertFile) {
		t.Errorf("no CA certificate: %v; want ErrNotSetUp naming %s", err, CACertFile)
	}
	if after := snapshot(t, r); !mapsEqual(before, after) {
		t.Errorf("renewal without a CA changed the tree (a renewal never makes a CA)")
	}
}

// TestRenewKeepsModesAndGroups checks that renewed files (and a key made
// anew) have the modes and groups the first start gives them.
func TestRenewKeepsModesAndGroups(t *testing.T) {
	gid := -1
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("www-data"); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	r := setUpAt(t, testNow)
	type owner struct {
		mode     os.FileMode
		uid, gid uint32
	}
	stat := func(name string) owner {
		p, _ := r.Path(name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return owner{fi.Mode(), st.Uid, st.Gid}
	}
	names := append(slices.Clone(pairFiles), CASerialFile)
	want := map[string]owner{}
	for _, n := range names {
		want[n] = stat(n)
	}
	for _, n := range pairFiles {
		if w := want[n]; w.mode != 0o640 || (gid >= 0 && int(w.gid) != gid) {
			t.Fatalf("first start made %s %v group %d; test assumes 0640 group %d", n, w.mode, w.gid, gid)
		}
	}
	mustRemove(t, r, ECDSAKeyFile("pve1")) // made anew: gets the same
	res := mustRenew(t, r, renewOpts(testNow, true))
	if !res.Certs[1].NewKey {
		t.Fatalf("ECDSA key not made anew: %+v", res.Certs[1])
	}
	for _, n := range names {
		if got := stat(n); got != want[n] {
			t.Errorf("%s: %v %d:%d after renewal; want %v %d:%d", n, got.mode, got.uid, got.gid, want[n].mode, want[n].uid, want[n].gid)
		}
	}
}

// TestRenewPairAlwaysMatches reads the pair, as pveproxy and pvestatd load
// it, while renewals run: every read must find a key and certificate that
// belong together.
func TestRenewPairAlwaysMatches(t *testing.T) {
	r := setUpAt(t, testNow)
	cp, _ := r.Path(NodeCertFile("pve1"))
	kp, _ := r.Path(NodeKeyFile("pve1"))
	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				// The order pvestatd's tls.LoadX509KeyPair reads them in.
				cert, err1 := os.ReadFile(cp)
				key, err2 := os.ReadFile(kp)
				if err1 != nil || err2 != nil {
					bad.Add(1)
					continue
				}
				if _, err := tls.X509KeyPair(cert, key); err != nil {
					bad.Add(1)
				}
				reads.Add(1)
			}
		})
	}
	var fps []string
	for i := range 8 {
		res := mustRenew(t, r, renewOpts(testNow.Add(time.Duration(i)*time.Hour), true))
		fps = append(fps, res.Certs[0].Fingerprint)
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read during the renewals")
	}
	if bad.Load() != 0 {
		t.Errorf("%d of %d reads found a missing or mismatched pair", bad.Load(), reads.Load())
	}
	seen := map[string]bool{}
	for _, fp := range fps {
		if seen[fp] {
			t.Errorf("renewals gave the certificate %s twice", fp)
		}
		seen[fp] = true
	}
}

func TestRenewConcurrentWithEnsure(t *testing.T) {
	r := setUpAt(t, testNow)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = RenewNodeCertificates(context.Background(), r, renewOpts(testNow, true))
			} else {
				_, err = Ensure(context.Background(), r, testOpts())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := 0; i < len(pairFiles); i += 2 {
		checkPair(t, r, pairFiles[i], pairFiles[i+1], testNow)
	}
	// Four forced renewals of two certificates each, plus the first
	// start's two: serials 1 to 10, none issued twice.
	if got := strings.TrimSpace(readString(t, r, CASerialFile)); got != "0A" {
		t.Errorf("serial file %q; want 0A", got)
	}
}
