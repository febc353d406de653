package setup

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/GehirnInc/crypt/sha256_crypt"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testOpts() Options {
	return Options{
		NodeName:   "pve1",
		Domain:     "example.com",
		IPs:        []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		AdminUser:  "admin@pve",
		ResolvConf: "/nonexistent",
		Now:        func() time.Time { return testNow },
	}
}

func openRoot(t *testing.T) *pvefs.Root {
	t.Helper()
	r, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withCAKey puts the fixture CA key (made by openssl genrsa 4096) into the
// root, so that tests not about CA creation skip the slow key generation.
func withCAKey(t *testing.T, r *pvefs.Root) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join("testdata", "pve-root-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MkdirAll("priv", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(CAKeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustEnsure(t *testing.T, r *pvefs.Root, o Options) *Result {
	t.Helper()
	res, err := Ensure(context.Background(), r, o)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return res
}

func readCert(t *testing.T, r *pvefs.Root, name string) *x509.Certificate {
	t.Helper()
	data, err := r.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificate(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// snapshot records mode and mtime of every entry below the root.
func snapshot(t *testing.T, r *pvefs.Root) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(r.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.Dir(), p)
		if rel == ".locks" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		out[rel] = fi.Mode().String() + " " + fi.ModTime().Format(time.RFC3339Nano)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEnsureFreshRoot(t *testing.T) {
	r := openRoot(t)
	res := mustEnsure(t, r, testOpts())

	// Layout and modes.
	for _, tt := range []struct {
		name string
		mode fs.FileMode
	}{
		{"nodes", fs.ModeDir | 0o755},
		{"nodes/pve1", fs.ModeDir | 0o755},
		{"nodes/pve1/qemu-server", fs.ModeDir | 0o755},
		{"nodes/pve1/lxc", fs.ModeDir | 0o755},
		{"nodes/pve1/priv", fs.ModeDir | 0o700},
		{"priv", fs.ModeDir | 0o700},
		{"priv/lock", fs.ModeDir | 0o700},
		{CAKeyFile, 0o600},
		{CASerialFile, 0o600},
		{AuthKeyFile, 0o600},
		{ShadowFile, 0o600},
		{CACertFile, 0o640},
		{AuthPubFile, 0o640},
		{WWWKeyFile, 0o640},
		{UserCfgFile, 0o640},
		{DomainsCfgFile, 0o640},
		{"nodes/pve1/pve-ssl.key", 0o640},
		{"nodes/pve1/pve-ssl.pem", 0o640},
		{"nodes/pve1/pve-ssl-ecdsa.key", 0o640},
		{"nodes/pve1/pve-ssl-ecdsa.pem", 0o640},
	} {
		p, _ := r.Path(tt.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if fi.Mode() != tt.mode {
			t.Errorf("%s: mode %v; want %v", tt.name, fi.Mode(), tt.mode)
		}
	}
	for link, want := range map[string]string{
		"local":       "nodes/pve1",
		"qemu-server": "nodes/pve1/qemu-server",
		"lxc":         "nodes/pve1/lxc",
	} {
		p, _ := r.Path(link)
		got, err := os.Readlink(p)
		if err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	if _, err := r.Stat("local/pve-ssl.pem"); err != nil {
		t.Errorf("local/pve-ssl.pem not reachable through the link: %v", err)
	}
	if _, err := r.Stat("datacenter.cfg"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("datacenter.cfg: %v; want absent", err)
	}

	// The CA.
	ca := readCert(t, r, CACertFile)
	if !ca.IsCA || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA: IsCA %v, KeyUsage %v; want CA with certSign and cRLSign", ca.IsCA, ca.KeyUsage)
	}
	if k, ok := ca.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 4096 {
		t.Errorf("CA key: %T; want RSA 4096", ca.PublicKey)
	}
	reCASubject := regexp.MustCompile(`^CN=Proxmox Virtual Environment,OU=[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12},O=PVE Cluster Manager CA$`)
	if got := rdnString(t, ca.RawSubject); !reCASubject.MatchString(got) {
		t.Errorf("CA subject %q; want CN, OU=<uuid>, O=PVE Cluster Manager CA in that order", got)
	}
	if want := testNow.Add(-24 * time.Hour); !ca.NotBefore.Equal(want) {
		t.Errorf("CA NotBefore = %v; want %v", ca.NotBefore, want)
	}
	if want := testNow.Add(-24 * time.Hour).Add(3650 * 24 * time.Hour); !ca.NotAfter.Equal(want) {
		t.Errorf("CA NotAfter = %v; want %v", ca.NotAfter, want)
	}

	// Both node certificates.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, tt := range []struct {
		cert, key string
		ec        bool
	}{
		{"nodes/pve1/pve-ssl.pem", "nodes/pve1/pve-ssl.key", false},
		{"nodes/pve1/pve-ssl-ecdsa.pem", "nodes/pve1/pve-ssl-ecdsa.key", true},
	} {
		c := readCert(t, r, tt.cert)
		for _, name := range []string{"pve1", "localhost", "pve1.example.com", "127.0.0.1", "::1", "192.0.2.10", "2001:db8::10"} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s: verify for %s: %v", tt.cert, name, err)
			}
		}
		if got, want := rdnString(t, c.RawSubject), "OU=PVE Cluster Node,O=Proxmox Virtual Environment,CN=pve1.example.com"; got != want {
			t.Errorf("%s: subject %q; want %q", tt.cert, got, want)
		}
		if c.IsCA || !c.BasicConstraintsValid {
			t.Errorf("%s: want basicConstraints CA:FALSE", tt.cert)
		}
		if want := testNow.Add(-24 * time.Hour).Add(730 * 24 * time.Hour); !c.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter = %v; want %v (two years)", tt.cert, c.NotAfter, want)
		}
		keyData, _ := r.ReadFile(tt.key)
		if !strings.HasPrefix(string(keyData), "-----BEGIN PRIVATE KEY-----") {
			t.Errorf("%s: want PKCS#8 PEM", tt.key)
		}
		k, err := ParsePrivateKey(keyData)
		if err != nil {
			t.Fatalf("%s: %v", tt.key, err)
		}
		switch pk := k.Public().(type) {
		case *rsa.PublicKey:
			if tt.ec || pk.N.BitLen() != 2048 || !pk.Equal(c.PublicKey) {
				t.Errorf("%s: RSA %d bits, matches cert %v; want RSA 2048 matching", tt.key, pk.N.BitLen(), pk.Equal(c.PublicKey))
			}
		case *ecdsa.PublicKey:
			if !tt.ec || pk.Curve.Params().Name != "P-256" || !pk.Equal(c.PublicKey) {
				t.Errorf("%s: ECDSA %s; want P-256 matching the certificate", tt.key, pk.Curve.Params().Name)
			}
		}
	}
	rsaCert := readCert(t, r, "nodes/pve1/pve-ssl.pem")
	ecCert := readCert(t, r, "nodes/pve1/pve-ssl-ecdsa.pem")
	if rsaCert.SerialNumber.Int64() != 1 || ecCert.SerialNumber.Int64() != 2 {
		t.Errorf("serials = %v, %v; want 1, 2", rsaCert.SerialNumber, ecCert.SerialNumber)
	}
	if srl, _ := r.ReadFile(CASerialFile); string(srl) != "02\n" {
		t.Errorf("serial file = %q; want 02", srl)
	}

	// Ticket keys.
	priv, err := r.ReadFile(AuthKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubData, _ := r.ReadFile(AuthPubFile)
	blk, _ := pem.Decode(pubData)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		t.Fatalf("authkey.pub: want a PUBLIC KEY PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if rp, ok := pub.(*rsa.PublicKey); !ok || rp.N.BitLen() != 2048 || !rp.Equal(ak.Public()) {
		t.Errorf("authkey.pub does not hold the RSA 2048 public key of authkey.key")
	}
	if www, _ := r.ReadFile(WWWKeyFile); !strings.HasPrefix(string(www), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("pve-www.key: want a PEM private key")
	}

	// Users and realms.
	if got, want := readString(t, r, UserCfgFile),
		"user:admin@pve:1:0:::::\nuser:root@pam:1:0:::::\n\n\n\n\nacl:1:/:admin@pve:Administrator:\n"; got != want {
		t.Errorf("user.cfg = %q; want %q", got, want)
	}
	if got := readString(t, r, DomainsCfgFile); got != DefaultDomainsCfg {
		t.Errorf("domains.cfg = %q; want %q", got, DefaultDomainsCfg)
	}
	if res.AdminUser != "admin@pve" || !regexp.MustCompile(`^[A-Za-z0-9_-]{20}$`).MatchString(res.AdminPassword) {
		t.Errorf("Result admin = %q / %q; want admin@pve and a 20-character password", res.AdminUser, res.AdminPassword)
	}
	shadow := readString(t, r, ShadowFile)
	m := regexp.MustCompile(`^admin:(\$5\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{43}):\n$`).FindStringSubmatch(shadow)
	if m == nil {
		t.Fatalf("shadow.cfg = %q; want admin:$5$<salt>$<hash>:", shadow)
	}
	if err := sha256_crypt.New().Verify(m[1], []byte(res.AdminPassword)); err != nil {
		t.Errorf("shadow hash does not verify the returned password: %v", err)
	}

	// Result.
	if res.NodeName != "pve1" {
		t.Errorf("NodeName = %q", res.NodeName)
	}
	if res.NodeFingerprint != Fingerprint(rsaCert.Raw) || res.CAFingerprint != Fingerprint(ca.Raw) ||
		res.ECDSAFingerprint != Fingerprint(ecCert.Raw) {
		t.Errorf("fingerprints in Result do not match the files")
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(res.NodeFingerprint) {
		t.Errorf("NodeFingerprint = %q; want uppercase colon-separated hex", res.NodeFingerprint)
	}

	// A second run changes nothing and tells no password.
	before := snapshot(t, r)
	res2 := mustEnsure(t, r, testOpts())
	if len(res2.Created) != 0 || res2.AdminPassword != "" || res2.AdminUser != "" {
		t.Errorf("second Ensure: Created %v, admin %q/%q; want nothing", res2.Created, res2.AdminUser, res2.AdminPassword)
	}
	if after := snapshot(t, r); !mapsEqual(before, after) {
		t.Errorf("second Ensure changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	if res2.NodeFingerprint != res.NodeFingerprint || res2.CAFingerprint != res.CAFingerprint {
		t.Errorf("second Ensure reports other fingerprints")
	}
}

func TestEnsureServiceGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change file groups")
	}
	g, err := user.LookupGroup("www-data")
	if err != nil {
		t.Skip("no www-data group on this host")
	}
	gid, _ := strconv.Atoi(g.Gid)
	r := openRoot(t)
	withCAKey(t, r)
	mustEnsure(t, r, testOpts())
	for _, tt := range []struct {
		name string
		gid  int
	}{
		{"nodes/pve1/pve-ssl.key", gid},
		{"nodes/pve1/pve-ssl-ecdsa.key", gid},
		{"nodes/pve1/pve-ssl.pem", gid},
		{WWWKeyFile, gid},
		{UserCfgFile, gid},
		{AuthPubFile, gid},
		{DomainsCfgFile, gid},
		{CACertFile, gid},
		{"priv", 0},
		{AuthKeyFile, 0},
		{ShadowFile, 0},
		{CASerialFile, 0},
	} {
		p, _ := r.Path(tt.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Gid) != tt.gid || st.Uid != 0 {
			t.Errorf("%s: owner %d:%d; want 0:%d", tt.name, st.Uid, st.Gid, tt.gid)
		}
	}
}

func TestEnsureKeepsExistingUserCfg(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	const own = "user:root@pam:1:0:::root@example.com:::\nuser:alice@pve:1:0:Alice::::\n"
	if err := r.WriteFile(UserCfgFile, []byte(own), 0o640); err != nil {
		t.Fatal(err)
	}
	const domains = "pam: pam\n\tcomment mine\n\n"
	if err := r.WriteFile(DomainsCfgFile, []byte(domains), 0o640); err != nil {
		t.Fatal(err)
	}
	p, _ := r.Path(UserCfgFile)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	res := mustEnsure(t, r, testOpts())
	if got := readString(t, r, UserCfgFile); got != own {
		t.Errorf("user.cfg = %q; want untouched %q", got, own)
	}
	if fi, _ := os.Stat(p); !fi.ModTime().Equal(old) {
		t.Errorf("user.cfg mtime = %v; want untouched %v", fi.ModTime(), old)
	}
	if got := readString(t, r, DomainsCfgFile); got != domains {
		t.Errorf("domains.cfg = %q; want untouched", got)
	}
	if res.AdminPassword != "" || res.AdminUser != "" {
		t.Errorf("Result admin = %q/%q; want none", res.AdminUser, res.AdminPassword)
	}
	if _, err := r.Stat(ShadowFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("shadow.cfg: %v; want not created", err)
	}
	if slices.Contains(res.Created, CAKeyFile) {
		t.Errorf("the existing CA key was replaced")
	}
}

func TestEnsureWithoutAdmin(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	o := testOpts()
	o.AdminUser = ""
	res := mustEnsure(t, r, o)
	if got, want := readString(t, r, UserCfgFile), "user:root@pam:1:0:::::\n\n\n\n\n"; got != want {
		t.Errorf("user.cfg = %q; want %q", got, want)
	}
	if res.AdminPassword != "" {
		t.Errorf("AdminPassword = %q; want none", res.AdminPassword)
	}
}

func TestEnsureNewCAReissuesNodeCerts(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	first := mustEnsure(t, r, testOpts())
	if err := r.Remove(CACertFile); err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := r.ReadFile("nodes/pve1/pve-ssl.key")
	second := mustEnsure(t, r, testOpts())
	if second.CAFingerprint == first.CAFingerprint || second.NodeFingerprint == first.NodeFingerprint ||
		second.ECDSAFingerprint == first.ECDSAFingerprint {
		t.Fatalf("fingerprints unchanged after the CA certificate was recreated")
	}
	if keyAfter, _ := r.ReadFile("nodes/pve1/pve-ssl.key"); string(keyAfter) != string(keyBefore) {
		t.Errorf("node key replaced; want kept")
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, r, CACertFile))
	for _, name := range []string{"nodes/pve1/pve-ssl.pem", "nodes/pve1/pve-ssl-ecdsa.pem"} {
		c := readCert(t, r, name)
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "pve1", CurrentTime: testNow}); err != nil {
			t.Errorf("%s does not verify against the new CA: %v", name, err)
		}
		if c.SerialNumber.Int64() < 3 {
			t.Errorf("%s: serial %v reused; want > 2", name, c.SerialNumber)
		}
	}
}

