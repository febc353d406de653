package proxyconf

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go4.org/netipx"

	"github.com/pvenode/pvenode/pkg/defaultsfile"
	"github.com/pvenode/pvenode/pkg/netacl"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// DefaultMaxWorkers is PVE's MAX_WORKERS default.
const DefaultMaxWorkers = 3

// Config is the parsed /etc/default/pveproxy. It is not modified after Load
// returns and may be shared.
type Config struct {
	// ListenIP is LISTEN_IP, possibly with a zone; the zero Addr means unset.
	ListenIP netip.Addr
	// Policy is ALLOW_FROM, DENY_FROM and POLICY. It is never nil.
	Policy *netacl.Policy
	// TLS holds CIPHERS, CIPHERSUITES, HONOR_CIPHER_ORDER, DISABLE_TLS_1_2,
	// DISABLE_TLS_1_3 and DHPARAMS.
	TLS tlsconf.Settings
	// TLSKeyFile is TLS_KEY_FILE; "" means pveproxy-ssl.key in the node
	// directory.
	TLSKeyFile string
	// Compression is COMPRESSION.
	Compression bool
	// RealIPHeader is PROXY_REAL_IP_HEADER; "" means unset.
	RealIPHeader string
	// RealIPAllowFrom is PROXY_REAL_IP_ALLOW_FROM; nil means any peer.
	RealIPAllowFrom *netipx.IPSet
	// MaxWorkers is MAX_WORKERS.
	MaxWorkers int
	// Warnings are accepted settings that cannot take full effect, each
	// "file:line: KEY: message", for the log.
	Warnings []string
}

// Default returns the configuration of an empty or missing file.
func Default() *Config {
	return &Config{
		Policy:      &netacl.Policy{DefaultAllow: true},
		TLS:         tlsconf.DefaultSettings(),
		Compression: true,
		MaxWorkers:  DefaultMaxWorkers,
	}
}

// KeyError is an invalid value in the file.
type KeyError struct {
	File string
	Line int // 0 when the key is not in the file
	Key  string
	Err  error
}

// Error returns "file:line: KEY: problem".
func (e *KeyError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s: %v", e.File, e.Key, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
}

// Unwrap returns the problem.
func (e *KeyError) Unwrap() error { return e.Err }

// Load reads and checks the file at path. A missing file yields Default().
// The error reports every problem: bad syntax (*defaultsfile.SyntaxError) and
// bad values (*KeyError).
func Load(path string) (*Config, error) {
	vals, perr := defaultsfile.Load(path)
	if vals == nil { // unreadable file
		return nil, perr
	}
	cfg, verr := FromValues(path, vals)
	errs := append(flatten(perr), flatten(verr)...)
	if len(errs) == 0 {
		return cfg, nil
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(errorLine(a), errorLine(b)) })
	return nil, errors.Join(errs...)
}

// errorLine returns the line a *defaultsfile.SyntaxError or *KeyError is
// about, for sorting.
func errorLine(err error) int {
	var se *defaultsfile.SyntaxError
	if errors.As(err, &se) {
		return se.Line
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		return ke.Line
	}
	return 0
}

