package access

import (
	"bytes"
	"maps"
	"testing"
)

// FuzzParseDomainsCfg: domains.cfg in PVE's section-config format never
// panics, and what Marshal writes parses again to the same realms and
// writes the same bytes (one round makes it canonical).
func FuzzParseDomainsCfg(f *testing.F) {
	f.Add([]byte("pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\n"))
	f.Add([]byte("ldap: corp\n\tbase_dn dc=example,dc=com\n\tuser_attr uid\n\tserver1 ldap.example.com\n\tport 636\n\tmode ldaps\n\ttfa type=oath,step=30,digits=6\n\tsync-defaults-options scope=users,enable-new=1\n\n"))
	f.Add([]byte("openid: sso\n\tissuer-url https://id.example.com\n\tclient-id pve\n\tautocreate 1\n\n"))
	f.Add([]byte("ad: win\n\tdomain example.com\n\tserver1 dc1\n\n\npve: pve\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _ := ParseDomainsCfg("domains.cfg", data)
		if cfg == nil {
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			return // a config Marshal refuses is reported, not written
		}
		again, warns := ParseDomainsCfg("domains.cfg", out)
		if again == nil || len(warns) > 0 {
			t.Fatalf("written domains.cfg does not parse cleanly: %v\n%s", warns, out)
		}
		out2, err := again.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second write differs (err %v):\n%s\n---\n%s", err, out, out2)
		}
	})
}

// FuzzParseTokenNetworks: the token networks file never panics, refuses
// (with an error) rather than half-reads, and a written file reads back to
// the same lists.
func FuzzParseTokenNetworks(f *testing.F) {
	f.Add([]byte("admin@pve!ci 192.0.2.0/24,2001:db8::/32\n# comment\nbob@pve!x 127.0.0.1\n"))
	f.Add([]byte("a@pve!tok 10.0.0.1-10.0.0.9 all\n"))
	f.Add([]byte("bad line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nets, err := ParseTokenNetworks("token-networks.cfg", data)
		if err != nil {
			return
		}
		back, err := ParseTokenNetworks("token-networks.cfg", nets.Marshal())
		if err != nil {
			t.Fatalf("written file does not parse: %v\n%s", err, nets.Marshal())
		}
		if !maps.Equal(nets, back) {
			t.Fatalf("round trip changed the lists: %v -> %v", nets, back)
		}
	})
}
