// Package loginguard holds back failed logins and throttles the addresses
// they come from, for pvedaemon's POST /access/ticket.
//
// # PVE's delay
//
// PVE answers every 401 of an API call no earlier than 3 s after the request
// arrived (PVE::APIServer::AnyEvent: the delay is 3 s minus the time the call
// already took, and never negative). The wait is an AnyEvent timer, so the
// worker serves other connections meanwhile. Here the handler's own goroutine
// waits on a timer (or until the request's context ends): no worker, pool or
// extra goroutine is held. Because the answer comes at a fixed time after the
// arrival whatever failed (no such user, wrong password, PAM's own fail
// delay), the time of a failure tells no more than in PVE: only a check that
// outlasts the 3 s (a slow PAM or LDAP back end) shows through, as in PVE. A
// successful login is answered at once, as in PVE.
//
// # Throttling per source
//
// PVE has no throttle of its own: it relies on the 3 s, on its few pvedaemon
// workers and on fail2ban. Here an attempt is first charged to its source
// (the IPv4 address, or the /64 of an IPv6 address, since one host usually
// owns a whole /64) as if it failed; a success takes the charge back. The
// charges decay exponentially with a half-life of 5 minutes and are capped
// at 32. A source whose score (the charges of its earlier attempts,
// including those still being checked) is below 5 is not slowed at all: a
// user who mistypes a few times waits no longer than PVE makes them, and
// their correct password is answered at once. From
// 5 on, an attempt waits before its credentials are even checked: 1 s at 5,
// doubling with each further point, at most 15 s; and checks from one
// source start at least that wait apart, so parallel attempts queue up
// rather than run side by side. An attempt whose turn would come more than
// 15 s later is not checked at all and fails like a wrong password
// (ErrThrottled).
//
// Why these numbers:
//   - 5 free failures: people mistype; fail2ban's jail in deploy/fail2ban
//     bans at 5 failures as well, so the throttle covers hosts without it.
//   - 15 s at most: pveproxy gives up on a forwarded call after 30 s (PVE's
//     proxy timeout); 15 s of waiting plus the check (PAM alone takes about
//     2 s to refuse) stays well inside, so a slowed user still gets an
//     answer rather than a proxy error.
//   - half-life 5 min, cap 32: six failures in a row are forgotten (score
//     below 5) within 2 minutes; after a flood stops, the source is back
//     below 5 within 14 minutes.
//   - 16384 sources at most, least recently used dropped first: about 3 MiB
//     (some 200 bytes each).
//     A throttled source that is dropped starts again at 5 free attempts,
//     which costs an attacker 16384 fresh addresses per round.
//
// Nobody is locked out: the throttle is per source, so attempts from other
// addresses never slow the real user, and it has no locked state: a single
// attempt from any source is checked within 15 s. Only an address that has
// more attempts queued than fit into 15 s sees some of them refused, and
// only while the queue lasts.
package loginguard
