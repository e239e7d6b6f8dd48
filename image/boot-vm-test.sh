#!/bin/bash
# Boots the VM image in qemu-system-x86_64 (TCG software emulation unless ACCEL=kvm) on a copy of its disk
# enlarged with truncate, waits until https://127.0.0.1:<forwarded port>/v1/health answers, powers it off and
# checks that the first boot grew the root partition and file system to the whole disk. Prints each stage's
# time. Slow: not for every CI run.
# usage: image/boot-vm-test.sh [image/out/printbox-amd64.raw|.qcow2]
#   env: GROW_TO=4G (size of the enlarged copy; 0 boots the image itself read-only, no growth check),
#        LIMIT=900 (seconds to wait for /v1/health), ACCEL=tcg|kvm
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/boot-watch.sh
. "$HERE/lib/boot-watch.sh"
IMG=$(readlink -f "${1:-$HERE/out/printbox-amd64.raw}")
[ -f "$IMG" ] || IMG=$(readlink -f "$HERE/out/printbox-amd64.qcow2")
GROW_TO=${GROW_TO:-4G}
LIMIT=${LIMIT:-900}
ACCEL=${ACCEL:-tcg}
[ -f "$IMG" ] || die "no image $IMG: run image/build-vm.sh"
for tool in qemu-system-x86_64 qemu-img curl python3 sfdisk; do command -v "$tool" >/dev/null || die "$tool missing (apt-get install qemu-system-x86 qemu-utils ovmf curl fdisk)"; done
CODE=$(ls /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd 2>/dev/null | head -1)
[ -n "$CODE" ] || die "OVMF missing (apt-get install ovmf)"
VARS=${CODE/CODE/VARS}

boot_workdir boot
cp "$VARS" "$WORK/vars.fd"
PORT=$(free_port)

if [ "$GROW_TO" = 0 ]; then
	DRIVE="file=$IMG,if=virtio,snapshot=on"
else
	say "copy of the disk, enlarged to $GROW_TO with truncate (a bigger virtual disk, as a user would give it)"
	qemu-img convert -O raw "$IMG" "$WORK/disk.raw"
	read -r _ BEFORE _ _ < <(root_fs_report "$WORK/disk.raw")
	truncate -s "$GROW_TO" "$WORK/disk.raw"
	DRIVE="file=$WORK/disk.raw,format=raw,if=virtio"
fi

say "booting $(basename "$IMG") ($ACCEL, OVMF), 127.0.0.1:$PORT -> guest 31990; serial log $WORK/serial.log"
qemu-system-x86_64 -machine q35 -accel "$ACCEL" -m 1024 -smp 2 -nographic -no-reboot \
	-drive if=pflash,format=raw,readonly=on,file="$CODE" -drive if=pflash,format=raw,file="$WORK/vars.fd" \
	-drive "$DRIVE" \
	-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:31990 -device virtio-net-pci,netdev=n0 \
	-serial file:"$WORK/serial.log" -monitor unix:"$WORK/monitor",server,nowait >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!

watch_boot "$WORK/serial.log" "$PORT" "$LIMIT" "$QEMU_PID" || exit 1
grep -aE 'printbox-grow-root|https://|fingerprint|setup code' "$WORK/serial.log" | tr -d '\r' | tail -8 | sed 's/^/    console: /' || true
[ "$GROW_TO" = 0 ] && { say "PASS: /v1/health answered after ${HEALTH_AFTER}s"; exit 0; }

say "powering off (ACPI power button)"
if ! powerdown "$WORK/monitor" "$QEMU_PID" 120 sysrq; then
	tail -30 "$WORK/serial.log"
	die "the guest did not power off"
fi
QEMU_PID=
say "powered off"
if check_grown "$WORK/disk.raw" "$BEFORE"; then
	say "PASS: /v1/health answered after ${HEALTH_AFTER}s; the root was grown to the $GROW_TO disk"
else
	say "FAIL: the root partition or file system was not grown to the whole disk"
	exit 1
fi
