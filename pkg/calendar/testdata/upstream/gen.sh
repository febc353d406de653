#!/bin/sh
# Regenerates ../upstream_next.tsv: next run times computed by the upstream
# proxmox-time crate (built from a proxmox-rs checkout with the real glibc)
# for generated calendar events in several time zones.
#
# usage: gen.sh PROXMOX_RS_GIT_DIR   (a bare or normal git directory)
# needs: cargo, rustc and Debian's librust-{nom,bitflags,anyhow,libc}-dev
# (the crate is built offline against /usr/share/cargo/registry).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
gitdir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/proxmox-time/src" "$work/oracle/src" "$work/.cargo"
for f in $(git --git-dir="$gitdir" ls-tree --name-only HEAD proxmox-time/src/); do
	git --git-dir="$gitdir" show "HEAD:$f" >"$work/$f"
done
# Debian bookworm ships bitflags 1.3, which derives these traits itself.
sed -i 's/#\[derive(Clone, Copy, Debug, Default, Eq, PartialEq)\]/#[derive(Default)]/' \
	"$work/proxmox-time/src/week_days.rs"
cat >"$work/proxmox-time/Cargo.toml" <<'TOML'
[package]
name = "proxmox-time"
version = "0.0.0"
edition = "2021"
[dependencies]
anyhow = "1"
bitflags = "1.3"
nom = "7"
libc = { version = "0.2", features = ["extra_traits"] }
TOML
cp "$here/oracle/Cargo.toml" "$work/oracle/"
cp "$here/oracle/src/main.rs" "$work/oracle/src/"
cat >"$work/.cargo/config.toml" <<'TOML'
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "/usr/share/cargo/registry"
[net]
offline = true
TOML
(cd "$work/oracle" && cargo build --release --quiet)
oracle=$work/oracle/target/release/caloracle

out=$here/../upstream_next.tsv
: >"$out.new"
seed=1
for zone in UTC Europe/Vienna America/New_York Europe/Dublin Australia/Lord_Howe Pacific/Apia Europe/Moscow; do
	for mode in events junk; do
		seed=$((seed + 1))
		(cd "$here/../../../.." && go run ./pkg/calendar/testdata/upstream/gencases -mode "$mode" -zone "$zone" -seed "$seed" -n 400) |
			TZ=$zone "$oracle" | sed -e "s|^|$zone\t|" -e "s|\tperr:.*|\tperr|" -e "s|\terr:.*|\terr|" >>"$out.new"
	done
done
mv "$out.new" "$out"
