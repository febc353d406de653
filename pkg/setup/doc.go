// Package setup prepares the config root on first start: of the embedded
// one-node installation, and of a real node whose /etc/pve is still empty.
// Ensure is idempotent; it creates what is missing and leaves everything
// that exists alone, so every daemon may call it at start-up. Concurrent
// calls, also from different processes, are serialised by the config-root
// lock named "setup".
//
// What it creates mirrors a freshly installed PVE node (pmxcfs plus
// "pvecm updatecerts"):
//
//   - directories nodes/<node>/{qemu-server,lxc,priv}, priv/ and priv/lock/,
//     and the relative symlinks local, qemu-server and lxc that pmxcfs
//     shows at the top of /etc/pve (the obsolete openvz link is not made);
//   - the cluster CA: priv/pve-root-ca.key (RSA 4096), pve-root-ca.pem
//     (self-signed, ten years, subject CN=Proxmox Virtual Environment,
//     OU=<random UUID>, O=PVE Cluster Manager CA) and priv/pve-root-ca.srl;
//   - the node certificate nodes/<node>/pve-ssl.key (RSA 2048) and
//     pve-ssl.pem, signed by the CA, valid for two years at most and ending
//     two days before the CA, subject OU=PVE Cluster Node, O=Proxmox
//     Virtual Environment, CN=<node>[.<domain>], with DNS names localhost,
//     <node> and <node>.<domain> and IP addresses 127.0.0.1, ::1 and the
//     node's own. Like PVE, certificates start one day in the past to
//     tolerate clock skew;
//   - the ticket keys priv/authkey.key and authkey.pub, and pve-www.key
//     (the CSRF secret), each RSA 2048;
//   - user.cfg with root@pam and optionally an administrator of the pve
//     realm, its password in priv/shadow.cfg, and domains.cfg with the pam
//     and pve realms. datacenter.cfg stays absent (PVE reads that as all
//     defaults).
//
// In addition to PVE's files it creates an ECDSA P-256 node certificate,
// nodes/<node>/pve-ssl-ecdsa.key and pve-ssl-ecdsa.pem, with the same
// subject and names, signed by the same CA. Offering it next to the RSA one
// lets clients that support ECDSA finish the TLS handshake with much less
// server CPU; PVE tools that read pve-ssl.pem (fingerprint pinning between
// nodes) are unaffected.
//
// Modes follow pmxcfs: directories 0755, private directories (priv/,
// nodes/<node>/priv/) 0700, private files 0600, all other files 0640. When
// running as root and the service group (www-data) exists, the non-private
// files and directories created get that group, so that pveproxy, running
// as www-data, can read its key and certificate, user.cfg, domains.cfg,
// authkey.pub and pve-www.key. All keys are written as PKCS#8 PEM, as
// OpenSSL 3 does.
package setup
