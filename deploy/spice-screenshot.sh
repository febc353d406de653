#!/usr/bin/env bash
# Opens a VM's SPICE console with a real SPICE client, remote-viewer
# (Debian: virt-viewer), through spiceproxy, on a private X server (Xvfb),
# and saves a screenshot of it as PNG.
#
# Against the installation of `make run` (pveproxy on 8006, spiceproxy on
# 3128, prefix ./.run): it logs in through the API, creates (--create) and
# starts the VM, calls POST /nodes/NODE/qemu/VMID/spiceproxy with
# proxy=127.0.0.1, writes the answer as a .vv file, runs remote-viewer on it
# and waits until the SPICE session shows the guest's display (remote-viewer's
# --debug log, the window titled as the .vv file says) and spiceproxy has
# logged the tunnel. The screenshot must not be blank and must show the
# guest's text in the viewer window. Everything it starts
# (Xvfb, remote-viewer) is stopped on exit; the VM is left running.
#
# Needs: curl, jq, remote-viewer, Xvfb, xwininfo (x11-utils), xwd (x11-apps)
# and ImageMagick's convert:
#   apt-get install --no-install-recommends curl jq virt-viewer xvfb x11-utils x11-apps imagemagick
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/spice-screenshot.sh [options] VMID
  --prefix DIR       installation prefix (default $RUNPREFIX or ./.run)
  --user USER        login (default: user: line of PREFIX/admin-credentials)
  --password PW      password (default: password: line of PREFIX/admin-credentials)
  --port N           pveproxy's port (default $PORT or 8006)
  --spice-port N     spiceproxy's port (default $SPICE_PORT or 3128)
  --node NAME        node name (default: the first node the API lists)
  --create           create the VM (memory 64, vga qxl) if it does not exist
  --out FILE.png     screenshot path (default /tmp/spice-VMID-TIME.png)
  --timeout S        bound of each wait in seconds (default 60)
EOF
  exit 2
}

P=${RUNPREFIX:-$(pwd)/.run}
USER_=""
PW=""
PORT=${PORT:-8006}
SPICE_PORT=${SPICE_PORT:-3128}
NODE=""
CREATE=0
OUT=""
WAIT=60
VMID=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) P=$2; shift 2 ;;
    --user) USER_=$2; shift 2 ;;
    --password) PW=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --spice-port) SPICE_PORT=$2; shift 2 ;;
    --node) NODE=$2; shift 2 ;;
    --create) CREATE=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --timeout) WAIT=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) [ -z "$VMID" ] || usage; VMID=$1; shift ;;
  esac
done
[[ "$VMID" =~ ^[0-9]+$ ]] || usage
OUT=${OUT:-/tmp/spice-$VMID-$(date +%Y%m%d-%H%M%S).png}

die() { echo "spice-screenshot: $*" >&2; exit 1; }

for c in curl jq remote-viewer Xvfb xwininfo xwd convert timeout; do
  command -v "$c" >/dev/null || die "$c is not installed (see the header of $0)"
done
CA=$P/etc/pve/pve-root-ca.pem
[ -r "$CA" ] || die "no CA at $CA: is --prefix the installation of 'make run'?"
if [ -z "$USER_" ] || [ -z "$PW" ]; then
  cred=$P/admin-credentials
  [ -r "$cred" ] || die "give --user and --password (no $cred)"
  [ -n "$USER_" ] || USER_=$(sed -n 's/^user: //p' "$cred")
  [ -n "$PW" ] || PW=$(sed -n 's/^password: //p' "$cred")
fi

