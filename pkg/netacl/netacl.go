package netacl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go4.org/netipx"
)

// ParseList parses a comma-separated address list (see the package
// documentation). The empty string yields an empty set. The error names every
// invalid entry.
func ParseList(spec string) (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	var errs []error
	entries := strings.Split(spec, ",")
	// Perl's split drops trailing empty fields, so "a,b," is "a,b".
	for len(entries) > 0 && entries[len(entries)-1] == "" {
		entries = entries[:len(entries)-1]
	}
	for _, e := range entries {
		ranges, err := ParseEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range ranges {
			b.AddRange(r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	set, err := b.IPSet()
	if err != nil {
		return nil, fmt.Errorf("build address set: %w", err)
	}
	return set, nil
}

// MustParseList is like ParseList but panics on error. It is meant for
// constants in tests and tables.
func MustParseList(spec string) *netipx.IPSet {
	s, err := ParseList(spec)
	if err != nil {
		panic(err)
	}
	return s
}

// ParseEntry parses one entry of an address list and returns the address
// ranges it covers: two for "all", one otherwise.
func ParseEntry(entry string) ([]netipx.IPRange, error) {
	r, err := parseEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("address list entry %q: %w", entry, err)
	}
	return r, nil
}

func parseEntry(e string) ([]netipx.IPRange, error) {
	switch {
	case e == "":
		return nil, errors.New("empty entry")
	case e == "all":
		return []netipx.IPRange{
			netipx.RangeOfPrefix(netip.MustParsePrefix("0.0.0.0/0")),
			netipx.RangeOfPrefix(netip.MustParsePrefix("::/0")),
		}, nil
	}
	var r netipx.IPRange
	if slash := strings.IndexByte(e, '/'); slash >= 0 && !strings.ContainsAny(e, " \t\n\r\f\v") {
		p, err := parsePrefix(e[:slash], e[slash+1:])
		if err != nil {
			return nil, err
		}
		r = netipx.RangeOfPrefix(p)
	} else if first, last, ok := splitRange(e); ok {
		a, err := parseAddr(first)
		if err != nil {
			return nil, err
		}
		b, err := parseAddr(last)
		if err != nil {
			return nil, err
		}
		if a.Is4() != b.Is4() {
			return nil, fmt.Errorf("range mixes address families (%s - %s)", a, b)
		}
		if b.Less(a) {
			return nil, fmt.Errorf("range start %s is greater than its end %s", a, b)
		}
		r = netipx.IPRangeFrom(a, b)
	} else {
		a, err := parseAddr(e)
		if err != nil {
			return nil, err
		}
		r = netipx.IPRangeFrom(a, a)
	}
	if r.From().Is4In6() && r.To().Is4In6() {
		r = netipx.IPRangeFrom(r.From().Unmap(), r.To().Unmap())
	}
	return []netipx.IPRange{r}, nil
}

// splitRange splits "a-b" at its first dash, dropping blanks around it as
// Net::IP does.
func splitRange(e string) (first, last string, ok bool) {
	i := strings.IndexByte(e, '-')
	if i <= 0 || i == len(e)-1 {
		return "", "", false
	}
	return strings.TrimRight(e[:i], " \t\n\r\f\v"), strings.TrimLeft(e[i+1:], " \t\n\r\f\v"), true
}

func parsePrefix(addr, length string) (netip.Prefix, error) {
	a, err := parseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	if length == "" || strings.Trim(length, "0123456789") != "" || len(length) > 3 {
		return netip.Prefix{}, fmt.Errorf("invalid prefix length %q", length)
	}
	n, _ := strconv.Atoi(length) // at most three digits: cannot fail
	if n > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix length %d is longer than the address (%d bits)", n, a.BitLen())
	}
	p := netip.PrefixFrom(a, n)
	if m := p.Masked(); m.Addr() != a {
		return netip.Prefix{}, fmt.Errorf("address has bits set beyond the prefix length (did you mean %s?)", m)
	}
	return p, nil
}

// parseAddr parses one address as Net::IP does: IPv4 may be abbreviated and
// have leading zeros; IPv6 is standard text without a zone.
func parseAddr(s string) (netip.Addr, error) {
	if !strings.Contains(s, ":") {
		return parseV4(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IPv6 address %q", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("IPv6 zone not allowed in %q", s)
	}
	return a, nil
}

// parseV4 parses one to four dot-separated decimal parts of one to three digits
// each; missing trailing parts are zero.
func parseV4(s string) (netip.Addr, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, fmt.Errorf("invalid IPv4 address %q", s)
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address %q", s)
		}
		n, _ := strconv.Atoi(p) // at most three digits: cannot fail
		if n > 255 {
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address %q: part %s is above 255", s, p)
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), nil
}

// Contains reports whether peer is in s, comparing as Policy.Allowed does:
// an IPv4-mapped peer is unmapped and a zone is ignored. A nil set contains
// nothing. Use it for PROXY_REAL_IP_ALLOW_FROM.
func Contains(s *netipx.IPSet, peer netip.Addr) bool {
	return s != nil && s.Contains(peer.Unmap().WithZone(""))
}

// Policy is the host access decision of pveproxy and spiceproxy.
type Policy struct {
	// Allow is ALLOW_FROM; nil means the list is not set.
	Allow *netipx.IPSet
	// Deny is DENY_FROM; nil means the list is not set.
	Deny *netipx.IPSet
	// DefaultAllow is POLICY: true for "allow" (PVE's default), false for
	// "deny". It decides when the peer matches both lists or neither.
	DefaultAllow bool
}

// Allowed reports whether a connection from peer is accepted. IPv4-mapped
// IPv6 peers are treated as IPv4 and a zone is ignored. An invalid address is
// judged by the default alone.
func (p *Policy) Allowed(peer netip.Addr) bool {
	allow, deny := Contains(p.Allow, peer), Contains(p.Deny, peer)
	if allow != deny {
		return allow
	}
	return p.DefaultAllow
}
