#!/bin/bash
# Tests the .deb: lintian, install into a fresh Debian root (mmdebstrap, chroot, no systemd running),
# `printbox selftest` there, first start, upgrade keeps data, purge removes it, `systemd-analyze verify`.
# usage: image/test-deb.sh [amd64|arm64|path/to/printbox_<v>_<arch>.deb]
#   builds the .deb with build-deb.sh unless a file is given; arm64 runs under qemu-user-static (binfmt).
# env: SUITE=trixie (Debian release of the root), MIRROR=http://deb.debian.org/debian, KEEP=1 keeps the root.
# Needs root and: mmdebstrap lintian dpkg-dev (util-linux unshare, chroot).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${SUITE:-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
START=$(date +%s)
FAILED=0
step() { printf '\n==> [%3ss] %s\n' $(($(date +%s) - START)) "$*"; }
ok() { echo "    ok: $*"; }
fail() { echo "    FAIL: $*" >&2; FAILED=1; }
die() { echo "test-deb: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (chroot, mounts)"
for tool in mmdebstrap lintian unshare chroot timeout; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap lintian)"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-test-deb.XXXXXX")
cleanup() {
	[ -n "${LINTIAN_PID:-}" ] && kill "$LINTIAN_PID" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

DEB=${1:-amd64}
if [ "$DEB" = amd64 ] || [ "$DEB" = arm64 ]; then
	ARCH=$DEB
	step "building the .deb ($ARCH, gzip: the test does not need xz's size)"
	OUT=$WORK/out DEB_COMPRESS=gzip DEB_LEVEL=1 timeout 600 "$HERE/build-deb.sh" "$ARCH" | sed 's/^/    /'
	DEB=$(ls "$WORK"/out/printbox_*_"$ARCH".deb)
fi
[ -f "$DEB" ] || die "no such .deb: $DEB"
DEB=$(readlink -f "$DEB")
ARCH=$(dpkg-deb -f "$DEB" Architecture)
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
	# A foreign root runs through qemu-user-static; binfmt_misc must be mounted and the handler enabled.
	[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	case "$ARCH" in arm64) qemu=qemu-aarch64 ;; *) qemu=qemu-$ARCH ;; esac
	[ -e "/proc/sys/fs/binfmt_misc/$qemu" ] || update-binfmts --enable "$qemu" || die "install qemu-user-static binfmt-support for $ARCH"
fi

step "lintian (in the background)"
(timeout 300 lintian --fail-on error --display-info "$DEB" >"$WORK/lintian.txt" 2>&1; echo $? >"$WORK/lintian.rc") &
LINTIAN_PID=$!

step "fresh Debian $SUITE $ARCH root with mmdebstrap (minimal: apt variant + the .deb's dependencies + systemd for verify)"
ROOT=$WORK/root
timeout 900 mmdebstrap --quiet --arch="$ARCH" --variant=apt --include=adduser,init-system-helpers,libstdc++6,libgcc-s1,systemd \
	"$SUITE" "$ROOT" "$MIRROR" || die "mmdebstrap failed"
ok "root is $(du -sh "$ROOT" | cut -f1)"
cp "$DEB" "$ROOT/tmp/printbox.deb"

# One private mount namespace per call: /proc and /dev are gone when the call ends, whatever happens.
in_root() {
	timeout "${LIMIT:-120}" unshare --mount --propagation private sh -c '
		mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && shift &&
		exec chroot "$0" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"' "$ROOT" "$ROOT" "$@"
}

step "dpkg -i (fresh install)"
if in_root dpkg -i /tmp/printbox.deb 2>&1 | sed 's/^/    /'; then ok "installed"; else fail "dpkg -i"; fi
in_root getent passwd printbox >/dev/null && ok "system user printbox exists" || fail "no printbox user"
# stat inside the root: user ids mean names from the root's passwd, not this machine's.
owner() { in_root stat -c '%a %U' "$1" 2>&1; }
[ "$(owner /var/lib/printbox)" = "700 printbox" ] && ok "/var/lib/printbox is 0700 printbox" || fail "/var/lib/printbox: $(owner /var/lib/printbox)"
grep -qx /etc/printbox/config.json "$ROOT/var/lib/dpkg/info/printbox.conffiles" && ok "config.json is a conffile" || fail "config.json not a conffile"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/printbox.service" ] && ok "printbox.service enabled" || fail "printbox.service not enabled"
[ "$(in_root readlink -f /usr/bin/printbox)" = /usr/bin/printbox ] && in_root sh -c 'command -v printbox' >/dev/null && ok "printbox is on the PATH" || fail "printbox not on PATH"

