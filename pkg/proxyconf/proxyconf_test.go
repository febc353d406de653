package proxyconf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go4.org/netipx"
	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/defaultsfile"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// render prints a Config, or the error of Load, for golden comparison.
func render(c *Config, err error) string {
	var b strings.Builder
	if err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintf(&b, "error: %v\n", e)
		}
		return b.String()
	}
	set := func(s *netipx.IPSet) string {
		if s == nil {
			return "unset"
		}
		var r []string
		for _, x := range s.Ranges() {
			r = append(r, x.String())
		}
		return strings.Join(r, " ")
	}
	listen := "unset"
	if c.ListenIP.IsValid() {
		listen = c.ListenIP.String()
	}
	policy := "deny"
	if c.Policy.DefaultAllow {
		policy = "allow"
	}
	fmt.Fprintf(&b, "LISTEN_IP: %s\n", listen)
	fmt.Fprintf(&b, "listen addrs: %s\n", strings.Join(c.ListenAddrs(8006), " "))
	fmt.Fprintf(&b, "ALLOW_FROM: %s\n", set(c.Policy.Allow))
	fmt.Fprintf(&b, "DENY_FROM: %s\n", set(c.Policy.Deny))
	fmt.Fprintf(&b, "POLICY: %s\n", policy)
	fmt.Fprintf(&b, "TLS: %+v\n", c.TLS)
	fmt.Fprintf(&b, "TLS_KEY_FILE: %q\n", c.TLSKeyFile)
	fmt.Fprintf(&b, "COMPRESSION: %v\n", c.Compression)
	fmt.Fprintf(&b, "PROXY_REAL_IP_HEADER: %q\n", c.RealIPHeader)
	fmt.Fprintf(&b, "PROXY_REAL_IP_ALLOW_FROM: %s\n", set(c.RealIPAllowFrom))
	fmt.Fprintf(&b, "MAX_WORKERS: %d\n", c.MaxWorkers)
	for _, w := range c.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func TestLoadGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.pveproxy"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	files = append(files, filepath.Join("testdata", "missing.pveproxy"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got := render(Load(f))
			golden := strings.TrimSuffix(f, ".pveproxy") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s):\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Policy.DefaultAllow || !c.Compression || c.MaxWorkers != 3 || !c.TLS.HonorCipherOrder ||
		c.ListenIP.IsValid() || c.Policy.Allow != nil || c.RealIPAllowFrom != nil || len(c.Warnings) != 0 {
		t.Errorf("Load(absent) = %s; want PVE defaults", render(c, nil))
	}
}

