package qemuapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/qemuapi"
	"github.com/pvenode/pvenode/pkg/qemu/spicetest"
	"github.com/pvenode/pvenode/pkg/spiceticket"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// spicePKI writes a CA (pve-root-ca.pem) and a node certificate with PVE's
// subject layout (nodes/n1/pve-ssl.{pem,key}) under dir and returns a
// client configuration trusting the CA for "localhost".
func spicePKI(t *testing.T, dir string) *tls.Config {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Proxmox Virtual Environment", OrganizationalUnit: []string{"test"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	oid := func(s string) asn1.ObjectIdentifier {
		var o asn1.ObjectIdentifier
		for _, p := range strings.Split(s, ".") {
			n, _ := strconv.Atoi(p)
			o = append(o, n)
		}
		return o
	}
	raw, err := asn1.Marshal(pkix.RDNSequence{ // PVE's order: OU, O, CN
		{{Type: oid("2.5.4.11"), Value: "PVE Cluster Node"}},
		{{Type: oid("2.5.4.10"), Value: "Proxmox Virtual Environment"}},
		{{Type: oid("2.5.4.3"), Value: "n1.example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), RawSubject: raw, DNSNames: []string{"localhost", "n1.example.com"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, b := range map[string][]byte{
		"pve-root-ca.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"nodes/n1/pve-ssl.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"nodes/n1/pve-ssl.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// newSpiceEnv is newEnv with the node's SPICE certificates given to vmm.
func newSpiceEnv(t *testing.T) (*env, *tls.Config) {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	dir := t.TempDir()
	tc := spicePKI(t, dir)
	store := filepath.Join(dir, "store")
	ae := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"storage.cfg": "dir: store\n\tpath " + store + "\n\tcontent images,iso\n\n",
		"user.cfg": "user:admin@pve:1:0:::::\nuser:alice@pve:1:0:::::\n" +
			"acl:1:/:admin@pve:Administrator:\n" +
			"acl:1:/vms/100:alice@pve:PVEVMUser:\n",
	}})
	tm, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: node, Logger: ae.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close(context.Background()) })
	run, err := os.MkdirTemp("", "qa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	host := &storage.Host{Root: ae.Root, Node: node}
	vms := vmm.New(vmm.Config{RunDir: run, Upstream: true, NetBackend: "user",
		KVM: func() bool { return false }, ResolveVolume: host.Resolve,
		SpiceKeyFile:    filepath.Join(dir, "nodes/n1/pve-ssl.key"),
		SpiceCertFile:   filepath.Join(dir, "nodes/n1/pve-ssl.pem"),
		SpiceCACertFile: filepath.Join(dir, "pve-root-ca.pem")})
	deps := &qemuapi.Deps{Config: ae.Root, Privs: ae.Auth, Tasks: tm, VMs: vms, Storage: host,
		QEMUVersion: func() string { return "7.2.0" }, HostCPUs: 2, Log: ae.Log, SerialTerminal: serialTerminal}
	e := &env{Client: ae.Serve(api.NewRegistry(qemuapi.Methods(deps))), tasks: tm, vms: vms, store: store}
	t.Cleanup(e.killAll)
	return e, tc
}

func TestSpiceproxy(t *testing.T) {
	e, tc := newSpiceEnv(t)
	base := "/nodes/" + node + "/qemu/"
	e.createVM("100", url.Values{"vga": {"qxl"}, "name": {"desk"}})
	e.createVM("101", url.Values{"vga": {"std"}})

	// Not running; no permission; no SPICE.
	if code, _, body := e.Call("admin", "POST", base+"100/spiceproxy", nil); code != 500 || !strings.Contains(body, "VM 100 not running") {
		t.Errorf("stopped VM: %d %s; want 500 VM 100 not running", code, body)
	}
	if code, _, _ := e.Call("alice", "POST", base+"101/spiceproxy", nil); code != 403 {
		t.Errorf("alice on VM 101: %d; want 403", code)
	}
	for _, id := range []string{"100", "101"} {
		if st := e.task("POST", base+id+"/status/start", nil); st != "OK" {
			t.Fatalf("start %s: %s", id, st)
		}
	}
	if code, _, body := e.Call("admin", "POST", base+"101/spiceproxy", nil); code != 500 || !strings.Contains(body, "no spice port") {
		t.Errorf("VM without SPICE: %d %s; want 500 no spice port", code, body)
	}

	var vv map[string]any
	if err := json.Unmarshal(e.Must("alice", "POST", base+"100/spiceproxy", url.Values{"proxy": {"2001:db8::1"}}), &vv); err != nil {
		t.Fatal(err)
	}
	port := int(vv["tls-port"].(float64))
	if port < vmm.SpicePortMin || port > vmm.SpicePortMax {
		t.Errorf("tls-port = %d; want in %d-%d", port, vmm.SpicePortMin, vmm.SpicePortMax)
	}
	ca, _ := os.ReadFile(filepath.Join(e.Dir, "pve-root-ca.pem"))
	for k, want := range map[string]any{
		"type": "spice", "title": "VM 100 - desk", "proxy": "http://[2001:db8::1]:3128",
		"host-subject":     "OU=PVE Cluster Node,O=Proxmox Virtual Environment,CN=n1.example.com",
		"ca":               strings.ReplaceAll(string(ca), "\n", `\n`),
		"delete-this-file": float64(1), "secure-attention": "Ctrl+Alt+Ins", "toggle-fullscreen": "Shift+F11",
		"release-cursor": "Ctrl+Alt+R",
	} {
		if vv[k] != want {
			t.Errorf("%s = %#v; want %#v", k, vv[k], want)
		}
	}
	if len(vv) != 12 {
		t.Errorf("answer has %d keys; want 12: %v", len(vv), vv)
	}
	password, _ := vv["password"].(string)
	if len(password) != 40 {
		t.Errorf("password = %q; want 40 hex digits", password)
	}
	host, _ := vv["host"].(string)
	secret := ticket.CSRFSecret([]byte(e.File("pve-www.key")))
	vmid, tnode, tport, err := spiceticket.Verify(secret, host+":"+strconv.Itoa(port), time.Now())
	if err != nil || vmid != 100 || tnode != node || tport != port {
		t.Errorf("Verify(host) = %d %s %d %v; want 100 %s %d", vmid, tnode, tport, err, node, port)
	}

	// The password works against QEMU's SPICE server; another does not.
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if r, err := spicetest.Dial(addr, tc, password); err != nil || r != 0 {
		t.Errorf("SPICE link with the API's password = %d, %v; want 0", r, err)
	}
	if r, err := spicetest.Dial(addr, tc, strings.Repeat("0", 40)); err != nil || r == 0 {
		t.Errorf("SPICE link with a wrong password = %d, %v; want refused", r, err)
	}
}
