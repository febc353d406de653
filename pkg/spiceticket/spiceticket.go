// Package spiceticket implements PVE's SPICE proxy tickets (pve-common
// PVE::Ticket assemble_spice_ticket and verify_spice_connect_url): the
// signed "host" a remote-viewer sends to spiceproxy in its CONNECT request,
// and the one-time SPICE password that goes with it.
//
// The proxy ticket is
//
//	pvespiceproxy:<t>:<vmid>:<node>:<port>::<sig>
//
// with <t> the creation time as 8 lowercase hex digits, <node> lowercased
// and <sig> the lowercase hex SHA-1 of the part before "::" followed by the
// secret (a plain hash, not an HMAC, as PVE). The secret is the cluster's
// CSRF secret (ticket.CSRFSecret of pve-www.key). The client connects with
// "<ticket>:<port>" as CONNECT target and Host header. Older PVE versions
// signed no port ("pvespiceproxy:<t>:<vmid>:<node>::<sig>"); such tickets
// are still accepted, as PVE does.
package spiceticket

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validity window: a ticket is accepted when -Grace < now - t < Lifetime
// (seconds), as PVE.
const (
	Grace    = 20
	Lifetime = 40
)

// ErrInvalid is returned for a connect string that is malformed, forged,
// expired or signed for another port. spiceproxy answers it with 401
// "invalid ticket".
var ErrInvalid = errors.New("invalid ticket")

// Assemble returns the proxy ticket for user's console of vmid on node
// (SPICE TLS port port) created at now, and the SPICE password: 40
// lowercase hex digits, random (PVE hashes a string containing the time, its
// pid and a random number; only its unpredictability matters). port <= 0
// gives the old form without port, for tests of old clients.
func Assemble(secret, user string, vmid int, node string, port int, now time.Time) (proxyTicket, password string) {
	ts := fmt.Sprintf("%08x", now.Unix())
	var rnd [32]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails on Linux
	h := sha1.New()
	fmt.Fprintf(h, "PVESPICE:%s:%s:%d:%s:%s::%x", ts, user, vmid, node, secret, rnd)
	password = hex.EncodeToString(h.Sum(nil))

	plain := "pvespiceproxy:" + ts + ":" + strconv.Itoa(vmid) + ":" + strings.ToLower(node)
	if port > 0 {
		plain += ":" + strconv.Itoa(port)
	}
	return plain + "::" + sign(secret, plain), password
}

// sign is hex(SHA-1(plain ‖ secret)).
func sign(secret, plain string) string {
	h := sha1.New()
	h.Write([]byte(plain))
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// The node part is Perl's \S under byte semantics: no ASCII white space.
var (
	newForm = regexp.MustCompile(`^pvespiceproxy:([a-z0-9]{8}):([0-9]+):([^\t\n\v\f\r ]+):([0-9]+)::([a-z0-9]{40}):([0-9]+)$`)
	oldForm = regexp.MustCompile(`^pvespiceproxy:([a-z0-9]{8}):([0-9]+):([^\t\n\v\f\r ]+)::([a-z0-9]{40}):([0-9]+)$`)
)

// Verify checks the connect string hostHeader ("<proxy ticket>:<port>", the
// Host header of the CONNECT request) at now and returns the VM, node and
// port it names. Any failure is ErrInvalid. The port range is the caller's
// check.
func Verify(secret, hostHeader string, now time.Time) (vmid int, node string, port int, err error) {
	var ts, vm, sig, portStr, plain string
	if m := newForm.FindStringSubmatch(hostHeader); m != nil {
		ts, vm, node, sig, portStr = m[1], m[2], m[3], m[5], m[6]
		signed, err1 := strconv.ParseUint(m[4], 10, 32)
		p, err2 := strconv.ParseUint(portStr, 10, 32)
		if err1 != nil || err2 != nil || signed != p { // PVE compares numerically
			return 0, "", 0, ErrInvalid
		}
		// PVE signs with the trailing (connect) port's digits.
		plain = "pvespiceproxy:" + ts + ":" + vm + ":" + node + ":" + portStr
	} else if m := oldForm.FindStringSubmatch(hostHeader); m != nil {
		ts, vm, node, sig, portStr = m[1], m[2], m[3], m[4], m[5]
		plain = "pvespiceproxy:" + ts + ":" + vm + ":" + node
	} else {
		return 0, "", 0, ErrInvalid
	}
	t, err := strconv.ParseUint(ts, 16, 64)
	if err != nil {
		return 0, "", 0, ErrInvalid
	}
	age := now.Unix() - int64(t)
	if age <= -Grace || age >= Lifetime {
		return 0, "", 0, ErrInvalid
	}
	if subtle.ConstantTimeCompare([]byte(sign(secret, plain)), []byte(sig)) != 1 {
		return 0, "", 0, ErrInvalid
	}
	// PVE then requires a true vmid, node and port in Perl's sense:
	// "0" is false.
	v, err1 := strconv.Atoi(vm)
	p, err2 := strconv.Atoi(portStr)
	if err1 != nil || err2 != nil || node == "0" || portStr == "0" {
		return 0, "", 0, ErrInvalid
	}
	return v, node, p, nil
}