func TestEnsureRestoresAuthPub(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	mustEnsure(t, r, testOpts())
	privBefore, _ := r.ReadFile(AuthKeyFile)
	if err := r.Remove(AuthPubFile); err != nil {
		t.Fatal(err)
	}
	res := mustEnsure(t, r, testOpts())
	if !slices.Equal(res.Created, []string{AuthPubFile}) {
		t.Errorf("Created = %v; want only %s", res.Created, AuthPubFile)
	}
	if privAfter, _ := r.ReadFile(AuthKeyFile); string(privAfter) != string(privBefore) {
		t.Errorf("authkey.key replaced; want kept")
	}
	k, _ := ParsePrivateKey(privBefore)
	pubData, _ := r.ReadFile(AuthPubFile)
	blk, _ := pem.Decode(pubData)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !pub.(*rsa.PublicKey).Equal(k.Public()) {
		t.Errorf("restored authkey.pub does not match authkey.key (%v)", err)
	}
}

func TestEnsureNewNodeKeyGetsNewCert(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	first := mustEnsure(t, r, testOpts())
	if err := r.Remove(NodeKeyFile("pve1")); err != nil {
		t.Fatal(err)
	}
	second := mustEnsure(t, r, testOpts())
	if second.NodeFingerprint == first.NodeFingerprint {
		t.Fatalf("node certificate kept although its key was replaced")
	}
	if second.ECDSAFingerprint != first.ECDSAFingerprint || second.CAFingerprint != first.CAFingerprint {
		t.Errorf("ECDSA or CA certificate changed; want only the RSA node certificate reissued")
	}
	keyData, _ := r.ReadFile(NodeKeyFile("pve1"))
	k, err := ParsePrivateKey(keyData)
	if err != nil {
		t.Fatal(err)
	}
	if c := readCert(t, r, NodeCertFile("pve1")); !k.Public().(*rsa.PublicKey).Equal(c.PublicKey) {
		t.Errorf("new node key does not match the node certificate")
	}
}

