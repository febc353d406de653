#!/bin/sh
# Checks the packaging files in deploy/:
#   - systemd-analyze verify on the five units (skipped if systemd-analyze
#     is not installed);
#   - sh -n, and shellcheck if installed, on the maintainer scripts and on
#     this script.
# The units name /usr/bin/<daemon>, which need not exist where this runs, so
# they are verified in a copy that points at stand-in executables.
# Exit status: 0 if every check that could run passed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

daemons="pvedaemon pveproxy pvestatd spiceproxy pvescheduler"

fail() {
	echo "FAIL: $*" >&2
	status=1
}

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$tmp/bin" "$tmp/units"
	for d in $daemons; do
		printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$d"
		chmod 0755 "$tmp/bin/$d"
		sed -e "s|/usr/bin/$d|$tmp/bin/$d|g" "$here/systemd/$d.service" >"$tmp/units/$d.service"
	done
	# --man=no: the units name no manual pages to look up.
	if out=$(cd "$tmp/units" && systemd-analyze verify --man=no ./*.service 2>&1); then
		if [ -n "$out" ]; then
			# verify exits 0 on some warnings; treat any output about our
			# units as a failure.
			if echo "$out" | grep -E "($(echo "$daemons" | tr ' ' '|'))\.service" >/dev/null; then
				fail "systemd-analyze verify reported:"
				echo "$out" >&2
			fi
		fi
		[ "$status" -eq 0 ] && echo "ok: systemd-analyze verify ($daemons)"
	else
		fail "systemd-analyze verify:"
		echo "$out" >&2
	fi
else
	echo "skip: systemd-analyze not installed"
fi

scripts="$here/check.sh $here/debian/pvenode.postinst $here/debian/pvenode.prerm $here/debian/pvenode.postrm"
for s in $scripts; do
	if ! sh -n "$s"; then
		fail "sh -n $s"
	fi
done
echo "ok: sh -n (maintainer scripts)"
if command -v shellcheck >/dev/null 2>&1; then
	# shellcheck disable=SC2086 # word splitting of the list is intended
	if shellcheck -s sh $scripts; then
		echo "ok: shellcheck"
	else
		fail "shellcheck"
	fi
else
	echo "skip: shellcheck not installed"
fi

for f in systemd/pvedaemon.service systemd/pveproxy.service systemd/pvestatd.service \
	systemd/spiceproxy.service systemd/pvescheduler.service default/pveproxy \
	pam/proxmox-ve-auth logrotate/pveproxy; do
	if ! grep -q "deploy/$f" "$here/debian/pvenode.install"; then
		fail "deploy/$f is not installed by debian/pvenode.install"
	fi
done

exit "$status"