func TestFromValues(t *testing.T) {
	v := func(kv ...string) map[string]defaultsfile.Value {
		m := map[string]defaultsfile.Value{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = defaultsfile.Value{Value: kv[i+1], Line: i/2 + 1}
		}
		return m
	}
	for _, tt := range []struct {
		name  string
		vals  map[string]defaultsfile.Value
		check func(*Config) string // returns a problem or ""
		err   string               // substring of the error; "" = no error
	}{
		{"ipv4 listen", v("LISTEN_IP", "192.0.2.1"), func(c *Config) string {
			return want(c.ListenIP.String(), "192.0.2.1")
		}, ""},
		{"ipv6 listen", v("LISTEN_IP", "2001:db8::1"), func(c *Config) string {
			return want(strings.Join(c.ListenAddrs(8006), " "), "[2001:db8::1]:8006")
		}, ""},
		{"link-local with zone", v("LISTEN_IP", "fe80::1%eth0"), func(c *Config) string {
			return want(strings.Join(c.ListenAddrs(8006), " "), "[fe80::1%eth0]:8006")
		}, ""},
		{"link-local without zone", v("LISTEN_IP", "fe80::1"), nil, "f:1: LISTEN_IP: link-local address fe80::1 needs an interface"},
		{"host name", v("LISTEN_IP", "localhost"), nil, `f:1: LISTEN_IP: "localhost" is not an IP address`},
		{"bracketed", v("LISTEN_IP", "[::1]"), nil, `f:1: LISTEN_IP: "[::1]" is not an IP address`},
		{"policy deny", v("POLICY", "deny"), func(c *Config) string {
			return want(fmt.Sprint(c.Policy.DefaultAllow), "false")
		}, ""},
		{"policy case", v("POLICY", "DENY"), nil, `f:1: POLICY: unknown policy "DENY"`},
		{"policy with blank", v("POLICY", "deny "), nil, `f:1: POLICY: unknown policy "deny "`},
		{"allow list errors each", v("ALLOW_FROM", "x,10.0.0.0/8,y"), nil, "f:1: ALLOW_FROM: address list entry \"x\": invalid IPv4 address \"x\"\nf:1: ALLOW_FROM: address list entry \"y\""},
		{"boolean 2", v("DISABLE_TLS_1_2", "2"), nil, `f:1: DISABLE_TLS_1_2: unknown value "2", use 0 or 1`},
		{"boolean blank", v("COMPRESSION", " 1"), nil, `f:1: COMPRESSION: unknown value " 1"`},
		{"compression off", v("COMPRESSION", "0"), func(c *Config) string {
			return want(fmt.Sprint(c.Compression), "false")
		}, ""},
		{"both TLS off", v("DISABLE_TLS_1_2", "1", "DISABLE_TLS_1_3", "1"), nil, "f:2: DISABLE_TLS_1_3: DISABLE_TLS_1_2 and DISABLE_TLS_1_3 are both set"},
		{"tls 1.3 only with unusable ciphers", v("DISABLE_TLS_1_2", "1", "CIPHERS", "DHE-RSA-AES128-GCM-SHA256"), func(c *Config) string {
			return want(strings.Join(c.Warnings, "|"), "f:2: CIPHERS: Go's TLS stack cannot offer DHE-RSA-AES128-GCM-SHA256; skipped")
		}, ""},
		{"real ip header", v("PROXY_REAL_IP_HEADER", "X-Real-IP"), func(c *Config) string {
			return want(c.RealIPHeader, "X-Real-IP")
		}, ""},
		{"real ip header bad", v("PROXY_REAL_IP_HEADER", "X-Real-IP:"), nil, `f:1: PROXY_REAL_IP_HEADER: "X-Real-IP:" is not a valid HTTP header name`},
		{"real ip allow from", v("PROXY_REAL_IP_ALLOW_FROM", "10.0.0.1"), func(c *Config) string {
			return want(fmt.Sprint(c.RealIPAllowFrom.Contains(netip.MustParseAddr("10.0.0.1"))), "true")
		}, ""},
		{"max workers", v("MAX_WORKERS", "127"), func(c *Config) string { return want(fmt.Sprint(c.MaxWorkers), "127") }, ""},
		{"max workers leading zeros", v("MAX_WORKERS", "007"), func(c *Config) string { return want(fmt.Sprint(c.MaxWorkers), "7") }, ""},
		{"max workers zero", v("MAX_WORKERS", "0"), func(c *Config) string {
			return want(fmt.Sprint(c.MaxWorkers, " ", c.Warnings), `3 [f:1: MAX_WORKERS: "0" is not an integer between 1 and 127; ignored]`)
		}, ""},
		{"max workers signed", v("MAX_WORKERS", "+5"), func(c *Config) string { return want(fmt.Sprint(c.MaxWorkers), "3") }, ""},
		{"max workers huge", v("MAX_WORKERS", "99999999999999999999999"), func(c *Config) string { return want(fmt.Sprint(c.MaxWorkers), "3") }, ""},
		{"multi-line value", v("POLICY", "allow\ndeny"), nil, "f:1: POLICY: value spans several lines"},
		{"unknown keys ignored", v("FOO", "$(bar)", "LISTEN_IP", "127.0.0.1"), func(c *Config) string {
			return want(c.ListenIP.String(), "127.0.0.1")
		}, ""},
		{"errors sorted by line", v("POLICY", "x", "COMPRESSION", "x", "LISTEN_IP", "x"), nil,
			"f:1: POLICY: unknown policy \"x\", use allow or deny\nf:2: COMPRESSION: unknown value \"x\", use 0 or 1\nf:3: LISTEN_IP:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromValues("f", tt.vals)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("FromValues error = %v; want it to contain %q", err, tt.err)
				}
				var ke *KeyError
				if !errors.As(err, &ke) || ke.File != "f" {
					t.Errorf("error %v holds no *KeyError for file f", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromValues error: %v", err)
			}
			if p := tt.check(c); p != "" {
				t.Error(p)
			}
		})
	}
}

