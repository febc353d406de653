// Package e2e holds the end-to-end tests of the node daemons: they start the
// real pvedaemon and pveproxy binaries on loopback, each under a prefix of
// its own (a copy of one config root made by `pvedaemon setup`), and talk
// HTTPS to them as a PVE client would: host ACLs, TLS settings, certificate
// selection, compression, real-IP logging, the plain-HTTP redirect, the
// privilege drop, reloads under load, forwarding of protected calls to
// pvedaemon, tickets, API tokens, permission checks, PAM, and how bad input
// is refused.
//
// The tests need root (pveproxy drops to www-data after binding). The
// binaries come from $PVENODE_BIN (make test sets it) or are built into a
// temporary directory by TestMain. `go test -short` skips the package.
package e2e