func TestEnsureRetargetsLocalLink(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	mustEnsure(t, r, testOpts())
	o := testOpts()
	o.NodeName = "pve2"
	res := mustEnsure(t, r, o)
	p, _ := r.Path("local")
	if got, _ := os.Readlink(p); got != "nodes/pve2" {
		t.Errorf("local -> %q; want nodes/pve2", got)
	}
	for _, want := range []string{"local", "qemu-server", "lxc", "nodes/pve2/pve-ssl.pem"} {
		if !slices.Contains(res.Created, want) {
			t.Errorf("Created %v lacks %s", res.Created, want)
		}
	}
	if _, err := r.Stat("nodes/pve1/pve-ssl.pem"); err != nil {
		t.Errorf("old node's files removed: %v", err)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	var wg sync.WaitGroup
	results := make([]*Result, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Ensure(context.Background(), r, testOpts())
		}()
	}
	wg.Wait()
	passwords := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
		if results[i].AdminPassword != "" {
			passwords++
		}
		if results[i].NodeFingerprint != results[0].NodeFingerprint {
			t.Errorf("Ensure %d saw another node certificate", i)
		}
	}
	if passwords != 1 {
		t.Errorf("%d calls returned a password; want exactly 1", passwords)
	}
	priv, _ := r.ReadFile(AuthKeyFile)
	k, _ := ParsePrivateKey(priv)
	pubData, _ := r.ReadFile(AuthPubFile)
	blk, _ := pem.Decode(pubData)
	pub, _ := x509.ParsePKIXPublicKey(blk.Bytes)
	if !pub.(*rsa.PublicKey).Equal(k.Public()) {
		t.Errorf("authkey.pub and authkey.key do not match after concurrent Ensure")
	}
}

func TestEnsureRejectsBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*Options)
	}{
		{"node name with dot", func(o *Options) { o.NodeName = "pve.example" }},
		{"node name with underscore", func(o *Options) { o.NodeName = "pve_1" }},
		{"admin in pam realm", func(o *Options) { o.AdminUser = "admin@pam" }},
		{"admin without realm", func(o *Options) { o.AdminUser = "admin" }},
		{"admin with colon", func(o *Options) { o.AdminUser = "ad:min@pve" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			o := testOpts()
			tt.mod(&o)
			_, err := Ensure(context.Background(), r, o)
			if !errors.Is(err, ErrInvalidOption) {
				t.Errorf("Ensure error = %v; want ErrInvalidOption", err)
			}
			if ents, _ := os.ReadDir(r.Dir()); len(ents) > 1 {
				t.Errorf("Ensure with bad options created files")
			}
		})
	}
}

func TestEnsureDefaultsFromHost(t *testing.T) {
	r := openRoot(t)
	withCAKey(t, r)
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("domain first.example\nsearch lab.example other.example\nnameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{ResolvConf: rc, Now: func() time.Time { return testNow }}
	res := mustEnsure(t, r, o)
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	if res.NodeName != short {
		t.Errorf("NodeName = %q; want short host name %q", res.NodeName, short)
	}
	c := readCert(t, r, NodeCertFile(short))
	if want := short + ".lab.example"; c.Subject.CommonName != want || !slices.Contains(c.DNSNames, want) {
		t.Errorf("CN %q, DNS %v; want %s", c.Subject.CommonName, c.DNSNames, want)
	}
	if !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }) {
		t.Errorf("IP SANs %v lack 127.0.0.1", c.IPAddresses)
	}
}