// FromValues checks the variables of a parsed file named name. It reads the
// DHPARAMS file, if set, to check it.
func FromValues(name string, vals map[string]defaultsfile.Value) (*Config, error) {
	c := Default()
	var errs []*KeyError
	bad := func(key string, err error) {
		errs = append(errs, &KeyError{File: name, Line: vals[key].Line, Key: key, Err: err})
	}
	type lineWarning struct {
		line int
		text string
	}
	var warns []lineWarning
	warn := func(key, msg string) {
		line := vals[key].Line
		warns = append(warns, lineWarning{line, where(name, line) + key + ": " + msg})
	}
	// get returns the value of key, or "" if it is unset or empty.
	get := func(key string) (string, bool) {
		v, ok := vals[key]
		if !ok || v.Value == "" {
			return "", false
		}
		if strings.ContainsAny(v.Value, "\n") {
			bad(key, errors.New("value spans several lines"))
			return "", false
		}
		return v.Value, true
	}
	boolean := func(key string, dst *bool) {
		if v, ok := get(key); ok {
			switch v {
			case "0", "1":
				*dst = v == "1"
			default:
				bad(key, fmt.Errorf("unknown value %q, use 0 or 1", v))
			}
		}
	}
	list := func(key string) *netipx.IPSet {
		v, ok := get(key)
		if !ok {
			return nil
		}
		set, err := netacl.ParseList(v)
		if err != nil {
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					bad(key, e)
				}
			} else {
				bad(key, err)
			}
			return nil
		}
		return set
	}

	if v, ok := get("LISTEN_IP"); ok {
		if a, err := parseListenIP(v); err != nil {
			bad("LISTEN_IP", err)
		} else {
			c.ListenIP = a
		}
	}
	c.Policy.Allow = list("ALLOW_FROM")
	c.Policy.Deny = list("DENY_FROM")
	if v, ok := get("POLICY"); ok {
		switch v {
		case "allow", "deny":
			c.Policy.DefaultAllow = v == "allow"
		default:
			bad("POLICY", fmt.Errorf("unknown policy %q, use allow or deny", v))
		}
	}

	c.TLS.Ciphers, _ = get("CIPHERS")
	c.TLS.CipherSuites, _ = get("CIPHERSUITES")
	c.TLS.DHParams, _ = get("DHPARAMS")
	boolean("HONOR_CIPHER_ORDER", &c.TLS.HonorCipherOrder)
	boolean("DISABLE_TLS_1_2", &c.TLS.DisableTLS12)
	boolean("DISABLE_TLS_1_3", &c.TLS.DisableTLS13)
	c.TLSKeyFile, _ = get("TLS_KEY_FILE")
	tlsWarns, err := c.TLS.Validate()
	for _, e := range flatten(err) {
		var se *tlsconf.SettingError
		if !errors.As(e, &se) {
			bad("TLS", e)
			continue
		}
		for _, sub := range flatten(se.Err) { // one error per bad cipher name
			bad(se.Key, sub)
		}
	}
	for _, w := range tlsWarns {
		warn(w.Key, w.Message)
	}

	boolean("COMPRESSION", &c.Compression)
	if v, ok := get("PROXY_REAL_IP_HEADER"); ok {
		if !isToken(v) {
			bad("PROXY_REAL_IP_HEADER", fmt.Errorf("%q is not a valid HTTP header name", v))
		} else {
			c.RealIPHeader = v
		}
	}
	c.RealIPAllowFrom = list("PROXY_REAL_IP_ALLOW_FROM")
	if v, ok := get("MAX_WORKERS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || strings.Trim(v, "0123456789") != "" || n < 1 || n > 127 {
			warn("MAX_WORKERS", fmt.Sprintf("%q is not an integer between 1 and 127; ignored", v))
		} else {
			c.MaxWorkers = n
		}
	}

	slices.SortStableFunc(warns, func(a, b lineWarning) int { return cmp.Compare(a.line, b.line) })
	for _, w := range warns {
		c.Warnings = append(c.Warnings, w.text)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *KeyError) int { return cmp.Compare(a.Line, b.Line) })
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return nil, errors.Join(all...)
	}
	return c, nil
}

// where returns "file:line: " or "file: " for line 0.
func where(name string, line int) string {
	if line == 0 {
		return name + ": "
	}
	return fmt.Sprintf("%s:%d: ", name, line)
}

// flatten returns the errors joined in err.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func parseListenIP(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address (host names are not supported)", v)
	}
	if a.Is6() && a.Zone() == "" && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
		return netip.Addr{}, fmt.Errorf("link-local address %s needs an interface, as in %s%%eth0", a, a)
	}
	return a, nil
}

// isToken reports whether s is an RFC 9110 token, as header names must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
