#!/bin/bash
# Tests the .deb: lintian, install into a fresh Debian root (mmdebstrap, chroot, no systemd running),
# `printbox selftest` there, first start, reinstall keeps data, purge removes it, `systemd-analyze verify`,
# and the upgrade from the previous version: key, tokens, a printer and a queued job made by the old package
# survive, and the job prints after the upgrade.
# usage: image/test-deb.sh [amd64|arm64|path/to/printbox_<v>_<arch>.deb]
#   builds the .deb with build-deb.sh unless a file is given; arm64 runs under qemu-user-static (binfmt).
# env: SUITE=trixie (Debian release of the root), MIRROR=http://deb.debian.org/debian, KEEP=1 keeps the root,
#   PREV_REF=<git ref> the previous version to upgrade from (default: the first commit that shipped a .deb),
#   PREV_DEB=<file> a .deb of it already built.
# Needs root and: mmdebstrap lintian dpkg-dev (util-linux unshare, chroot).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
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
	for pid in ${LINTIAN_PID:-} ${PREV_PID:-} ${PRINTER_PID:-} ${SERVER_PID:-}; do kill "$pid" 2>/dev/null || true; done
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

# The previous version, built in the background while the root is made: its own commit's build-deb.sh and
# maintainer scripts, relabelled below the new version when both carry the same one (no release bumped it).
PREV_REF=${PREV_REF:-$(git -C "$REPO" log --diff-filter=A --format=%H -- image/build-deb.sh 2>/dev/null | tail -1)}
prev_build() {
	if [ -n "${PREV_DEB:-}" ]; then cp "$PREV_DEB" "$WORK/prev-built.deb"; echo "given file $PREV_DEB" >"$WORK/prev.desc"; return; fi
	local src=$WORK/prev-src
	mkdir -p "$src" "$WORK/prev-out"
	if [ -n "$PREV_REF" ] && git -C "$REPO" archive "$PREV_REF" 2>/dev/null | tar -x -C "$src"; then
		echo "commit $(git -C "$REPO" log -1 --format='%h, %cs' "$PREV_REF")" >"$WORK/prev.desc"
	else
		# No history (a shallow clone or a tarball): the same tree, relabelled as older.
		git -C "$REPO" archive HEAD 2>/dev/null | tar -x -C "$src" || cp -a "$REPO/." "$src/"
		echo "this tree relabelled as older (no git history for PREV_REF)" >"$WORK/prev.desc"
	fi
	[ -e "$src/node_modules" ] || ln -s "$REPO/node_modules" "$src/node_modules" # esbuild, where its build bundles
	OUT=$WORK/prev-out DEB_COMPRESS=gzip DEB_LEVEL=1 timeout 600 "$src/image/build-deb.sh" "$ARCH" >"$WORK/prev-build.log" 2>&1 &&
		cp "$WORK"/prev-out/printbox_*_"$ARCH".deb "$WORK/prev-built.deb"
}
prev_build &
PREV_PID=$!

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
# IN_ROOT_EXEC=1: exec into it, so that the caller's $! (a background call) is the process that gets signals.
in_root() {
	${IN_ROOT_EXEC:+exec} timeout "${LIMIT:-120}" unshare --mount --propagation private sh -c '
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

step "reinstall of the same version (dpkg -i over the installed package) keeps data, keys, tokens, config"
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

step "upgrade from the previous version: key, tokens, printer and a queued job survive; the job prints"
wait "$PREV_PID" && PREV_PID= || true
PREV_PID=
if [ ! -s "$WORK/prev-built.deb" ]; then
	tail -20 "$WORK/prev-build.log" 2>/dev/null | sed 's/^/    /'
	fail "could not build the previous version ($(cat "$WORK/prev.desc" 2>/dev/null))"
else
	NEW_VERSION=$(dpkg-deb -f "$DEB" Version)
	PREV_VERSION=$(dpkg-deb -f "$WORK/prev-built.deb" Version)
	if dpkg --compare-versions "$PREV_VERSION" ge "$NEW_VERSION"; then
		PREV_VERSION="${NEW_VERSION%-*}-0~prev"
		dpkg-deb -R "$WORK/prev-built.deb" "$WORK/prev-pkg"
		sed -i "s/^Version: .*/Version: $PREV_VERSION/" "$WORK/prev-pkg/DEBIAN/control"
		dpkg-deb --root-owner-group -Zgzip -z1 --build "$WORK/prev-pkg" "$ROOT/tmp/prev.deb" >/dev/null
	else
		cp "$WORK/prev-built.deb" "$ROOT/tmp/prev.deb"
	fi
	ok "previous version: $(cat "$WORK/prev.desc") as $PREV_VERSION; new: $NEW_VERSION"
	peer() { (cd "$REPO" && timeout "${PEER_LIMIT:-120}" node --import tsx test/deb-upgrade-peer.ts "$@"); }
	free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
	# The service runs under systemd on a box; here the same binary is started by hand in the root (as the
	# printbox user, through /usr/bin/printbox), on a free loopback port, mDNS off.
	# timeout (exec'd, so $! is its pid) passes SIGTERM on to node: every step down to node is an exec.
	start_server() {
		LIMIT=300 IN_ROOT_EXEC=1 in_root env PRINTBOX_MDNS=0 printbox serve --port "$API_PORT" --host 127.0.0.1 >>"$WORK/serve.log" 2>&1 &
		SERVER_PID=$!
	}
	stop_server() {
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
		# The next server must be the one started next, not this one still answering on the port.
		if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; then fail "the server still listens on $API_PORT after SIGTERM"; fi
	}

	in_root dpkg -i /tmp/prev.deb >"$WORK/prev-install.log" 2>&1 && ok "installed $PREV_VERSION on a clean root" || { sed 's/^/    /' "$WORK/prev-install.log"; fail "dpkg -i (previous version)"; }
	in_root setpriv --reuid=printbox --regid=printbox --init-groups env PRINTBOX_INSTALLED=1 /opt/printbox/lib/first-start >/dev/null || fail "first-start (previous version)"
	SUBMIT_TOKEN=$(in_root printbox token create --name upgrade-test --scope submit) || fail "token create (previous version)"
	# exec: the signal that turns the printer on must reach node itself.
	(cd "$REPO" && exec node --import tsx test/deb-upgrade-peer.ts printer "$WORK/printer.port" "$WORK/printer.jobs") &
	PRINTER_PID=$!
	for _ in $(seq 100); do [ -s "$WORK/printer.port" ] && break; sleep 0.1; done
	SINK_PORT=$(cat "$WORK/printer.port")
	in_root printbox printer add upgrade-test "raw://127.0.0.1:$SINK_PORT" >/dev/null || fail "printer add (previous version)"
	API_PORT=$(free_port)
	head -c 200000 /dev/urandom >"$WORK/document.bin"
	start_server
	JOB=$(peer submit "https://127.0.0.1:$API_PORT" "$ROOT/var/lib/printbox/tls/cert.pem" "$SUBMIT_TOKEN" upgrade-test "$WORK/document.bin") &&
		ok "the previous version accepted job $JOB; its printer is off" || { tail -20 "$WORK/serve.log" | sed 's/^/    /'; fail "submit to the previous version"; }
	# At least one delivery attempt fails against the printer that is off before the old version stops.
	peer wait "https://127.0.0.1:$API_PORT" "$ROOT/var/lib/printbox/tls/cert.pem" "$SUBMIT_TOKEN" "$JOB" attempted 30 >/dev/null ||
		fail "the previous version made no delivery attempt"
	stop_server
	KEY_BEFORE=$(sha256sum <"$ROOT/var/lib/printbox/spool.key")
	CODE_BEFORE=$(cat "$ROOT/var/lib/printbox/setup-code")

	in_root dpkg -i /tmp/printbox.deb >"$WORK/upgrade.log" 2>&1 && grep -q "over ($PREV_VERSION)" "$WORK/upgrade.log" &&
		ok "upgraded $PREV_VERSION -> $NEW_VERSION" || { sed 's/^/    /' "$WORK/upgrade.log"; fail "dpkg -i (upgrade from $PREV_VERSION)"; }
	[ "$(in_root dpkg-query -W -f '${Version}' printbox)" = "$NEW_VERSION" ] || fail "installed version is not $NEW_VERSION"
	[ "$(sha256sum <"$ROOT/var/lib/printbox/spool.key")" = "$KEY_BEFORE" ] && ok "spool key unchanged" || fail "spool key changed"
	TOKENS=$(in_root printbox token list 2>&1)
	grep -q ' setup ' <<<"$TOKENS" && grep -q ' upgrade-test ' <<<"$TOKENS" && [ "$(cat "$ROOT/var/lib/printbox/setup-code")" = "$CODE_BEFORE" ] &&
		ok "tokens kept (setup, upgrade-test)" || { echo "$TOKENS" | sed 's/^/    /'; fail "tokens lost"; }
	in_root printbox printer list 2>&1 | grep -q "raw://127.0.0.1:$SINK_PORT" && ok "printer kept" || fail "printer lost"
	in_root printbox job list 2>&1 | grep "$JOB" | grep -qwE 'queued|sending' && ok "job $JOB still waiting to print" || { in_root printbox job list 2>&1 | sed 's/^/    /'; fail "queued job lost"; }

	kill -USR1 "$PRINTER_PID" || fail "the printer peer is gone" # the printer comes on
	start_server
	STATE=$(peer wait "https://127.0.0.1:$API_PORT" "$ROOT/var/lib/printbox/tls/cert.pem" "$SUBMIT_TOKEN" "$JOB" sent,confirmed,failed 90) || true
	stop_server
	if [ "$STATE" = sent ] || [ "$STATE" = confirmed ]; then
		# The printer records a job once the connection has ended, a moment after the appliance saw it sent.
		want="$(sha256sum <"$WORK/document.bin" | cut -d' ' -f1) 200000"
		for _ in $(seq 50); do grep -qx "$want" "$WORK/printer.jobs" && break; sleep 0.2; done
		grep -qx "$want" "$WORK/printer.jobs" &&
			ok "the job printed after the upgrade: the printer got the document's 200000 bytes intact ($STATE)" ||
			fail "the printer did not get the document intact: $(cat "$WORK/printer.jobs")"
	else
		tail -20 "$WORK/serve.log" | sed 's/^/    /'
		fail "the queued job did not print after the upgrade (state ${STATE:-unknown})"
	fi
	kill "$PRINTER_PID" 2>/dev/null; wait "$PRINTER_PID" 2>/dev/null || true
	PRINTER_PID=
fi

step "lintian result"
wait "$LINTIAN_PID" || true
LINTIAN_PID=
grep -E '^[EW]:' "$WORK/lintian.txt" | sed 's/^/    /' || true
if [ "$(cat "$WORK/lintian.rc" 2>/dev/null)" = 0 ]; then ok "lintian: no errors ($(grep -c '^W:' "$WORK/lintian.txt" || true) warnings)"; else fail "lintian errors (exit $(cat "$WORK/lintian.rc" 2>/dev/null))"; fi

step "$([ "$FAILED" = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - START)) s"
exit "$FAILED"