func TestSearchDomain(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"nameserver 192.0.2.1\n", ""},
		{"search example.com\n", "example.com"},
		{"search a.example b.example\n", "a.example"},
		{"domain x.example\nsearch y.example\n", "y.example"},
		{"# search commented.example\n", ""},
		{" search indented.example\n", ""},
	} {
		if got := SearchDomain([]byte(tt.in)); got != tt.want {
			t.Errorf("SearchDomain(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestUserCfg(t *testing.T) {
	for _, tt := range []struct{ admin, want string }{
		{"", "user:root@pam:1:0:::::\n\n\n\n\n"},
		{"zed@pve", "user:root@pam:1:0:::::\nuser:zed@pve:1:0:::::\n\n\n\n\nacl:1:/:zed@pve:Administrator:\n"},
	} {
		if got := string(UserCfg(tt.admin)); got != tt.want {
			t.Errorf("UserCfg(%q) = %q; want %q", tt.admin, got, tt.want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret:pw")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$5\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{43}$`).MatchString(h) {
		t.Errorf("HashPassword = %q; want $5$<8-char salt>$<43-char hash> without rounds=", h)
	}
	if err := sha256_crypt.New().Verify(h, []byte("s3cret:pw")); err != nil {
		t.Errorf("hash does not verify: %v", err)
	}
	if err := sha256_crypt.New().Verify(h, []byte("wrong")); err == nil {
		t.Errorf("hash verifies a wrong password")
	}
}

func TestParsePrivateKeyFormats(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "pve-root-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("openssl PKCS#8 key: %v", err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))})
	if k1, err := ParsePrivateKey(pkcs1); err != nil || !k1.Public().(*rsa.PublicKey).Equal(k.Public()) {
		t.Errorf("PKCS#1 key: %v", err)
	}
	if _, err := ParsePrivateKey([]byte("garbage")); !errors.Is(err, ErrNoPEM) {
		t.Errorf("garbage: error %v; want ErrNoPEM", err)
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the empty input.
	want := "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
	if got := Fingerprint(nil); got != want {
		t.Errorf("Fingerprint(empty) = %q; want %q", got, want)
	}
}

func readString(t *testing.T, r *pvefs.Root, name string) string {
	t.Helper()
	b, err := r.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// rdnString renders a raw distinguished name in encoding order, short
// attribute names, to check that PVE's attribute order is kept.
func rdnString(t *testing.T, raw []byte) string {
	t.Helper()
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU"}
	var parts []string
	for _, set := range seq {
		for _, atv := range set {
			n := names[atv.Type.String()]
			if n == "" {
				n = atv.Type.String()
			}
			parts = append(parts, n+"="+atv.Value.(string))
		}
	}
	return strings.Join(parts, ",")
}
