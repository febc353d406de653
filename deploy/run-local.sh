#!/usr/bin/env bash
# The embedded one-node installation behind `make run` / `make stop`: a
# config root under $RUNPREFIX (default ./.run), pvedaemon on 127.0.0.1:8585
# (so a real pvedaemon on port 85 is left alone), pveproxy on port 8006 and
# spiceproxy on port 3128 (both dropping to www-data as on a PVE node), and
# pvestatd and pvescheduler.
set -euo pipefail
BIN=${PVENODE_BIN:-$(pwd)/bin}
P=${RUNPREFIX:-$(pwd)/.run}
DAEMON_ADDR=${DAEMON_ADDR:-127.0.0.1:8585}
PORT=${PORT:-8006}
SPICE_PORT=${SPICE_PORT:-3128}

start() {
  if [ "$(id -u)" != 0 ]; then
    echo "make run needs root: pvedaemon runs as root and pveproxy drops to www-data, as on a PVE node" >&2
    exit 1
  fi
  id www-data >/dev/null 2>&1 || { echo "the www-data account is missing (Debian: adduser --system --group www-data)" >&2; exit 1; }
  mkdir -p "$P"
  # pveproxy (www-data) must be able to traverse the prefix.
  chmod 0755 "$P"
  d=$P; while [ "$d" != / ]; do d=$(dirname "$d"); [ -x "$d" ] || chmod o+x "$d"; done
  out=$("$BIN/pvedaemon" setup --prefix "$P" --admin admin@pve)
  if grep -q '^password:' <<<"$out"; then
    # Kept for this development installation only (root-only file); a real
    # node prints the password once and keeps nothing.
    umask 077; printf '%s\n' "$out" | grep -E '^(user|password):' >"$P/admin-credentials"; umask 022
  fi
  "$BIN/pvedaemon" start --prefix "$P" --listen "$DAEMON_ADDR"
  "$BIN/pveproxy" start --prefix "$P" --port "$PORT" --daemon-addr "$DAEMON_ADDR"
  "$BIN/pvestatd" start --prefix "$P"
  node=$(sed -n 's/^node: //p' <<<"$out")
  "$BIN/spiceproxy" start --prefix "$P" --port "$SPICE_PORT" ${node:+--node "$node"}
  "$BIN/pvescheduler" start --prefix "$P" ${node:+--node "$node"}
  fp=$(sed -n 's/^fingerprint: //p' <<<"$out")
  host=$(hostname -f 2>/dev/null || hostname)
  echo
  echo "pvenode is running (node $node)."
  echo "  URL:          https://$host:$PORT/   (API: https://$host:$PORT/api2/json/)"
  echo "  SPICE proxy:  http://$host:$SPICE_PORT   (deploy/spice-screenshot.sh opens a VM console with remote-viewer)"
  echo "  certificate:  SHA-256 $fp (CA: $P/etc/pve/pve-root-ca.pem)"
  if [ -f "$P/admin-credentials" ]; then
    sed 's/^/  /' "$P/admin-credentials"
  fi
  echo "  log in:       curl --cacert $P/etc/pve/pve-root-ca.pem -d username=admin@pve -d password=... https://localhost:$PORT/api2/json/access/ticket"
  echo "  stop with:    make stop"
}

stop() {
  "$BIN/pvescheduler" stop --prefix "$P" || true
  "$BIN/spiceproxy" stop --prefix "$P" || true
  "$BIN/pvestatd" stop --prefix "$P" || true
  "$BIN/pveproxy" stop --prefix "$P" || true
  "$BIN/pvedaemon" stop --prefix "$P" || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
