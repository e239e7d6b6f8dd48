#!/bin/bash
# Boots the Raspberry Pi image in qemu-system-aarch64: the image's own kernel, initrd, device tree, cmdline.txt and
# root file system, on a copy of the image enlarged with truncate (as a bigger SD card), until printbox answers
# https://127.0.0.1:<forwarded port>/v1/health; then powers it off and checks that the first boot grew the root
# partition and file system to the whole card. Prints each stage's time. Slow (TCG): not for CI.
# usage: image/boot-pi-test.sh [image/out/printbox-pi-arm64.img.xz|.img]
#   env: MACHINE=raspi3b|virt (default raspi3b, then virt if raspi3b does not get to /v1/health),
#        GROW_TO=4G (a power of two: QEMU's Pi SD card needs one), LIMIT=1500 (seconds for -M virt),
#        RASPI_LIMIT=1500 (seconds for -M raspi3b), KEEP=1
#
# What this proves and what it does not:
#   - raspi3b: QEMU's BCM2837 model with the image's bcm2837-rpi-3-b.dtb, the kernel and initrd from the FAT
#     partition, cmdline.txt as written (console=ttyS1 is the Pi 3's mini UART, root=PARTUUID of the card),
#     the SD host controller, and networking through QEMU's USB (dwc2) with a USB network adapter; the kernel
#     and initrd are the files config.txt's kernel= and initramfs lines name.
#   - virt: the same kernel, initrd and root file system on a generic arm64 machine (virtio disk and network);
#     cmdline.txt with its console replaced by ttyAMA0 (virt has no mini UART).
#   - Neither runs the GPU firmware (bootcode.bin/start*.elf), so config.txt (arm_64bit, kernel=, initramfs,
#     upstream_kernel, enable_uart) is NOT exercised beyond the names of the kernel and initrd: QEMU loads them,
#     not the firmware. Pi 4/5 device trees, their
#     PCIe/Ethernet controllers and real SD-card timing are not covered; only real hardware proves those.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/boot-watch.sh
. "$HERE/lib/boot-watch.sh"
IMG=$(readlink -f "${1:-$HERE/out/printbox-pi-arm64.img.xz}")
MACHINE=${MACHINE:-}
GROW_TO=${GROW_TO:-4G}
LIMIT=${LIMIT:-1500}
[ -f "$IMG" ] || die "no image $IMG: run image/build-pi.sh"
for tool in qemu-system-aarch64 curl python3 sfdisk mcopy xz; do command -v "$tool" >/dev/null || die "$tool missing (apt-get install qemu-system-arm curl fdisk mtools xz-utils)"; done

boot_workdir pi-boot

say "stage: unpacking $(basename "$IMG")"
case "$IMG" in
*.xz) xz -dc "$IMG" | dd of="$WORK/card.img" bs=4M conv=sparse status=none ;;
*) cp --sparse=always "$IMG" "$WORK/card.img" ;;
esac
read -r _ BEFORE _ _ < <(root_fs_report "$WORK/card.img")

say "stage: reading the firmware partition (FAT) as the Pi's firmware would find it"
FAT="$WORK/card.img@@1M"
mkdir -p "$WORK/boot"
for f in config.txt cmdline.txt bcm2837-rpi-3-b.dtb; do
	mcopy -n -i "$FAT" "::$f" "$WORK/boot/$f" 2>/dev/null || die "$f is missing from the firmware partition"
done
grep -v '^#' "$WORK/boot/config.txt" | grep . | sed 's/^/    config.txt: /' || true
echo "    cmdline.txt: $(cat "$WORK/boot/cmdline.txt")"
# The kernel and initrd config.txt tells the firmware to load (the firmware itself cannot run here).
KERNEL=$(sed -nE 's/^kernel=([^ ]+).*/\1/p' "$WORK/boot/config.txt" | tail -1)
INITRD=$(sed -nE 's/^initramfs ([^ ]+).*/\1/p' "$WORK/boot/config.txt" | tail -1)
[ -n "$KERNEL" ] && [ -n "$INITRD" ] || die "config.txt names no kernel= or initramfs"
mcopy -n -i "$FAT" "::$KERNEL" "$WORK/boot/vmlinuz" 2>/dev/null || die "config.txt names $KERNEL, which is not on the firmware partition"
mcopy -n -i "$FAT" "::$INITRD" "$WORK/boot/initrd.img" 2>/dev/null || die "config.txt names $INITRD, which is not on the firmware partition"
mdir -i "$FAT" ::start4.elf >/dev/null 2>&1 && mdir -i "$FAT" ::bootcode.bin >/dev/null 2>&1 ||
	echo "    note: bootcode.bin/start4.elf not both present: check the raspi-firmware files"
