package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// netLab is a bridge in the test's network namespace with one network
// namespace per node behind a veth pair, so a test can cut a node off
// (link down) and heal it, as a real network partition would.
type netLab struct {
	t      *testing.T
	id     string // short random id in every name
	bridge string
	net    string // first three octets of the lab's /24
}

// ip runs the ip command and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetLab creates the bridge (with the test's address .254 on it); it
// skips when network namespaces cannot be made here.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if err := exec.Command("ip", "netns", "list").Run(); err != nil {
		t.Skip("no ip netns: ", err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	l := &netLab{t: t, id: hex.EncodeToString(b)[:5], net: fmt.Sprintf("10.199.%d", b[2])}
	l.bridge = "pvb" + l.id
	ipCmd(t, "link", "add", "name", l.bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.bridge).Run() })
	ipCmd(t, "addr", "add", l.net+".254/24", "dev", l.bridge)
	ipCmd(t, "link", "set", l.bridge, "up")
	return l
}

// addNode creates node i's namespace, connected to the bridge, and
// returns the namespace's name and its address.
func (l *netLab) addNode(i int) (ns, ip string) {
	t := l.t
	ns = fmt.Sprintf("pvn%s-%d", l.id, i)
	host, peer := fmt.Sprintf("pvh%s%d", l.id, i), fmt.Sprintf("pvc%s%d", l.id, i)
	ip = fmt.Sprintf("%s.%d", l.net, i)
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	ipCmd(t, "link", "set", peer, "netns", ns)
	ipCmd(t, "link", "set", host, "master", l.bridge, "up")
	ipCmd(t, "netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", peer)
	ipCmd(t, "netns", "exec", ns, "ip", "link", "set", peer, "up")
	ipCmd(t, "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns, ip
}

// cut takes node i's link down; heal brings it up again.
func (l *netLab) cut(i int)  { ipCmd(l.t, "link", "set", fmt.Sprintf("pvh%s%d", l.id, i), "down") }
func (l *netLab) heal(i int) { ipCmd(l.t, "link", "set", fmt.Sprintf("pvh%s%d", l.id, i), "up") }