func want(got, want string) string {
	if got != want {
		return fmt.Sprintf("got %q; want %q", got, want)
	}
	return ""
}

func TestPolicyFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pveproxy")
	os.WriteFile(path, []byte("DENY_FROM=\"all\"\nALLOW_FROM=\"192.168.2.0/24,2001:db8::/64\"\nPOLICY=\"allow\"\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for peer, ok := range map[string]bool{
		"192.168.2.7": true, "::ffff:192.168.2.7": true, "2001:db8::9": true,
		"192.168.3.7": false, "2001:db8:1::9": false,
	} {
		if got := c.Policy.Allowed(netip.MustParseAddr(peer)); got != ok {
			t.Errorf("Allowed(%s) = %v; want %v", peer, got, ok)
		}
	}
}

func TestListenAddrs(t *testing.T) {
	for _, tt := range []struct{ ip, want string }{
		{"", "[::]:8006 0.0.0.0:8006"},
		{"192.0.2.1", "192.0.2.1:8006"},
		{"::1", "[::1]:8006"},
		{"fe80::1%eth0", "[fe80::1%eth0]:8006"},
	} {
		c := Default()
		if tt.ip != "" {
			c.ListenIP = netip.MustParseAddr(tt.ip)
		}
		if got := strings.Join(c.ListenAddrs(8006), " "); got != tt.want {
			t.Errorf("ListenAddrs(LISTEN_IP=%q) = %q; want %q", tt.ip, got, tt.want)
		}
	}
}

func TestListen(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			c := Default()
			c.ListenIP = netip.MustParseAddr(ip)
			lns, err := Listen(context.Background(), c, 0)
			if err != nil {
				if ip == "::1" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			if len(lns) != 1 {
				t.Fatalf("Listen returned %d listeners; want 1", len(lns))
			}
			defer lns[0].Close()
			done := make(chan error, 1)
			go func() {
				conn, err := lns[0].Accept()
				if err == nil {
					conn.Close()
				}
				done <- err
			}()
			conn, err := net.DialTimeout("tcp", lns[0].Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if err := <-done; err != nil {
				t.Fatalf("accept: %v", err)
			}
		})
	}
	t.Run("address not local", func(t *testing.T) {
		c := Default()
		c.ListenIP = netip.MustParseAddr("192.0.2.77") // TEST-NET-1, not configured here
		if _, err := Listen(context.Background(), c, 0); err == nil || !strings.Contains(err.Error(), "LISTEN_IP 192.0.2.77:0") {
			t.Errorf("Listen error = %v; want it to name LISTEN_IP", err)
		}
	})
}

// TestDualStackSocketOption checks on ::1 (tests bind loopback only) that the
// wildcard path clears IPV6_V6ONLY, which Go would otherwise set for "tcp6".
func TestDualStackSocketOption(t *testing.T) {
	for _, dual := range []bool{true, false} {
		ln, err := listen(context.Background(), "tcp6", "[::1]:0", dual)
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY) })
		ln.Close()
		if serr != nil {
			t.Fatal(serr)
		}
		if wantV := map[bool]int{true: 0, false: 1}[dual]; v != wantV {
			t.Errorf("dualStack=%v: IPV6_V6ONLY = %d; want %d", dual, v, wantV)
		}
	}
	if err := clearV6Only("tcp4", "", nil); err != nil {
		t.Errorf("clearV6Only(tcp4) = %v; want nil without touching the socket", err)
	}
	var _ func(string, string, syscall.RawConn) error = clearV6Only
}