truncate -s "$GROW_TO" "$WORK/card.img"
say "card enlarged to $GROW_TO (root file system ${BEFORE} MiB before the first boot)"

# boot MACHINE: starts QEMU; the serial console the cmdline names is $WORK/serial-MACHINE.log.
boot() {
	local m=$1 cmdline
	PORT=$(free_port)
	# panic=-1 with -no-reboot: a kernel that cannot go on ends QEMU at once instead of waiting out the limit.
	cmdline="$(cat "$WORK/boot/cmdline.txt") panic=-1"
	case "$m" in
	raspi3b)
		# serial0 is the PL011 (Bluetooth on a Pi 3), serial1 the mini UART that cmdline.txt's ttyS1 names.
		qemu-system-aarch64 -M raspi3b -m 1G -nographic -no-reboot \
			-kernel "$WORK/boot/vmlinuz" -initrd "$WORK/boot/initrd.img" -dtb "$WORK/boot/bcm2837-rpi-3-b.dtb" \
			-append "$cmdline" -drive file="$WORK/card.img",if=sd,format=raw \
			-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:31990 -device usb-net,netdev=n0 \
			-serial file:"$WORK/serial0-$m.log" -serial file:"$WORK/serial-$m.log" \
			-monitor unix:"$WORK/monitor-$m",server,nowait >"$WORK/qemu-$m.log" 2>&1 &
		;;
	virt)
		qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1G -nographic -no-reboot \
			-kernel "$WORK/boot/vmlinuz" -initrd "$WORK/boot/initrd.img" \
			-append "$(echo "$cmdline" | sed -E 's/console=ttyS[0-9]+[^ ]*/console=ttyAMA0,115200/')" \
			-drive file="$WORK/card.img",if=none,format=raw,id=card -device virtio-blk-pci,drive=card \
			-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:31990 -device virtio-net-pci,netdev=n0 \
			-serial file:"$WORK/serial-$m.log" \
			-monitor unix:"$WORK/monitor-$m",server,nowait >"$WORK/qemu-$m.log" 2>&1 &
		;;
	*) die "MACHINE is raspi3b or virt" ;;
	esac
	QEMU_PID=$!
	say "stage: qemu -M $m started, 127.0.0.1:$PORT -> guest 31990; console $WORK/serial-$m.log"
}

BOOTED=
for m in ${MACHINE:-raspi3b virt}; do
	boot "$m"
	if watch_boot "$WORK/serial-$m.log" "$PORT" "$([ "$m" = raspi3b ] && echo "${RASPI_LIMIT:-1500}" || echo "$LIMIT")" "$QEMU_PID"; then
		BOOTED=$m
		break
	fi
	say "-M $m did not get to /v1/health; last console lines above"
	kill "$QEMU_PID" 2>/dev/null; wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
done
[ -n "$BOOTED" ] || die "the image did not boot to /v1/health on ${MACHINE:-raspi3b or virt}"
tr -d '\r' <"$WORK/serial-$BOOTED.log" | grep -aE 'Machine model|printbox-grow-root|https://|fingerprint' | tail -8 | sed 's/^/    console: /' || true

say "powering off (power button)"
if powerdown "$WORK/monitor-$BOOTED" "$QEMU_PID" "$([ "$BOOTED" = raspi3b ] && echo 30 || echo 180)"; then
	QEMU_PID=
	say "stage: powered off"
elif [ "$BOOTED" = raspi3b ]; then
	# QEMU's Pi has no power button: stop it, and let e2fsck replay the root's journal on the copy, as the
	# next boot would.
	kill "$QEMU_PID" 2>/dev/null; wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
	replay_root_journal "$WORK/card.img" || die "e2fsck could not replay the root file system's journal"
	say "stage: stopped (no power button on -M raspi3b); e2fsck replayed the root's journal"
else
	tail -20 "$WORK/serial-$BOOTED.log"
	die "the guest did not power off"
fi
if check_grown "$WORK/card.img" "$BEFORE"; then
	say "PASS on -M $BOOTED: /v1/health answered ${HEALTH_AFTER}s after QEMU started; the root was grown to the $GROW_TO card"
else
	say "FAIL: the root partition or file system was not grown to the whole card"
	exit 1
fi