WORK=$(mktemp -d /tmp/spice-screenshot.XXXXXX)
XPID=""
VPID=""
cleanup() {
  [ -z "$VPID" ] || kill "$VPID" 2>/dev/null || true
  [ -z "$XPID" ] || kill "$XPID" 2>/dev/null || true
  [ -z "$VPID" ] || wait "$VPID" 2>/dev/null || true
  [ -z "$XPID" ] || wait "$XPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

API=https://localhost:$PORT/api2/json
TICKET=""
CSRF=""
# api METHOD PATH [curl args...]: prints the answer's data; fails on a non-2xx.
api() {
  local m=$1 path=$2; shift 2
  local hdr=()
  [ -z "$TICKET" ] || hdr=(-b "PVEAuthCookie=$TICKET")
  [ "$m" = GET ] || [ -z "$CSRF" ] || hdr+=(-H "CSRFPreventionToken: $CSRF")
  local body code
  body=$(curl -sS --max-time 30 --cacert "$CA" -X "$m" "${hdr[@]}" -w '\n%{http_code}' "$@" "$API$path") ||
    die "$m $path: curl failed"
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  [[ "$code" == 2* ]] || die "$m $path: HTTP $code $body"
  jq -c '.data' <<<"$body"
}

# waittask UPID: bounded poll until the task stops; fails unless it ended OK.
waittask() {
  local upid=$1 st deadline=$((SECONDS + WAIT))
  while [ $SECONDS -lt $deadline ]; do
    st=$(api GET "/nodes/$NODE/tasks/$(jq -rn --arg u "$upid" '$u|@uri')/status")
    if [ "$(jq -r .status <<<"$st")" = stopped ]; then
      [ "$(jq -r .exitstatus <<<"$st")" = OK ] && return 0
      die "task $upid: $(jq -r .exitstatus <<<"$st")"
    fi
    sleep 0.5
  done
  die "task $upid still running after ${WAIT}s"
}

login=$(api POST /access/ticket --data-urlencode "username=$USER_" --data-urlencode "password=$PW")
TICKET=$(jq -r .ticket <<<"$login")
CSRF=$(jq -r .CSRFPreventionToken <<<"$login")
if [ -z "$TICKET" ] || [ "$TICKET" = null ]; then die "login as $USER_: no ticket"; fi
if [ -z "$NODE" ]; then
  nodes=$(api GET /nodes)
  NODE=$(jq -r '.[0].node' <<<"$nodes")
fi
echo "logged in as $USER_ on node $NODE"

vms=$(api GET "/nodes/$NODE/qemu")
if ! jq -e --argjson id "$VMID" 'any(.[]; .vmid == $id)' <<<"$vms" >/dev/null; then
  [ "$CREATE" = 1 ] || die "VM $VMID does not exist (give --create)"
  echo "creating VM $VMID (memory 64, vga qxl)"
  upid=$(api POST "/nodes/$NODE/qemu" -d "vmid=$VMID" -d name=spice-screenshot -d memory=64 -d vga=qxl | jq -r .)
  waittask "$upid"
fi
cfg=$(api GET "/nodes/$NODE/qemu/$VMID/config")
vga=$(jq -r '.vga // ""' <<<"$cfg")
case "$vga" in
  qxl*|virtio*) ;;
  *) die "VM $VMID has vga '${vga:-default}': SPICE needs qxl (qm set $VMID --vga qxl)" ;;
esac
cur=$(api GET "/nodes/$NODE/qemu/$VMID/status/current")
if [ "$(jq -r .status <<<"$cur")" != running ]; then
  echo "starting VM $VMID"
  upid=$(api POST "/nodes/$NODE/qemu/$VMID/status/start" | jq -r .)
  waittask "$upid"
fi

# The X server first: the SPICE password from the API expires after 30 s.
# -displayfd lets Xvfb pick a free display; -wr makes the root white, so the
# viewer window stands out in the screenshot.
mkdir -m 0700 "$WORK/xdg"
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp -wr 3>"$WORK/display" 2>"$WORK/xvfb.log" &
XPID=$!
deadline=$((SECONDS + WAIT))
until [ -s "$WORK/display" ] && grep -q '^[0-9]' "$WORK/display"; do
  kill -0 "$XPID" 2>/dev/null || die "Xvfb exited: $(cat "$WORK/xvfb.log")"
  [ $SECONDS -lt $deadline ] || die "Xvfb reported no display in ${WAIT}s"
  sleep 0.1
done
DISPLAY=:$(head -n1 "$WORK/display")
export DISPLAY
export XDG_RUNTIME_DIR=$WORK/xdg NO_AT_BRIDGE=1 GDK_BACKEND=x11
echo "Xvfb on $DISPLAY"

