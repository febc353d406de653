#!/bin/sh
# Regenerates the golden files under testdata/pve with PVE's own code:
# parse_conf, write_conf and create_conf of pve-cluster's
# src/PVE/Corosync.pm, taken from a pve-cluster git directory at run time
# (nothing of it is kept here). Needs perl with Clone and Digest::SHA
# (Debian: libclone-perl).
#
#   testdata/pve-oracle.sh /path/to/pve-cluster/.git [commit]
#
# For every testdata/pve/NAME.in it writes NAME.pve: what PVE writes after
# reading NAME.in (write_conf(parse_conf(input))), or "ERROR: <message>"
# when PVE dies. It also writes create-*.pve: the corosync.conf "pvecm
# create" writes for the parameters below (create_conf, then the
# config_version bump of atomic_write_conf, then write_conf).
set -eu
gitdir=$1
rev=${2:-HEAD}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

git --git-dir="$gitdir" show "$rev:src/PVE/Corosync.pm" >"$tmp/Corosync.pm"
{
	echo 'use strict; use warnings; use Clone qw(clone); use Digest::SHA; use Scalar::Util qw(weaken);'
	awk '/^my \$conf_array_sections/,/^};/' "$tmp/Corosync.pm"
	awk '/^# a very simply parser/,/^# read only - use atomic_write_conf/' "$tmp/Corosync.pm"
	# create_conf, with its two helpers replaced by stubs.
	echo 'sub extract_corosync_link_args { my ($p) = @_; return $p->{links}; }'
	echo 'package PVE::Cluster; sub remote_node_ip { return "192.0.2.11"; } package main;'
	awk '/^sub create_conf/,/^}/' "$tmp/Corosync.pm"
	echo '1;'
} >"$tmp/funcs.pl"

cat >"$tmp/rw.pl" <<'PERL'
use strict; use warnings;
require "./funcs.pl";
local $/; my $raw = <STDIN>;
my $conf = eval { parse_conf("f", $raw) };
if ($@) { my $e = $@; $e =~ s/ at \S+ line \d+.*//s; chomp $e; print "ERROR: $e\n"; exit 0 }
my $out = eval { write_conf("f", $conf) };
if ($@) { my $e = $@; $e =~ s/ at \S+ line \d+.*//s; chomp $e; print "ERROR: $e\n"; exit 0 }
print $out;
PERL

cat >"$tmp/create.pl" <<'PERL'
use strict; use warnings;
require "./funcs.pl";
my $which = shift;
my %params = (
	'single-link' => { clustername => 'testcluster', 'token-coefficient' => 125, links => {} },
	'two-links' => { clustername => 'cloud', nodeid => 3, votes => 2, 'token-coefficient' => 125,
		links => { 0 => { address => '10.10.10.1' }, 1 => { address => '10.20.20.1', priority => 20 } } },
);
my $conf = create_conf('pve1', $params{$which});
$conf->{main}->{totem}->{config_version}++;
print write_conf(undef, $conf);
PERL

cd "$tmp"
for in in "$here"/pve/*.in; do
	perl rw.pl <"$in" >"${in%.in}.pve"
done
for c in single-link two-links; do
	perl create.pl "$c" >"$here/pve/create-$c.pve"
done
