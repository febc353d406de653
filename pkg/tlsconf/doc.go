// Package tlsconf builds the server TLS configuration of pveproxy and
// spiceproxy from the TLS keys of /etc/default/pveproxy and the node's
// certificate files, and swaps it atomically on reload.
//
// # Protocol versions
//
// TLS 1.2 and 1.3 are offered; DISABLE_TLS_1_2 and DISABLE_TLS_1_3 switch one
// of them off and setting both is an error, as in PVE. SSLv2, SSLv3, TLS 1.0 and
// TLS 1.1 are never offered. (PVE's code still allows TLS 1.1, which Debian's
// OpenSSL configuration then refuses; we put the floor at TLS 1.2 ourselves.)
// Compression and renegotiation are never offered by Go's server side.
//
// # CIPHERS (TLS 1.2)
//
// CIPHERS is a list of OpenSSL cipher names separated by ':' (',' and ' ' are
// accepted too, as OpenSSL does). IANA names such as
// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 are accepted as well, as OpenSSL 1.1.1
// and later do. Every cipher suite Go implements for TLS 1.2 can be named,
// including the ones Go classifies as insecure (RSA key exchange, CBC with
// SHA-256, 3DES, RC4); those are only enabled when named and a warning says so.
// The table of names is checked against captured `openssl ciphers` output in
// testdata.
//
//   - An unknown name is an error that names it (OpenSSL would skip it silently).
//   - A name OpenSSL knows but Go does not implement (DHE-*, CCM, ARIA,
//     CAMELLIA, PSK, SRP, NULL, the ECDHE CBC-SHA384 suites, ...) gives a warning
//     naming it; the remaining names are used. If none remains while TLS 1.2 is
//     enabled, that is an error.
//   - OpenSSL cipher-string keywords (HIGH, ALL, DEFAULT, aNULL, ...) and
//     operators (!x, -x, +x, a+b, @STRENGTH, @SECLEVEL=n) are not supported and
//     are errors: list the cipher names to allow instead.
//   - A TLS 1.3 suite name belongs in CIPHERSUITES and is an error here.
//
// The order of the list is not used: Go applies its own preference order
// (AES-GCM first on hardware with AES support, ChaCha20 otherwise).
// HONOR_CIPHER_ORDER accepts 0 and 1 like PVE; Go always chooses the suite on
// the server side, so 0 cannot be honoured and gives a warning.
//
// When CIPHERS is unset, PVE's default list applies, less what Go does not
// implement (ECDHE-ECDSA-AES256-SHA384, ECDHE-RSA-AES256-SHA384) and less what
// Go classifies as insecure (ECDHE-ECDSA-AES128-SHA256, ECDHE-RSA-AES128-SHA256,
// CBC without Lucky13 countermeasures); no warning is given for these. That
// leaves the six AES-GCM and ChaCha20-Poly1305 ECDHE suites. Writing PVE's
// default list into CIPHERS explicitly enables the two CBC-SHA256 suites too,
// with warnings.
//
// # CIPHERSUITES (TLS 1.3)
//
// Names are checked (an unknown name is an error), but Go's TLS stack cannot
// restrict TLS 1.3 suites: unless the value names exactly the default set
// (TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256,
// in any order) a warning says that all TLS 1.3 suites stay enabled.
//
// # DHPARAMS
//
// Go offers no finite-field DHE cipher suites, so DH parameters are never used.
// If DHPARAMS is set, the file must exist and hold PEM "DH PARAMETERS" (PVE
// would refuse to start otherwise); a warning then says it is ignored.
//
// # Certificates
//
// LoadCertificates follows PVE: in the node directory (/etc/pve/local), the
// custom certificate pveproxy-ssl.pem with its key (pveproxy-ssl.key, or the
// TLS_KEY_FILE path) is used when both files exist; otherwise pve-ssl.pem with
// pve-ssl.key. Keys protected by a passphrase are refused with ErrEncryptedKey.
//
// Beside the chosen pair an optional ECDSA pair may exist:
// pveproxy-ssl-ecdsa.pem/.key beside the custom certificate, pve-ssl-ecdsa.pem/
// .key beside the node certificate. It is served to clients that can use it
// (ClientHelloInfo.SupportsCertificate), and the main certificate to the others.
// This is our extension; PVE has one certificate only.
//
// # Reload
//
// Manager.ServerConfig returns one *tls.Config for the life of the process.
// Its GetConfigForClient returns the configuration current at the time of each
// handshake, held in an atomic pointer, so Reload swaps certificates, cipher
// suites and versions without closing listeners or established connections. A
// reload that fails validation keeps the running configuration. Session tickets
// keep Go's defaults; their keys belong to the long-lived outer configuration
// and survive reloads.
//
// No ALPN protocols are announced, as in PVE: clients speak HTTP/1.1.
package tlsconf
