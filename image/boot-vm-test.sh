#!/bin/bash
# Boots the VM image in qemu-system-x86_64 with software emulation (TCG) and waits until
# https://127.0.0.1:<forwarded port>/v1/health answers; reports how long it took. Slow: not for every CI run.
# usage: image/boot-vm-test.sh [image/out/printbox-amd64.qcow2]   env: LIMIT=900 (seconds), ACCEL=tcg|kvm
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
IMG=$(readlink -f "${1:-$HERE/out/printbox-amd64.qcow2}")
LIMIT=${LIMIT:-900}
ACCEL=${ACCEL:-tcg}
[ -f "$IMG" ] || { echo "no image $IMG: run image/build-vm.sh" >&2; exit 2; }
for tool in qemu-system-x86_64 curl; do command -v "$tool" >/dev/null || { echo "$tool missing (apt-get install qemu-system-x86 curl ovmf)" >&2; exit 2; }; done
CODE=$(ls /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd 2>/dev/null | head -1)
[ -n "$CODE" ] || { echo "OVMF missing (apt-get install ovmf)" >&2; exit 2; }
VARS=${CODE/CODE/VARS}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-boot.XXXXXX")
QEMU_PID=
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
cp "$VARS" "$WORK/vars.fd"
# A fresh random port on loopback; the guest's 31990 is forwarded to it.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

START=$(date +%s)
echo "==> booting $IMG ($ACCEL), forwarding 127.0.0.1:$PORT to the guest's 31990; serial log: $WORK/serial.log"
qemu-system-x86_64 -machine q35 -accel "$ACCEL" -m 1024 -smp 2 -nographic -no-reboot \
	-drive if=pflash,format=raw,readonly=on,file="$CODE" -drive if=pflash,format=raw,file="$WORK/vars.fd" \
	-drive file="$IMG",if=virtio,snapshot=on \
	-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:31990 -device virtio-net-pci,netdev=n0 \
	-serial file:"$WORK/serial.log" -monitor none >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!

last=""
while :; do
	now=$(($(date +%s) - START))
	if ! kill -0 "$QEMU_PID" 2>/dev/null; then
		echo "FAIL: qemu exited after ${now}s"; tail -30 "$WORK/serial.log" "$WORK/qemu.log"; exit 1
	fi
	if body=$(curl -ksf --max-time 5 "https://127.0.0.1:$PORT/v1/health"); then
		echo "PASS: /v1/health answered after ${now}s: ${body:0:200}"
		grep -aE 'https://|fingerprint|setup code' "$WORK/serial.log" | tail -6 | sed 's/^/    console: /' || true
		exit 0
	fi
	if [ "$now" -ge "$LIMIT" ]; then
		echo "FAIL: no answer from /v1/health within ${LIMIT}s"; tail -40 "$WORK/serial.log"; exit 1
	fi
	line=$(tail -c 2000 "$WORK/serial.log" 2>/dev/null | tr -d '\r' | grep -a . | tail -1 | cut -c1-100 || true)
	[ "$line" != "$last" ] && printf '[%4ss] %s\n' "$now" "$line" && last=$line
	sleep 5
done
