// Command benchserver is the baseline of `make bench`: a plain net/http HTTPS
// server that answers every request with one fixed body, so that pveproxy's
// figures can be put next to what the Go standard library does on the same
// machine with the same certificates and the same response.
//
// It speaks HTTP/1.1 only (pveproxy does not offer HTTP/2), keeps connections
// alive, and, like pveproxy, serves the ECDSA certificate to clients that can
// use it and the RSA one to the others when both are given.
//
// Usage:
//
//	benchserver -listen 127.0.0.1:8443 -cert pve-ssl.pem -key pve-ssl.key \
//		[-ecdsa-cert pve-ssl-ecdsa.pem -ecdsa-key pve-ssl-ecdsa.key] \
//		-body-file version.json [-header 'Cache-Control: max-age=0' ...]
//
// It prints "listening on ADDR" once it accepts connections and runs until
// SIGINT or SIGTERM.
package main