step "printbox selftest inside the root (bundled Node.js $(in_root /opt/printbox/node/bin/node -v))"
LIMIT=${SELFTEST_LIMIT:-180} in_root printbox selftest >"$WORK/selftest.txt" 2>&1 && rc=0 || rc=$?
sed 's/^/    /' "$WORK/selftest.txt"
if [ "$rc" = 0 ] && grep -q '^selftest: ok' "$WORK/selftest.txt"; then ok "selftest passed"; else fail "selftest exit $rc"; fi

step "first start: keys and the one-time setup code, made as the service user"
in_root setpriv --reuid=printbox --regid=printbox --init-groups env PRINTBOX_INSTALLED=1 /opt/printbox/lib/first-start | sed 's/^/    /' || fail "first-start"
for f in spool.key callback.secret setup-code; do
	[ "$(owner "/var/lib/printbox/$f")" = "600 printbox" ] && ok "$f is 0600 printbox" || fail "$f: $(owner "/var/lib/printbox/$f")"
done
in_root printbox token list | grep -q ' setup ' && ok "the setup code is an admin token named setup" || fail "no setup token"
KEY_BEFORE=$(sha256sum <"$ROOT/var/lib/printbox/spool.key")
CODE_BEFORE=$(cat "$ROOT/var/lib/printbox/setup-code")
echo '{"port": 8443}' >"$ROOT/etc/printbox/config.json" # a local change the upgrade must keep
LIMIT=60 in_root /opt/printbox/node/bin/node /opt/printbox/lib/console-message.mjs >"$WORK/console.txt" 2>&1 || true
grep -q "$CODE_BEFORE" "$ROOT/etc/issue.d/printbox.issue" 2>/dev/null && grep -q ':8443/' "$WORK/console.txt" &&
	ok "console message names the port and the setup code" || { sed 's/^/    /' "$WORK/console.txt"; fail "console message"; }

step "upgrade (dpkg -i over the installed package) keeps data, keys, tokens, config"
in_root dpkg -i --force-confold /tmp/printbox.deb >/dev/null 2>&1 && ok "reinstalled" || fail "dpkg -i (upgrade)"
[ "$(sha256sum <"$ROOT/var/lib/printbox/spool.key")" = "$KEY_BEFORE" ] && ok "spool key unchanged" || fail "spool key changed"
[ "$(cat "$ROOT/var/lib/printbox/setup-code")" = "$CODE_BEFORE" ] && in_root printbox token list | grep -q ' setup ' && ok "tokens kept" || fail "tokens lost"
grep -q 8443 "$ROOT/etc/printbox/config.json" && ok "local config kept" || fail "config.json overwritten"

step "systemd-analyze verify (systemd $(in_root systemd-analyze --version | head -1 | cut -d' ' -f2) in the root)"
if in_root systemd-analyze verify --man=no printbox.service printbox-console.service 2>&1 | sed 's/^/    /'; then ok "units verify"; else fail "systemd-analyze verify"; fi
in_root systemd-analyze security --offline=yes printbox.service 2>/dev/null | tail -1 | sed 's/^/    /' || true

step "remove keeps data; purge deletes it"
in_root dpkg -r printbox >/dev/null 2>&1 || fail "dpkg -r"
[ -f "$ROOT/var/lib/printbox/spool.key" ] && ok "remove kept /var/lib/printbox" || fail "remove deleted data"
in_root dpkg -P printbox >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e "$ROOT/var/lib/printbox" ] && [ ! -e "$ROOT/etc/printbox" ] && [ ! -e "$ROOT/opt/printbox" ] && ok "purge removed /var/lib/printbox, /etc/printbox, /opt/printbox" || fail "purge left files: $(ls -d "$ROOT"/var/lib/printbox "$ROOT"/etc/printbox "$ROOT"/opt/printbox 2>/dev/null)"

step "lintian result"
wait "$LINTIAN_PID" || true
LINTIAN_PID=
grep -E '^[EW]:' "$WORK/lintian.txt" | sed 's/^/    /' || true
if [ "$(cat "$WORK/lintian.rc" 2>/dev/null)" = 0 ]; then ok "lintian: no errors ($(grep -c '^W:' "$WORK/lintian.txt" || true) warnings)"; else fail "lintian errors (exit $(cat "$WORK/lintian.rc" 2>/dev/null))"; fi

step "$([ "$FAILED" = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - START)) s"
exit "$FAILED"
