package qemuapi

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/spiceticket"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// The SPICE console (qemu-server's spiceproxy and PVE::AccessControl's
// remote_viewer_config): POST .../spiceproxy finds the running VM's SPICE
// TLS port through QMP, signs a proxy ticket for it (pkg/spiceticket, with
// the CSRF secret of pve-www.key), sets the one-time SPICE password in QEMU
// expiring after 30 s, and answers the fields of a remote-viewer (.vv)
// file. The viewer then connects through spiceproxy (port 3128) with the
// ticket as CONNECT target; SPICE's TLS runs end to end with QEMU, which
// uses the node certificate, hence ca and host-subject.

// spicePasswordExpiry is PVE's expire_password time for SPICE tickets.
const spicePasswordExpiry = "+30"

// spiceproxyMethod declares POST .../spiceproxy.
func spiceproxyMethod(d *Deps) api.Method {
	return api.Method{
		Name: "spiceproxy", Path: "/nodes/{node}/qemu/{vmid}/spiceproxy", HTTP: "POST",
		Description: "Returns a SPICE configuration to connect to the VM.",
		Protected:   true,
		ProxyTo:     "node",
		Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Console"}}},
		Params: map[string]*api.Schema{
			"node":  api.Str().Fmt("pve-node").TT("<string>"),
			"proxy": api.Str().Fmt("address").Opt().TT("<string>"),
			"vmid":  api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
		},
		// PVE's remote-viewer-config (no type in its declaration).
		Returns: (&api.Schema{Properties: map[string]*api.Schema{
			"host":     api.Str(),
			"password": api.Str(),
			"proxy":    api.Str(),
			"tls-port": api.Int(),
			"type":     api.Str(),
		}}).Additional(true),
		Handle: d.spiceproxy,
	}
}

// spiceproxy is POST .../spiceproxy.
func (d *Deps) spiceproxy(ctx context.Context, r *api.Request) (any, error) {
	if d.VMs == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: VM operations in this daemon")
	}
	node := r.Params.Get("node")
	if !strings.EqualFold(node, "localhost") && !strings.EqualFold(node, r.NodeName) {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: console of a VM on another node ('%s')", node)
	}
	vmid := vmidOf(r)
	cfg, _, err := d.loadConfig(r.NodeName, vmid)
	if err != nil {
		return nil, err
	}
	title := "VM " + strconv.Itoa(vmid)
	if name := cfg.Props["name"]; name != "" {
		title += " - " + name
	}
	if err := d.checkRunning(vmid); err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	port, err := d.VMs.SpicePort(qctx, vmid)
	if errors.Is(err, vmm.ErrNoSpice) {
		return nil, errors.New("no spice port")
	}
	if err != nil {
		return nil, err
	}

	proxy, _ := r.Params.String("proxy")
	if proxy == "" {
		proxy = hostFQDN(ctx, r.NodeName)
	}
	if a, err := netip.ParseAddr(proxy); err == nil && a.Is6() && !a.Is4In6() {
		proxy = "[" + proxy + "]"
	}
	secret, err := d.spiceSecret()
	if err != nil {
		return nil, err
	}
	proxyTicket, password := spiceticket.Assemble(secret, r.Identity.AuthID, vmid, node, port, d.now())

	certFile := "nodes/" + r.NodeName + "/pve-ssl.pem"
	certPEM, err := d.Config.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("Could not open /etc/pve/%s: %w", certFile, err)
	}
	subject, err := spiceSubject(certPEM)
	if err != nil {
		return nil, fmt.Errorf("Could not parse X509 certificate in /etc/pve/%s: %w", certFile, err)
	}
	ca, err := d.Config.ReadFile("pve-root-ca.pem")
	if err != nil {
		return nil, err
	}
	if len(ca) > 8192 {
		ca = ca[:8192] // file_get_contents limit
	}

	if err := d.VMs.SetSpicePassword(qctx, vmid, password, spicePasswordExpiry); err != nil {
		return nil, err
	}
	return map[string]any{
		"secure-attention":  "Ctrl+Alt+Ins",
		"toggle-fullscreen": "Shift+F11",
		"release-cursor":    "Ctrl+Alt+R",
		"type":              "spice",
		"title":             title,
		"host":              proxyTicket,
		"proxy":             "http://" + proxy + ":3128",
		"tls-port":          port,
		"host-subject":      subject,
		"ca":                strings.ReplaceAll(string(ca), "\n", `\n`),
		"password":          password,
		"delete-this-file":  1,
	}, nil
}

// spiceSecret is the CSRF secret the proxy tickets are signed with.
func (d *Deps) spiceSecret() (string, error) {
	if d.SpiceSecret != nil {
		return d.SpiceSecret()
	}
	data, err := d.Config.ReadFile("pve-www.key")
	if err != nil {
		return "", err
	}
	return ticket.CSRFSecret(data), nil
}

// hostFQDN is `hostname -f || nodename`: the canonical name of the host
// name (from /etc/hosts or DNS), else node.
func hostFQDN(ctx context.Context, node string) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return node
	}
	if strings.Contains(h, ".") {
		return h
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := net.DefaultResolver.LookupCNAME(lctx, h); err == nil && c != "" {
		return strings.TrimSuffix(c, ".")
	}
	return h
}

// oidShortNames are OpenSSL's short names of the subject attributes a node
// certificate may hold.
var oidShortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
	"2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
	"2.5.4.17": "postalCode", "2.5.4.42": "GN", "1.2.840.113549.1.9.1": "emailAddress",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// spiceSubject formats the subject of the first certificate in certPEM as
// PVE's read_x509_subject_spice: X509_NAME_oneline ("/OU=x/O=y/CN=z", in
// the certificate's order) with the slashes before attribute names turned
// into commas ("OU=x,O=y,CN=z").
func spiceSubject(certPEM []byte) (string, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return "", errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	var rdns []string
	for _, n := range cert.Subject.Names {
		name, ok := oidShortNames[n.Type.String()]
		if !ok {
			name = n.Type.String()
		}
		rdns = append(rdns, name+"="+attrValue(n.Value))
	}
	return strings.Join(rdns, ","), nil
}

// attrValue renders a subject attribute value as X509_NAME_oneline does for
// printable text (other bytes as \xHH).
func attrValue(v any) string {
	s, ok := v.(string)
	if !ok {
		if b, err := asn1.Marshal(v); err == nil {
			s = string(b)
		}
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' {
			fmt.Fprintf(&out, "\\x%02X", c)
			continue
		}
		out.WriteByte(c)
	}
	return out.String()
}
