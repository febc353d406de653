package netacl

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"
)

// ranges renders a set as "from-to" ranges joined by spaces.
func ranges(s *netipx.IPSet) string {
	var out []string
	for _, r := range s.Ranges() {
		out = append(out, r.From().String()+"-"+r.To().String())
	}
	return strings.Join(out, " ")
}

func TestParseList(t *testing.T) {
	for _, tt := range []struct {
		spec, want string
	}{
		{"", ""},
		{"192.0.2.7", "192.0.2.7-192.0.2.7"},
		{"2001:db8::7", "2001:db8::7-2001:db8::7"},
		{"2001:DB8::7", "2001:db8::7-2001:db8::7"},
		{"192.168.0.0/16", "192.168.0.0-192.168.255.255"},
		{"192.168.0.0/16,", "192.168.0.0-192.168.255.255"},
		{"192.168.0.0/16,,,", "192.168.0.0-192.168.255.255"},
		{"10.0.0.0/08", "10.0.0.0-10.255.255.255"},
		{"1.2.3.4/32", "1.2.3.4-1.2.3.4"},
		{"0.0.0.0/0", "0.0.0.0-255.255.255.255"},
		{"2001:db8::/32", "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"::/0", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"all", "0.0.0.0-255.255.255.255 ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"10.0.0.1-10.0.0.5", "10.0.0.1-10.0.0.5"},
		{"10.0.0.1 - 10.0.0.5", "10.0.0.1-10.0.0.5"},
		{"10.0.0.1\t-\t10.0.0.5", "10.0.0.1-10.0.0.5"},
		{"10.0.0.1-10.0.0.1", "10.0.0.1-10.0.0.1"},
		{"::1-::5", "::1-::5"},
		{"10/8", "10.0.0.0-10.255.255.255"},
		{"10.0/16", "10.0.0.0-10.0.255.255"},
		{"192.168.1", "192.168.1.0-192.168.1.0"},
		{"1", "1.0.0.0-1.0.0.0"},
		{"010.001.1.1", "10.1.1.1-10.1.1.1"},
		{"::ffff:192.0.2.7", "192.0.2.7-192.0.2.7"},
		{"::ffff:c000:207", "192.0.2.7-192.0.2.7"},
		{"::ffff:192.0.2.0/120", "192.0.2.0-192.0.2.255"},
		{"::ffff:0:0/96", "0.0.0.0-255.255.255.255"},
		{"::ffff:10.0.0.1-::ffff:10.0.0.9", "10.0.0.1-10.0.0.9"},
		{"::fffe:0:0/95", "::fffe:0:0-::ffff:255.255.255.255"},
		{"10.0.0.0/24,10.0.1.0/24,192.0.2.1", "10.0.0.0-10.0.1.255 192.0.2.1-192.0.2.1"},
		{"2001:db8::1,192.0.2.1", "192.0.2.1-192.0.2.1 2001:db8::1-2001:db8::1"},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseList(tt.spec)
			if err != nil {
				t.Fatalf("ParseList(%q) error: %v", tt.spec, err)
			}
			if got := ranges(s); got != tt.want {
				t.Errorf("ParseList(%q) = %q; want %q", tt.spec, got, tt.want)
			}
		})
	}
}

