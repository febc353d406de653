package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// TestStartRefused checks that bad configuration stops a start with a
// non-zero exit, an error naming the problem (file and line for
// /etc/default/pveproxy), and nothing left running.
func TestStartRefused(t *testing.T) {
	t.Parallel()
	env(t)
	rows := []struct {
		name    string
		bin     string
		prepare func(t *testing.T, n *node)
		args    func(n *node) []string // nil: the normal start flags
		want    func(n *node) []string // substrings of stderr
	}{
		{
			name:    "PolicyMaybe",
			bin:     "pveproxy",
			prepare: func(t *testing.T, n *node) { n.writeDefaults(t, "# access\nALLOW_FROM=10.0.0.1\nPOLICY=maybe\n") },
			want:    func(n *node) []string { return []string{n.defaultsPath() + ":3", "POLICY", "maybe"} },
		},
		{
			name:    "AllowFromWithSpace",
			bin:     "pveproxy",
			prepare: func(t *testing.T, n *node) { n.writeDefaults(t, "ALLOW_FROM=\"10.0.0.1, 10.0.0.2\"\n") },
			want:    func(n *node) []string { return []string{n.defaultsPath() + ":1", "ALLOW_FROM"} },
		},
		{
			name:    "BadBoolean",
			bin:     "pveproxy",
			prepare: func(t *testing.T, n *node) { n.writeDefaults(t, "\nCOMPRESSION=yes\n") },
			want:    func(n *node) []string { return []string{n.defaultsPath() + ":2", "COMPRESSION"} },
		},
		{
			name:    "UnterminatedQuote",
			bin:     "pveproxy",
			prepare: func(t *testing.T, n *node) { n.writeDefaults(t, "POLICY=\"allow\n") },
			want:    func(n *node) []string { return []string{n.defaultsPath() + ":1"} },
		},
		{
			name: "UnknownCipher",
			bin:  "pveproxy",
			prepare: func(t *testing.T, n *node) {
				n.writeDefaults(t, "CIPHERS=ECDHE-RSA-AES128-GCM-SHA256:BOGUS-CIPHER-E2E\n")
			},
			want: func(n *node) []string { return []string{n.defaultsPath() + ":1", "CIPHERS", "BOGUS-CIPHER-E2E"} },
		},
		{
			name:    "BothTLSVersionsDisabled",
			bin:     "pveproxy",
			prepare: func(t *testing.T, n *node) { n.writeDefaults(t, "DISABLE_TLS_1_2=1\nDISABLE_TLS_1_3=1\n") },
			want:    func(n *node) []string { return []string{n.defaultsPath(), "DISABLE_TLS_1_"} },
		},
		{
			name: "EncryptedKey",
			bin:  "pveproxy",
			prepare: func(t *testing.T, n *node) {
				leaf := tlstest.NewCA(t).Issue(t, tlstest.RSA)
				n.writeServiceFile(t, filepath.Join(n.nodeDir(), "pveproxy-ssl.pem"), leaf.CertPEM)
				n.writeServiceFile(t, filepath.Join(n.nodeDir(), "pveproxy-ssl.key"), encryptedKey(t, leaf.KeyPEM))
			},
			want: func(n *node) []string {
				return []string{filepath.Join(n.nodeDir(), "pveproxy-ssl.key"), "passphrase"}
			},
		},
		{
			name: "DaemonListenWildcard",
			bin:  "pvedaemon",
			args: func(n *node) []string {
				return []string{"start", "--prefix", n.prefix, "--node", nodeName, "--listen", fmt.Sprintf("0.0.0.0:%d", n.dport)}
			},
			want: func(n *node) []string { return []string{fmt.Sprintf("0.0.0.0:%d", n.dport), "127.0.0.1"} },
		},
		{
			name: "DaemonListenOtherLoopback",
			bin:  "pvedaemon",
			args: func(n *node) []string {
				return []string{"start", "--prefix", n.prefix, "--node", nodeName, "--listen", fmt.Sprintf("127.0.0.2:%d", n.dport)}
			},
			want: func(n *node) []string { return []string{fmt.Sprintf("127.0.0.2:%d", n.dport)} },
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, nodeOpts{noStart: true})
			if row.prepare != nil {
				row.prepare(t, n)
			}
			var args []string
			switch {
			case row.args != nil:
				args = row.args(n)
			case row.bin == "pveproxy":
				args = n.proxyStartArgs(false, nil)
			default:
				args = n.daemonStartArgs(false, nil)
			}
			_, stderr, err := n.run(row.bin, args...)
			if err == nil {
				t.Cleanup(func() { _ = n.stop(row.bin) })
				t.Fatalf("%s start succeeded; want it refused", row.bin)
			}
			for _, w := range row.want(n) {
				if !strings.Contains(stderr, w) {
					t.Errorf("%s start error %q; want it to contain %q", row.bin, stderr, w)
				}
			}
			if got := n.status(t, row.bin); got != "stopped" {
				t.Errorf("%s status after the refused start = %q; want stopped", row.bin, got)
			}
			port := n.pport
			if row.bin == "pvedaemon" {
				port = n.dport
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				t.Errorf("something listens on port %d after the refused start", port)
			}
		})
	}
}
