package tlsconf

import (
	"crypto/tls"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
)

// DefaultCiphers is PVE's CIPHERS default (TLS 1.2 and below).
const DefaultCiphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" +
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:" +
	"ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256"

// DefaultCipherSuites is OpenSSL's default TLS 1.3 suite list, which PVE
// uses when CIPHERSUITES is unset.
const DefaultCipherSuites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

// Settings are the TLS keys of /etc/default/pveproxy. Start from
// DefaultSettings: the zero value has HonorCipherOrder false, which is not
// PVE's default.
type Settings struct {
	// Ciphers is CIPHERS as written; "" means DefaultCiphers.
	Ciphers string
	// CipherSuites is CIPHERSUITES as written; "" means DefaultCipherSuites.
	CipherSuites string
	// HonorCipherOrder is HONOR_CIPHER_ORDER (default true).
	HonorCipherOrder bool
	// DisableTLS12 is DISABLE_TLS_1_2.
	DisableTLS12 bool
	// DisableTLS13 is DISABLE_TLS_1_3.
	DisableTLS13 bool
	// DHParams is the DHPARAMS path; "" means unset.
	DHParams string
}

// DefaultSettings returns PVE's defaults.
func DefaultSettings() Settings {
	return Settings{HonorCipherOrder: true}
}

// SettingError is an invalid value of one setting, named by its
// /etc/default key (CIPHERS, DISABLE_TLS_1_3, ...).
type SettingError struct {
	Key string
	Err error
}

// Error returns "KEY: problem".
func (e *SettingError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *SettingError) Unwrap() error { return e.Err }

// Warning is a setting that is accepted but cannot take full effect.
type Warning struct {
	Key     string
	Message string
}

// String returns "KEY: message".
func (w Warning) String() string { return w.Key + ": " + w.Message }

// Validate checks s as a whole. It returns the warnings to log and an error
// joining one *SettingError per bad key. It reads the DHPARAMS file if set.
func (s Settings) Validate() ([]Warning, error) {
	_, warns, err := s.resolve()
	return warns, err
}

// resolved is the part of Settings that goes into a tls.Config.
type resolved struct {
	minVersion, maxVersion uint16
	cipherSuites           []uint16
}

func (s Settings) resolve() (resolved, []Warning, error) {
	var (
		errs  []error
		warns []Warning
		r     = resolved{minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS13}
	)
	if s.DisableTLS12 {
		r.minVersion = tls.VersionTLS13
	}
	if s.DisableTLS13 {
		r.maxVersion = tls.VersionTLS12
	}
	if s.DisableTLS12 && s.DisableTLS13 {
		errs = append(errs, &SettingError{"DISABLE_TLS_1_3",
			errors.New("DISABLE_TLS_1_2 and DISABLE_TLS_1_3 are both set, which leaves no TLS version")})
	}

	list := s.Ciphers
	if list == "" {
		list = DefaultCiphers
	}
	cl, err := parseCiphers(list)
	switch {
	case err != nil:
		errs = append(errs, &SettingError{"CIPHERS", err})
	case len(cl.ids) == 0 && !s.DisableTLS12:
		errs = append(errs, &SettingError{"CIPHERS", fmt.Errorf(
			"no cipher suite left that Go can offer for TLS 1.2 (usable: %s; or set DISABLE_TLS_1_2=1)",
			strings.Join(SupportedCiphers(), ", "))})
	}
	r.cipherSuites = cl.ids
	if s.Ciphers == "" {
		// Of PVE's default list, leave out what Go calls insecure (the
		// CBC-SHA256 suites): Go offers those only when named explicitly.
		r.cipherSuites = slices.DeleteFunc(slices.Clone(cl.ids), func(id uint16) bool { return goSuites[id].Insecure })
	} else {
		if len(cl.unsupported) > 0 {
			warns = append(warns, Warning{"CIPHERS", fmt.Sprintf(
				"Go's TLS stack cannot offer %s; skipped", strings.Join(cl.unsupported, ", "))})
		}
		if len(cl.insecure) > 0 {
			warns = append(warns, Warning{"CIPHERS", fmt.Sprintf(
				"enabled because named, although Go classifies them as insecure: %s", strings.Join(cl.insecure, ", "))})
		}
	}

	if w, err := checkCipherSuites(s.CipherSuites); err != nil {
		errs = append(errs, &SettingError{"CIPHERSUITES", err})
	} else if w != "" && !s.DisableTLS13 {
		warns = append(warns, Warning{"CIPHERSUITES", w})
	}

	if !s.HonorCipherOrder {
		warns = append(warns, Warning{"HONOR_CIPHER_ORDER",
			"0 cannot be honoured: Go's TLS stack always chooses the cipher suite on the server side"})
	}

	if s.DHParams != "" {
		if err := checkDHParams(s.DHParams); err != nil {
			errs = append(errs, &SettingError{"DHPARAMS", err})
		} else {
			warns = append(warns, Warning{"DHPARAMS", fmt.Sprintf(
				"%s is ignored: Go's TLS stack offers no finite-field DHE cipher suites", s.DHParams)})
		}
	}
	return r, warns, errors.Join(errs...)
}

// cipherName is one cipher suite with its OpenSSL and IANA names.
type cipherName struct {
	ID      uint16
	OpenSSL string
	IANA    string
}

// cipherByName maps OpenSSL and IANA names of TLS 1.2 suites to their entry.
var cipherByName = func() map[string]cipherName {
	m := make(map[string]cipherName, 2*len(opensslCiphers))
	for _, c := range opensslCiphers {
		m[c.OpenSSL] = c
		m[c.IANA] = c
	}
	return m
}()