func TestParseListErrors(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want []string // substrings of the error, in order
	}{
		{"10.0.0.1/8", []string{`entry "10.0.0.1/8"`, "bits set beyond the prefix length (did you mean 10.0.0.0/8?)"}},
		{"2001:db8::1/32", []string{`entry "2001:db8::1/32"`, "did you mean 2001:db8::/32?"}},
		{"1.2.3.4/0", []string{`entry "1.2.3.4/0"`, "beyond the prefix length"}},
		{"10.0.0.0/33", []string{`entry "10.0.0.0/33"`, "longer than the address"}},
		{"::/129", []string{`entry "::/129"`, "longer than the address"}},
		{"10.0.0.0/", []string{`invalid prefix length ""`}},
		{"10.0.0.0/abc", []string{`invalid prefix length "abc"`}},
		{"10.0.0.0/8/8", []string{`invalid prefix length "8/8"`}},
		{"10.0.0.0/-8", []string{`invalid prefix length "-8"`}},
		{"10.0.0.5-10.0.0.1", []string{`entry "10.0.0.5-10.0.0.1"`, "greater than its end"}},
		{"10.0.0.1-::5", []string{"mixes address families"}},
		{"::5-10.0.0.1", []string{"mixes address families"}},
		{" 1.2.3.4", []string{`entry " 1.2.3.4"`, "invalid IPv4 address"}},
		{"1.2.3.4 ", []string{`entry "1.2.3.4 "`}},
		{"10.0.0.0/8, 192.0.2.1", []string{`entry " 192.0.2.1"`}},
		{"10.0.0.0/8 ", []string{`entry "10.0.0.0/8 "`}},
		{"10.0.0.0 /8", []string{`entry "10.0.0.0 /8"`}},
		{"1.2.3.4,,5.6.7.8", []string{`entry ""`, "empty entry"}},
		{",1.2.3.4", []string{"empty entry"}},
		{"1.2.3.256", []string{"part 256 is above 255"}},
		{"1.2.3.4.5", []string{"invalid IPv4 address"}},
		{"1..2.3", []string{"invalid IPv4 address"}},
		{".1.2.3", []string{"invalid IPv4 address"}},
		{"1.2.3.", []string{"invalid IPv4 address"}},
		{"0001.2.3.4", []string{"invalid IPv4 address"}},
		{"fe80::1%eth0", []string{"zone not allowed"}},
		{"2001:db8:::1", []string{"invalid IPv6 address"}},
		{"example.com", []string{`entry "example.com"`}},
		{"ALL", []string{`entry "ALL"`}},
		{"10.0.0.0 + 255", []string{`entry "10.0.0.0 + 255"`}},
		{"-10.0.0.1", []string{`entry "-10.0.0.1"`}},
		{"10.0.0.1-", []string{`entry "10.0.0.1-"`}},
		{"bad1,10.0.0.0/8,bad2", []string{`entry "bad1"`, `entry "bad2"`}},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseList(tt.spec)
			if err == nil {
				t.Fatalf("ParseList(%q) = %q; want error", tt.spec, ranges(s))
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("ParseList(%q) error = %q; want it to contain %q (in order %q)", tt.spec, msg, w, tt.want)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestPolicyTable(t *testing.T) {
	// Allow-only, deny-only, both and neither networks for each family.
	allow := MustParseList("192.0.2.0/24,198.51.100.0/24,2001:db8:a::/48,2001:db8:c::/48")
	deny := MustParseList("203.0.113.0/24,198.51.100.0/24,2001:db8:b::/48,2001:db8:c::/48")
	peers := map[string]map[string]string{ // match case -> family -> peer
		"allow only": {"v4": "192.0.2.5", "v6": "2001:db8:a::5", "v4-mapped": "::ffff:192.0.2.5"},
		"deny only":  {"v4": "203.0.113.5", "v6": "2001:db8:b::5", "v4-mapped": "::ffff:203.0.113.5"},
		"neither":    {"v4": "10.1.1.1", "v6": "2001:db8:ff::1", "v4-mapped": "::ffff:10.1.1.1"},
		"both":       {"v4": "198.51.100.5", "v6": "2001:db8:c::5", "v4-mapped": "::ffff:198.51.100.5"},
	}
	for _, tt := range []struct {
		policy string
		match  string
		want   bool
	}{
		{"allow", "allow only", true},
		{"allow", "deny only", false},
		{"allow", "neither", true},
		{"allow", "both", true},
		{"deny", "allow only", true},
		{"deny", "deny only", false},
		{"deny", "neither", false},
		{"deny", "both", false},
	} {
		for _, fam := range []string{"v4", "v6", "v4-mapped"} {
			peer := netip.MustParseAddr(peers[tt.match][fam])
			t.Run(fmt.Sprintf("%s/%s/%s", tt.policy, tt.match, fam), func(t *testing.T) {
				p := &Policy{Allow: allow, Deny: deny, DefaultAllow: tt.policy == "allow"}
				if got := p.Allowed(peer); got != tt.want {
					t.Errorf("POLICY=%s Allowed(%s) = %v; want %v", tt.policy, peer, got, tt.want)
				}
			})
		}
	}
}

func TestPolicyEdges(t *testing.T) {
	for _, tt := range []struct {
		name        string
		allow, deny string // "-" = list not set
		def         bool
		peer        string
		want        bool
	}{
		{"no lists, allow", "-", "-", true, "192.0.2.1", true},
		{"no lists, deny", "-", "-", false, "192.0.2.1", false},
		{"deny all, allow one", "192.0.2.1", "all", true, "192.0.2.1", true},
		{"deny all, other peer", "192.0.2.1", "all", true, "192.0.2.2", false},
		{"deny all, v6 peer", "192.0.2.1", "all", true, "2001:db8::1", false},
		{"policy deny with allow list", "192.0.2.0/24", "-", false, "192.0.2.9", true},
		{"policy deny, unlisted", "192.0.2.0/24", "-", false, "192.0.3.9", false},
		{"mapped entry matches v4 peer", "::ffff:192.0.2.1", "-", false, "192.0.2.1", true},
		{"mapped entry matches mapped peer", "::ffff:192.0.2.1", "-", false, "::ffff:192.0.2.1", true},
		{"v6 all does not match v4 peer", "::/0", "-", false, "192.0.2.1", false},
		{"v6 all does not match mapped peer", "::/0", "-", false, "::ffff:192.0.2.1", false},
		{"v6 all matches v6 peer", "::/0", "-", false, "2001:db8::1", true},
		{"zone ignored", "fe80::/10", "-", false, "fe80::1%eth0", true},
		{"range edge low", "10.0.0.1-10.0.0.5", "-", false, "10.0.0.1", true},
		{"range edge high", "10.0.0.1-10.0.0.5", "-", false, "10.0.0.5", true},
		{"range outside", "10.0.0.1-10.0.0.5", "-", false, "10.0.0.6", false},
		{"invalid peer", "all", "-", false, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{DefaultAllow: tt.def}
			if tt.allow != "-" {
				p.Allow = MustParseList(tt.allow)
			}
			if tt.deny != "-" {
				p.Deny = MustParseList(tt.deny)
			}
			var peer netip.Addr
			if tt.peer != "" {
				peer = netip.MustParseAddr(tt.peer)
			}
			if got := p.Allowed(peer); got != tt.want {
				t.Errorf("Allowed(%v) = %v; want %v", peer, got, tt.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	s := MustParseList("192.0.2.0/24,fe80::/10")
	for _, tt := range []struct {
		set  *netipx.IPSet
		peer string
		want bool
	}{
		{s, "192.0.2.1", true},
		{s, "::ffff:192.0.2.1", true},
		{s, "fe80::1%eth0", true},
		{s, "198.51.100.1", false},
		{nil, "192.0.2.1", false},
	} {
		if got := Contains(tt.set, netip.MustParseAddr(tt.peer)); got != tt.want {
			t.Errorf("Contains(%v, %s) = %v; want %v", tt.set != nil, tt.peer, got, tt.want)
		}
	}
}

func TestParseEntry(t *testing.T) {
	r, err := ParseEntry("all")
	if err != nil || len(r) != 2 {
		t.Fatalf("ParseEntry(all) = %v, %v; want two ranges", r, err)
	}
	if _, err := ParseEntry("x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("ParseEntry(x) error = %v; want it to name the entry", err)
	}
}

func BenchmarkAllowed(b *testing.B) {
	var entries []string
	for i := range 200 { // a large list: 200 networks of each family
		entries = append(entries, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("2001:db8:%x::/48", i))
	}
	p := &Policy{
		Allow:        MustParseList(strings.Join(entries, ",")),
		Deny:         MustParseList("10.0.5.0/24,2001:db8:5::/48,192.0.2.0-192.0.2.200"),
		DefaultAllow: false,
	}
	for _, peer := range []string{"10.0.7.9", "2001:db8:7::9", "::ffff:10.0.7.9", "198.51.100.1"} {
		a := netip.MustParseAddr(peer)
		b.Run(peer, func(b *testing.B) {
			for b.Loop() {
				p.Allowed(a)
			}
		})
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"all", "10/8", "10.0.0.1 - 10.0.0.5", "::ffff:1.2.3.0/120", "1.2.3.4,,", "a-b", "::/0", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseList(spec)
		if err != nil {
			if !strings.Contains(err.Error(), "address list entry") {
				t.Errorf("error %q does not name the entry", err)
			}
			return
		}
		p := &Policy{Allow: s}
		for _, r := range s.Ranges() {
			for _, a := range []netip.Addr{r.From(), r.To()} {
				// A v6 entry reaching into ::ffff:0:0/96 does not match
				// mapped peers, which are compared as IPv4.
				if !a.Is4In6() && !p.Allowed(a) {
					t.Errorf("%v in %q not allowed by its own list", a, spec)
				}
			}
		}
	})
}