vv=$(api POST "/nodes/$NODE/qemu/$VMID/spiceproxy" -d proxy=127.0.0.1)
# The API names port 3128, as PVE; another spiceproxy port is set here.
vv=$(jq -c --arg p "http://127.0.0.1:$SPICE_PORT" '.proxy = $p' <<<"$vv")
title=$(jq -r .title <<<"$vv")
tlsport=$(jq -r '."tls-port"' <<<"$vv")
# The .vv file: a GKeyFile group; the ca value keeps its literal \n, which
# remote-viewer unescapes.
{
  echo '[virt-viewer]'
  jq -r 'to_entries[] | "\(.key)=\(.value)"' <<<"$vv"
} >"$WORK/console.vv"

access=$P/var/log/pveproxy/access.log
before=$(wc -l <"$access" 2>/dev/null || echo 0)
# --debug logs the SPICE session's steps ("main channel: opened", "notebook
# show display" once the guest's display is shown, "auth failure").
remote-viewer --debug "$WORK/console.vv" >"$WORK/viewer.log" 2>&1 &
VPID=$!
echo "remote-viewer started (pid $VPID, window \"$title\")"
viewerlog() { grep -v '^$' "$WORK/viewer.log" | tail -n 20; }

# The session is up: the main channel is open and the display shown (the
# window takes the .vv title only then; before, and after a refused
# password, it is named after the file) ...
deadline=$((SECONDS + WAIT))
until grep -q 'main channel: opened' "$WORK/viewer.log" && grep -q 'notebook show display' "$WORK/viewer.log" &&
  xwininfo -root -tree 2>/dev/null | grep -F "\"$title" >/dev/null; do
  kill -0 "$VPID" 2>/dev/null || die "remote-viewer exited: $(viewerlog)"
  ! grep -qE 'auth failure|failed to connect' "$WORK/viewer.log" || die "SPICE connection failed: $(viewerlog)"
  [ $SECONDS -lt $deadline ] || die "no SPICE display in remote-viewer after ${WAIT}s: $(viewerlog)"
  sleep 0.2
done
# ... through spiceproxy, which has logged the tunnel to the VM's TLS port.
until tail -n +"$((before + 1))" "$access" 2>/dev/null | grep -E "\"CONNECT [^ ]+:$tlsport HTTP/1\.[01]\" 200 " >/dev/null; do
  [ $SECONDS -lt $deadline ] || die "spiceproxy logged no tunnel to port $tlsport in ${WAIT}s"
  sleep 0.2
done

# Screenshots until one is not blank and shows the guest's text: light
# pixels inside the viewer window below its header bar (60 px), where the
# dark theme's chrome has none and the guest's console is light text on
# black. A guest between two screens (SeaBIOS retrying the boot) shows
# black for a moment: retried once a second, bounded.
deadline=$((SECONDS + WAIT))
while :; do
  sleep 1
  kill -0 "$VPID" 2>/dev/null || die "remote-viewer exited: $(viewerlog)"
  # 0x200007 "VM 100 - NAME (1)": ("remote-viewer" "Remote-viewer")  730x456+0+0  +0+0
  geo=$(xwininfo -root -tree | grep -F "\"$title" | head -n1 |
    sed -nE 's/.* ([0-9]+)x([0-9]+)[+-][0-9]+[+-][0-9]+ +\+(-?[0-9]+)\+(-?[0-9]+)$/\1 \2 \3 \4/p')
  read -r ww wh wx wy <<<"$geo" || true
  xwd -root -silent | convert xwd:- png:"$OUT"
  colors=$(convert "$OUT" -format '%k' info:)
  text=0
  if [ -n "${wy:-}" ] && [ "$wh" -gt 60 ]; then
    text=$(convert "$OUT" -crop "${ww}x$((wh - 60))+$wx+$((wy + 60))" +repage -colorspace Gray -threshold 50% -format '%[fx:mean]' info:)
  fi
  if [ "$colors" -gt 2 ] && awk -v f="$text" 'BEGIN { exit !(f > 0.001) }'; then
    break
  fi
  [ $SECONDS -lt $deadline ] || die "screenshot $OUT shows no guest text after ${WAIT}s ($colors colours, light fraction in the window $text)"
done
echo "console of VM $VMID through spiceproxy: $colors colours, light (text) fraction in the console $text"
echo "$OUT"
