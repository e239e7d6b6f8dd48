#!/usr/bin/env bash
# Runs the whole test suite (what `npm test` and CI run). Node 20's test runner does not expand globs: the shell does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PRINTBOX_MDNS=0 # no multicast on real interfaces from tests; namespace tests enable it inside their namespaces
# Import circles and imports against the job's path fail first (bin/check-imports.mjs).
node bin/check-imports.mjs
# Types first (runtime, drivers, tests and the setup page, which shares the runtime's job and driver types).
npx --no-install tsc --noEmit -p .
npx --no-install tsc --noEmit -p web
# Spawned servers run the bundle, as `npm start` and the .deb do (bin/printbox.mjs falls back to the sources if it is stale).
node bin/build.mjs
shopt -s nullglob
files=()
cluster=()
for f in test/*.test.ts; do
  case "$f" in
    test/cluster*|test/spool-jetstream*) cluster+=("$f") ;;
    *) files+=("$f") ;;
  esac
done
status=0
tmp="${TMPDIR:-/tmp}"
tmp_mode="$(stat -c %a "$tmp")"
node --import tsx --test --test-concurrency="${PRINTBOX_TEST_CONCURRENCY:-2}" --test-timeout=600000 "${files[@]}" || status=$?
# Each cluster test runs three nats-servers, up to three appliances and HAProxy: on a 2-core machine they run
# one at a time after the rest, so that another heavy test does not starve their lease renewals and quorum
# checks (they failed that way beside the other tests under load, and pass alone).
node --import tsx --test --test-concurrency=1 --test-timeout=600000 "${cluster[@]}" || status=$?
# The suite must leave the machine as it found it: a test peer once set /tmp to 0755 (apt-key then failed).
if [ "$(stat -c %a "$tmp")" != "$tmp_mode" ]; then
  echo "the tests changed $tmp's mode from $tmp_mode to $(stat -c %a "$tmp")" >&2
  status=1
fi
exit $status
