// Package netacl implements pveproxy's host access control: the address lists
// of ALLOW_FROM, DENY_FROM and PROXY_REAL_IP_ALLOW_FROM in /etc/default/pveproxy
// and the decision table that combines them with POLICY.
//
// # Address lists
//
// A list is a comma-separated set of entries in the syntax of Perl's Net::IP,
// which PVE uses to parse them. An entry is one of
//
//   - "all": every IPv4 and every IPv6 address (0/0 and ::/0);
//   - a single address: "192.0.2.7", "2001:db8::7";
//   - a prefix: "192.168.0.0/16", "2001:db8::/32". As in Net::IP, the address
//     must not have bits set beyond the prefix length: "10.0.0.1/8" is an error;
//   - a range "first-last" of one address family with first <= last, e.g.
//     "10.0.0.1-10.0.0.5". Net::IP, and so PVE, allows blanks around the dash.
//
// IPv4 addresses may be abbreviated as in Net::IP: missing trailing parts are
// zero ("10/8" is 10.0.0.0/8, "192.168.1" is 192.168.1.0) and parts may have
// leading zeros, which are decimal ("010.1.1.1" is 10.1.1.1). IPv6 addresses
// take the usual textual forms; a zone ("%eth0") is an error.
//
// Entries are not trimmed: any other blank, for example after a comma, makes the
// entry invalid, and so does an empty entry between commas. Trailing commas are
// ignored, because Perl's split drops trailing empty fields.
//
// An entry that lies entirely within the IPv4-mapped range ::ffff:0:0/96 is
// converted to the IPv4 addresses it maps, because peers are compared after
// unmapping. (PVE does this for single addresses; for mapped prefixes and
// ranges its conversion is broken and such entries fail or shrink. We convert
// them properly, so every list PVE accepts means the same here.) Other IPv6
// entries never match IPv4 peers: "::/0" covers IPv6 only, and "all" is the
// way to say both families. PVE rejects an explicit "::/0" and any prefix
// containing ::ffff:0:0/96 because of the same conversion bug; we accept them.
//
// Not supported from Net::IP (they are errors here): the "address + count"
// form, repeated prefix lengths such as "10.0.0.0/8/8", and a non-numeric
// prefix length, which Net::IP silently ignores.
//
// # Decision
//
// Policy.Allowed decides one peer: IPv4-mapped IPv6 peers are unmapped first and
// a zone is dropped; if the peer matches exactly one of Allow and Deny, that
// list decides; if it matches both or neither, the policy default decides.
// Address sets are go4.org/netipx IPSets, so a lookup is a binary search over
// sorted ranges and costs tens of nanoseconds (see BenchmarkAllowed).
package netacl
