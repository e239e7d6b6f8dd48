#!/bin/bash
# Builds printbox_<version>_<arch>.deb: the app, its production node_modules and the official Node.js LTS binary.
# usage: image/build-deb.sh [amd64|arm64]   (output in image/out/, or $OUT)
#   DEB_COMPRESS=xz|gzip DEB_LEVEL=N: compression (xz -6 by default: smallest, ~1 min; gzip -1 takes seconds;
#   zstd works with dpkg but bookworm's lintian calls it malformed)
# Reproducible: the same commit gives the same bytes (image/check-reproducible.sh proves it). Every date is
# SOURCE_DATE_EPOCH (the commit's time unless set), files are root-owned with fixed modes, dpkg-deb sorts
# the members and compresses with fixed settings (gzip -n; xz with a fixed thread count).
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

ARCH=${1:-${ARCH:-amd64}}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT:-$HERE/out}
CACHE=${CACHE:-$HERE/.cache}
NODE_VERSION=$(tr -d ' \n' <"$HERE/node-version")

case "$ARCH" in
amd64) NPM_CPU=x64 ELF_MACHINE=62 ;;    # EM_X86_64
arm64) NPM_CPU=arm64 ELF_MACHINE=183 ;; # EM_AARCH64
*) echo "build-deb: unknown architecture '$ARCH' (amd64 or arm64)" >&2; exit 2 ;;
esac

START=$(date +%s)
step() { printf '\n==> [%3ss] %s\n' $(($(date +%s) - START)) "$*"; }
die() { echo "build-deb: ERROR: $*" >&2; exit 1; }

for tool in npm dpkg-deb gzip tar od; do command -v "$tool" >/dev/null || die "$tool is missing"; done
UPSTREAM=$(cd "$ROOT" && node -p 'require("./package.json").version')
VERSION="$UPSTREAM-1"
MAINTAINER=${DEB_MAINTAINER:-printbox maintainers <maintainers@printbox.example.org>}
# The commit's date, so that a checkout's file times never reach the package; outside git (a source tarball)
# the newest file time of the tracked inputs.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null) ||
		SOURCE_DATE_EPOCH=$(find "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/runtime" "$ROOT/drivers" "$ROOT/bin" "$HERE" -type f -printf '%T@\n' | sort -n | tail -1 | cut -d. -f1)
fi
export SOURCE_DATE_EPOCH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/pkg
APP=$PKG/opt/printbox/app
mkdir -p "$APP" "$PKG/DEBIAN" "$OUT" "$CACHE"

step "printbox $VERSION for $ARCH (Node.js $NODE_VERSION, npm cpu $NPM_CPU)"

step "copying the app"
for d in bin runtime drivers; do cp -a "$ROOT/$d" "$APP/"; done
# The bundle is what runs (bin/printbox.mjs prefers it); the sources stay for plug-ins and as a fallback.
node "$ROOT/bin/build.mjs" --force
mkdir -p "$APP/dist" && cp -a "$ROOT/dist/printbox.mjs" "$APP/dist/"
# The licence comments of the bundled packages (esbuild writes the file only when there are any).
if [ -f "$ROOT/dist/printbox.mjs.LEGAL.txt" ]; then cp -a "$ROOT/dist/printbox.mjs.LEGAL.txt" "$APP/dist/"; fi
rm -f "$APP/bin/build.mjs" # a build tool, not part of the installed app
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$APP/"
if [ -d "$ROOT/web/dist" ]; then
	mkdir -p "$APP/web" && cp -a "$ROOT/web/dist" "$APP/web/"
else
	echo "    (web/dist not built: the package ships without the setup page)"
fi

step "installing production dependencies for linux-$NPM_CPU (npm ci --omit=dev)"
# --cpu/--os pick the platform's optional packages (@esbuild/linux-*) whatever this machine is.
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
	--cpu="$NPM_CPU" --os=linux --libc=glibc) || die "npm ci failed"

