// Package tlstest creates throwaway certificates for tests: a CA and RSA-2048
// or ECDSA P-256 leaf certificates, written into a directory under PVE's file
// names (pve-ssl.pem, pveproxy-ssl.key, ...). It is for tests only.
package tlstest
