#!/bin/bash
# Proves the .deb is bit-reproducible: builds it twice from the same commit, in two different source trees
# (other paths, file times, umask, time zone, locale, build time) and compares the sha256 of the results.
# usage: image/check-reproducible.sh [amd64|arm64] [git ref, default HEAD]
#   DEB_COMPRESS=xz (the released format, default) or gzip (seconds instead of a minute per build).
# On a difference it prints diffoscope's report when diffoscope is installed, else the differing listings.
set -euo pipefail

ARCH=${1:-amd64}
REF=${2:-HEAD}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
START=$(date +%s)
step() { printf '\n==> [%3ss] %s\n' $(($(date +%s) - START)) "$*"; }
die() { echo "check-reproducible: ERROR: $*" >&2; exit 1; }

COMMIT=$(git -C "$ROOT" rev-parse --verify "$REF^{commit}") || die "no such commit: $REF"
[ -d "$ROOT/node_modules/esbuild" ] || die "run npm ci first (the bundle is built with the checkout's esbuild)"
[ -z "$(git -C "$ROOT" status --porcelain -- image bin runtime drivers package.json package-lock.json)" ] ||
	echo "    note: uncommitted changes are not built; this checks $REF as committed"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-repro.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# build NAME TREE-TIMES UMASK TZ LANG: one build in its own export of the commit.
build() {
	local name=$1 times=$2 mask=$3 tz=$4 lang=$5 src
	src=$WORK/$name/src-$RANDOM-$name
	mkdir -p "$src" "$WORK/$name/out" "$WORK/$name/tmp"
	# "commit": files carry the commit's time (git archive); "now": tar -m gives them the extraction time.
	if [ "$times" = now ]; then git -C "$ROOT" archive "$COMMIT" | tar -x -m -C "$src"; else git -C "$ROOT" archive "$COMMIT" | tar -x -C "$src"; fi
	ln -s "$ROOT/node_modules" "$src/node_modules" # esbuild for the bundle; the package's own modules come from npm ci
	step "build $name: $src, file times $times, umask $mask, TZ=$tz, LANG=$lang" >&2
	(umask "$mask" && cd "$WORK/$name" && env TZ="$tz" LANG="$lang" LC_ALL="$lang" TMPDIR="$WORK/$name/tmp" \
		SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct "$COMMIT")" OUT="$WORK/$name/out" \
		timeout 900 "$src/image/build-deb.sh" "$ARCH") >"$WORK/$name.log" 2>&1 || { tail -30 "$WORK/$name.log"; die "build $name failed"; }
	ls "$WORK/$name/out/"*.deb
}

step "printbox .deb for $ARCH from $(git -C "$ROOT" log -1 --format='%h (%cd)' --date=iso "$COMMIT"), compression ${DEB_COMPRESS:-xz}"
A=$(build a commit 022 UTC C.UTF-8)
sleep 1 # a different build second, so that any leaked build time shows
B=$(build b now 002 Pacific/Chatham POSIX)
SUM_A=$(sha256sum <"$A" | cut -d' ' -f1)
SUM_B=$(sha256sum <"$B" | cut -d' ' -f1)
echo "    a: $SUM_A  $(basename "$A")  $(stat -c %s "$A") bytes"
echo "    b: $SUM_B  $(basename "$B")  $(stat -c %s "$B") bytes"
if [ "$SUM_A" = "$SUM_B" ]; then
	step "PASS: reproducible ($SUM_A) in $(($(date +%s) - START)) s"
	exit 0
fi
step "FAIL: the two builds differ"
if command -v diffoscope >/dev/null; then
	timeout 600 diffoscope --text - "$A" "$B" | head -200 || true
else
	diff <(dpkg-deb -I "$A"; dpkg-deb -c "$A") <(dpkg-deb -I "$B"; dpkg-deb -c "$B") | head -100 || true
fi
exit 1