step "pruning what does not run (docs, tests, type declarations, repo files)"
# Only inside each package's own folder: node_modules/<pkg>/<dir> or node_modules/@scope/<pkg>/<dir>.
find "$APP/node_modules" -mindepth 2 -maxdepth 3 -type d \( -name .github -o -name .husky -o -name test -o -name tests \
	-o -name __tests__ -o -name integration -o -name docs -o -name example -o -name examples -o -name benchmark -o -name benchmarks \) \
	! -path '*/node_modules/*/node_modules/*/*/*' -prune -exec rm -rf {} +
find "$APP/node_modules" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
	-o -name '.gitattributes' -o -name '.eslintrc*' -o -name '.npmignore' -o -name '.editorconfig' -o -name '.travis.yml' \
	-o -name '.prettierrc*' -o -name '*.html' -o -name '.taprc' -o -name '.nycrc' \) -delete
rm -f "$APP/node_modules/.package-lock.json"

step "keeping only linux-$NPM_CPU native binaries"
# Packages that carry prebuilds for every platform (sodium-native): drop the others.
find "$APP/node_modules" -type d -name prebuilds | while read -r dir; do
	find "$dir" -mindepth 1 -maxdepth 1 -type d ! -name "linux-$NPM_CPU" -exec rm -rf {} +
	find "$dir" \( -name '*.bare' -o -name '*.musl.node' \) -delete # Debian is glibc; Bare is not Node
done
# Every ELF file must be for the target: a wrong one would fail only at run time on the device.
bad=0 elves=0
while IFS= read -r -d '' f; do
	[ "$(od -An -N4 -tx1 "$f" 2>/dev/null | tr -d ' ')" = 7f454c46 ] || continue
	elves=$((elves + 1))
	m=$(od -An -j18 -N2 -tu2 --endian=little "$f" | tr -d ' ')
	if [ "$m" != "$ELF_MACHINE" ]; then echo "    wrong architecture (e_machine $m): ${f#"$APP"/}"; bad=1; fi
done < <(find "$APP/node_modules" -type f -size +4k ! -name '*.js' ! -name '*.mjs' ! -name '*.cjs' ! -name '*.ts' ! -name '*.json' ! -name '*.md' ! -name '*.map' -print0)
find "$APP/node_modules" -type d -empty -delete
[ "$bad" = 0 ] || die "node_modules has binaries for another architecture"
ls "$APP/node_modules/@esbuild/linux-$NPM_CPU/bin/esbuild" >/dev/null 2>&1 || die "esbuild binary for linux-$NPM_CPU missing (tsx cannot run)"
if [ -d "$APP/node_modules/sodium-native" ]; then
	ls "$APP/node_modules/sodium-native/prebuilds/linux-$NPM_CPU/"*.node >/dev/null 2>&1 || die "sodium-native prebuild for linux-$NPM_CPU missing"
fi
echo "    $elves native files, all for $ARCH"

step "fetching Node.js $NODE_VERSION (npm package node-linux-$NPM_CPU, integrity-checked by npm)"
TGZ=$CACHE/node-linux-$NPM_CPU-$NODE_VERSION.tgz
if [ ! -s "$TGZ" ]; then
	(cd "$CACHE" && npm pack --silent "node-linux-$NPM_CPU@$NODE_VERSION" >/dev/null) || die "npm pack node-linux-$NPM_CPU@$NODE_VERSION failed"
fi
mkdir -p "$PKG/opt/printbox/node/bin" "$WORK/node"
tar -xzf "$TGZ" -C "$WORK/node" package/bin/node package/LICENSE
install -m 0755 "$WORK/node/package/bin/node" "$PKG/opt/printbox/node/bin/node"
install -m 0644 "$WORK/node/package/LICENSE" "$PKG/opt/printbox/node/LICENSE"
m=$(od -An -j18 -N2 -tu2 --endian=little "$PKG/opt/printbox/node/bin/node" | tr -d ' ')
[ "$m" = "$ELF_MACHINE" ] || die "node binary is not for $ARCH (e_machine $m)"