// suite13ByName maps TLS 1.3 suite names to their entry.
var suite13ByName = func() map[string]cipherName {
	m := make(map[string]cipherName, len(opensslSuites13))
	for _, c := range opensslSuites13 {
		m[c.IANA] = c
	}
	return m
}()

// goSuites maps the IDs of the suites Go implements for TLS 1.2 to Go's
// description.
var goSuites = func() map[uint16]*tls.CipherSuite {
	m := map[uint16]*tls.CipherSuite{}
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(c.SupportedVersions, tls.VersionTLS12) {
			m[c.ID] = c
		}
	}
	return m
}()

// opensslKeywords are OpenSSL cipher-string keywords (see ciphers(1)); they
// are recognised only to give a precise error.
var opensslKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`ALL COMPLEMENTOFALL DEFAULT COMPLEMENTOFDEFAULT
		HIGH MEDIUM LOW EXPORT EXP eNULL NULL aNULL kRSA aRSA RSA kDHr kDHd kDH kDHE
		kEDH DH DHE EDH ADH kEECDH kECDHE ECDH ECDHE EECDH AECDH aDSS DSS aDH aECDSA
		ECDSA TLSv1.2 TLSv1.0 TLSv1 SSLv3 SSLv2 AES128 AES256 AES AESGCM AESCCM
		AESCCM8 ARIA128 ARIA256 ARIA ARIAGCM CAMELLIA128 CAMELLIA256 CAMELLIA CHACHA20
		3DES DES RC4 RC2 IDEA SEED MD5 SHA1 SHA SHA256 SHA384 aGOST aGOST01 aGOST12
		kGOST kGOST18 GOST94 GOST89MAC PSK kPSK kECDHEPSK kDHEPSK kRSAPSK aPSK
		SUITEB128 SUITEB128ONLY SUITEB192 kSRP SRP aSRP eFZA aFZA kFZA FZA`) {
		m[k] = true
	}
	return m
}()

// SupportedCiphers returns the OpenSSL names of the TLS 1.2 cipher suites that
// CIPHERS can enable, sorted.
func SupportedCiphers() []string {
	var names []string
	for _, c := range opensslCiphers {
		if goSuites[c.ID] != nil {
			names = append(names, c.OpenSSL)
		}
	}
	slices.Sort(names)
	return names
}

// cipherList is a parsed CIPHERS value.
type cipherList struct {
	ids         []uint16 // suites Go offers, in list order
	unsupported []string // known names Go cannot offer
	insecure    []string // enabled names Go classifies as insecure
}

func parseCiphers(list string) (cipherList, error) {
	var (
		cl   cipherList
		errs []error
	)
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ':' || r == ',' || r == ' ' })
	for _, name := range fields {
		if c, ok := cipherByName[name]; ok {
			gs := goSuites[c.ID]
			switch {
			case gs == nil:
				if !slices.Contains(cl.unsupported, name) {
					cl.unsupported = append(cl.unsupported, name)
				}
			case !slices.Contains(cl.ids, c.ID):
				cl.ids = append(cl.ids, c.ID)
				if gs.Insecure {
					cl.insecure = append(cl.insecure, name)
				}
			}
			continue
		}
		switch {
		case strings.ContainsAny(name[:1], "!-+@") || strings.Contains(name, "+"):
			errs = append(errs, fmt.Errorf("%q: OpenSSL cipher-string operators are not supported; list the cipher names to allow", name))
		case opensslKeywords[name]:
			errs = append(errs, fmt.Errorf("%q is an OpenSSL cipher keyword; keywords are not supported, list cipher names instead", name))
		case suite13ByName[name].ID != 0:
			errs = append(errs, fmt.Errorf("%q is a TLS 1.3 suite; set it in CIPHERSUITES", name))
		default:
			errs = append(errs, fmt.Errorf("unknown cipher %q", name))
		}
	}
	return cl, errors.Join(errs...)
}

// checkCipherSuites validates a CIPHERSUITES value and returns a warning when
// it cannot be enforced.
func checkCipherSuites(list string) (string, error) {
	if list == "" {
		return "", nil
	}
	var (
		errs  []error
		named []uint16
	)
	for _, name := range strings.Split(list, ":") {
		if name == "" {
			continue
		}
		c, ok := suite13ByName[name]
		switch {
		case ok:
			if !slices.Contains(named, c.ID) {
				named = append(named, c.ID)
			}
		case cipherByName[name].ID != 0:
			errs = append(errs, fmt.Errorf("%q is not a TLS 1.3 suite; set it in CIPHERS", name))
		default:
			errs = append(errs, fmt.Errorf("unknown TLS 1.3 suite %q", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	slices.Sort(named)
	if slices.Equal(named, []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}) {
		return "", nil
	}
	return "cannot be enforced by Go's TLS stack; all TLS 1.3 suites stay enabled " +
		"(TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)", nil
}

// checkDHParams checks that path holds PEM-encoded DH parameters (PKCS#3 or
// X9.42; both start with the prime and the generator).
func checkDHParams(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return fmt.Errorf("%s holds no PEM \"DH PARAMETERS\" block", path)
		}
		if b.Type != "DH PARAMETERS" && b.Type != "X9.42 DH PARAMETERS" {
			continue
		}
		var params struct {
			P, G *big.Int
		}
		if _, err := asn1.Unmarshal(b.Bytes, &params); err != nil {
			return fmt.Errorf("%s: invalid DH parameters: %w", path, err)
		}
		return nil
	}
}
