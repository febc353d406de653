// Package ticket implements PVE's credential formats as pure functions:
// RSA-signed tickets (the PVEAuthCookie login ticket and its relatives),
// the auth key files, the CSRFPreventionToken, the extraction of tickets and
// API tokens from HTTP headers and the user and token id grammars.
//
// Nothing here reads files or clocks: keys arrive as PEM bytes, their file
// modification times and the current time arrive as arguments.
//
// Tickets are signed with RSASSA-PKCS1-v1_5 over SHA-1, which is what PVE's
// Perl code (Crypt::OpenSSL::RSA with its defaults) produces, so that tickets
// minted here are accepted by real PVE nodes. Go's crypto/rsa allows SHA-1
// PKCS #1 v1.5 signing and verification; only the FIPS 140-only mode
// (GODEBUG=fips140=only) refuses it, and that mode cannot be used with PVE's
// ticket format at all. Verification also accepts PKCS #1 v1.5 and PSS over
// SHA-256, which newer builds of the Perl module may emit.
package ticket