step "system files: wrapper, units, config, docs"
install -D -m 0755 "$HERE/lib/printbox" "$PKG/usr/bin/printbox"
install -D -m 0755 "$HERE/lib/first-start" "$PKG/opt/printbox/lib/first-start"
install -D -m 0644 "$HERE/lib/console-message.mjs" "$PKG/opt/printbox/lib/console-message.mjs"
install -D -m 0644 "$HERE/systemd/printbox.service" "$PKG/usr/lib/systemd/system/printbox.service"
install -D -m 0644 "$HERE/systemd/printbox-console.service" "$PKG/usr/lib/systemd/system/printbox-console.service"
install -D -m 0644 "$HERE/systemd/printbox-nats.service" "$PKG/usr/lib/systemd/system/printbox-nats.service"
install -D -m 0644 "$HERE/debian/config.json" "$PKG/etc/printbox/config.json"
DOC=$PKG/usr/share/doc/printbox
install -D -m 0644 "$HERE/cluster/haproxy.cfg" "$DOC/examples/cluster/haproxy.cfg"
install -D -m 0644 "$HERE/debian/copyright" "$DOC/copyright"
install -D -m 0644 "$HERE/systemd/spool-key-credential.conf" "$DOC/examples/spool-key-credential.conf"
printf 'printbox (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
	"$VERSION" "$UPSTREAM" "$MAINTAINER" "$(date -R -u -d "@$SOURCE_DATE_EPOCH")" | gzip -9n >"$DOC/changelog.Debian.gz"
install -D -m 0644 "$HERE/debian/printbox.1" "$PKG/usr/share/man/man1/printbox.1"
gzip -9n "$PKG/usr/share/man/man1/printbox.1"
install -D -m 0644 "$HERE/debian/lintian-overrides" "$PKG/usr/share/lintian/overrides/printbox"

step "control files"
for s in postinst prerm postrm; do install -m 0755 "$HERE/debian/$s" "$PKG/DEBIAN/$s"; done
echo /etc/printbox/config.json >"$PKG/DEBIAN/conffiles"
# npm leaves group-writable or executable data files in some tarballs; normalise like dh_fixperms.
find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG/opt/printbox/app" -type f -exec chmod go-w {} +
find "$PKG/opt/printbox/app/node_modules" -type f ! -path '*/bin/*' ! -name '*.node' -perm /111 -exec chmod 0644 {} +
# As dpkg-gencontrol counts it (KiB per file rounded up, 1 per directory or link): du's block counts
# depend on the file system the build ran on.
SIZE=$(find "$PKG" -path "$PKG/DEBIAN" -prune -o -printf '%y %s\n' | awk '$1 == "f" { k += int(($2 + 1023) / 1024) } $1 != "f" { k += 1 } END { print k }')
cat >"$PKG/DEBIAN/control" <<EOF
Package: printbox
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: adduser, init-system-helpers (>= 1.54~), libc6 (>= 2.28), libgcc-s1, libstdc++6 (>= 5.2)
Recommends: systemd, ghostscript, qpdf, cups-filters
Suggests: nats-server, haproxy
Section: net
Priority: optional
Homepage: https://github.com/printbox/printbox
Description: print appliance: HTTPS job intake, encrypted spool, ordered delivery
 printbox accepts print jobs over an HTTPS API, keeps them sealed with NaCl on
 disk, and sends each job, in order, to a printer over RAW (port 9100), LPR,
 IPP or a serial port. It finds printers by mDNS and runs as a hardened
 systemd service (printbox.service) with its data in /var/lib/printbox.
 .
 This package carries its own Node.js $NODE_VERSION runtime (the official
 binary) in /opt/printbox/node.
EOF
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$PKG/DEBIAN/md5sums"
# Every file and directory gets the same time (dpkg-deb only clamps times newer than SOURCE_DATE_EPOCH;
# older ones would still carry the checkout's or a tarball's).
find "$PKG" -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"

step "dpkg-deb --build"
DEB=$OUT/printbox_${VERSION}_$ARCH.deb
# --threads-max fixed: xz's multi-threaded stream depends on the thread count, which must not come from the machine.
dpkg-deb --root-owner-group --threads-max=2 -Z"${DEB_COMPRESS:-xz}" -z"${DEB_LEVEL:-6}" --build "$PKG" "$DEB" >/dev/null
ls -l "$DEB"
sha256sum "$DEB" | sed 's/^/    sha256 /'
step "done: $DEB ($(du -h "$DEB" | cut -f1), installed $((SIZE / 1024)) MiB)"
