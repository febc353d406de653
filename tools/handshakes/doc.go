// Command handshakes measures how many new, full TLS handshakes per second a
// server completes: -conns workers each dial, complete a handshake without
// any session resumption (no session cache, no tickets offered), close, and
// start over, until -duration has passed or -max handshakes were started.
// wrk cannot measure this because it resumes sessions.
//
// -mode selects what the client offers:
//
//	tls13        TLS 1.3 with Go's defaults (a server with an ECDSA
//	             certificate serves it, as to browsers)
//	tls12-rsa    TLS 1.2 with ECDHE-RSA suites only (forces the RSA certificate)
//	tls12-ecdsa  TLS 1.2 with ECDHE-ECDSA suites only (forces ECDSA)
//
// -curve fixes the key exchange (x25519, p256, x25519mlkem768); by default
// Go's preference list is offered. With -pid, the CPU time the given
// processes spent during the run is read from /proc and reported per
// handshake, which does not depend on how fast the load driver itself is.
//
// The result is one line of key=value pairs, for example:
//
//	mode=tls13 conns=32 ok=41234 failed=0 seconds=10.01 rate=4119.4
//	p50_ms=7.61 p99_ms=15.20 version=TLS1.3 cert=ECDSA-P256
//	curve=X25519MLKEM768 suite=TLS_AES_128_GCM_SHA256 server_cpu_ms=0.412
//
// (on one line). A failed run also prints first_error="...".
package main
