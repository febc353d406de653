// Package proxyconf turns /etc/default/pveproxy into the runtime settings of
// pveproxy (and, for LISTEN_IP, ALLOW_FROM, DENY_FROM and POLICY, of
// spiceproxy), and binds the listening socket.
//
// Load parses the file with package defaultsfile and checks every key PVE
// reads, with PVE's defaults; an empty value means unset, as in PVE. Other
// variables in the file are ignored, as PVE ignores them. Every invalid value
// is an error naming file, line and key, and all of them are reported at once;
// a daemon refuses to start, and a reload keeps the running configuration.
//
//	LISTEN_IP                 IP address literal; a link-local IPv6 address
//	                          needs "%interface". Host names are not accepted.
//	ALLOW_FROM, DENY_FROM     address lists, see package netacl
//	POLICY                    "allow" (default) or "deny"
//	CIPHERS, CIPHERSUITES,    see package tlsconf
//	HONOR_CIPHER_ORDER,
//	DISABLE_TLS_1_2,
//	DISABLE_TLS_1_3, DHPARAMS
//	TLS_KEY_FILE              key of the custom certificate pveproxy-ssl.pem
//	COMPRESSION               "0" or "1" (default 1)
//	PROXY_REAL_IP_HEADER      an HTTP header name (RFC 9110 token)
//	PROXY_REAL_IP_ALLOW_FROM  address list of peers trusted to set that header;
//	                          unset means any peer
//	MAX_WORKERS               1..127, default 3; an invalid value is a warning
//	                          and ignored, as in PVE. We have no worker
//	                          processes, so the value is only range-checked.
//
// The boolean keys accept exactly "0" and "1", as PVE does.
//
// # Listening
//
// With LISTEN_IP set, the daemon listens on that address only ("::" is the
// dual-stack wildcard described next, without the IPv4 fallback). Without it,
// it listens on the IPv6 wildcard "::" as one dual-stack socket that accepts
// IPv4 connections too, and falls back to "0.0.0.0" when IPv6 is unavailable
// (for example with ipv6.disable=1), as PVE does.
//
// PVE leaves IPV6_V6ONLY at the system default, so with the sysctl
// net.ipv6.bindv6only=1 PVE's wildcard socket is IPv6-only and IPv4 clients
// cannot connect. We clear IPV6_V6ONLY explicitly on the wildcard socket, so it
// is dual-stack regardless of the sysctl: an operator who sets bindv6only for
// other programs does not lose IPv4 access to the web interface. To serve one
// address family only, set LISTEN_IP.
package proxyconf
