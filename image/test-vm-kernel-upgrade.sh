#!/bin/bash
# Proves a kernel upgrade inside the VM reaches what its boot loader reads: boots a copy of the VM image, and in it
# `apt-get install -t trixie-backports linux-image-amd64` (a second, newer kernel version) runs as on a real box;
# Debian's hooks (zz-systemd-boot → kernel-install) must put it on the EFI system partition with a loader entry;
# the guest reboots, and systemd-boot must start the new kernel, which must bring printbox up again.
# usage: image/test-vm-kernel-upgrade.sh [image/out/printbox-amd64.raw|.qcow2]
#   env: KERNEL_SUITE=trixie-backports, LIMIT=3600 (seconds for each boot and for the upgrade), ACCEL=tcg|kvm,
#        SMP=1 (guest CPUs), KEEP=1
# Needs network access from the guest (QEMU user networking) to deb.debian.org. Slow under TCG: 30-60 min on a busy 2-core machine.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/boot-watch.sh
. "$HERE/lib/boot-watch.sh"
IMG=$(readlink -f "${1:-$HERE/out/printbox-amd64.raw}")
[ -f "$IMG" ] || IMG=$(readlink -f "$HERE/out/printbox-amd64.qcow2")
KERNEL_SUITE=${KERNEL_SUITE:-trixie-backports}
LIMIT=${LIMIT:-3600}
ACCEL=${ACCEL:-tcg}
[ -f "$IMG" ] || die "no image $IMG: run image/build-vm.sh"
for tool in qemu-system-x86_64 qemu-img curl python3 sfdisk debugfs; do command -v "$tool" >/dev/null || die "$tool missing"; done
CODE=$(ls /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd 2>/dev/null | head -1)
[ -n "$CODE" ] || die "OVMF missing (apt-get install ovmf)"

boot_workdir kernel
cp "${CODE/CODE/VARS}" "$WORK/vars.fd"

say "copy of the disk; adding a test-only unit that upgrades the kernel from $KERNEL_SUITE, then reboots"
qemu-img convert -O raw "$IMG" "$WORK/disk.raw"
truncate -s 4G "$WORK/disk.raw" # room for a second kernel's modules and apt's downloads (the first boot grows the root)
cat >"$WORK/upgrade.service" <<EOF
# Test only (test-vm-kernel-upgrade.sh): a kernel upgrade as an administrator would run it, then a reboot.
[Unit]
Description=test: upgrade the kernel from $KERNEL_SUITE, then reboot into it
After=network-online.target printbox.service printbox-console.service
Wants=network-online.target
RequiresMountsFor=/boot/efi
ConditionPathExists=!/var/lib/kernel-upgrade-test.done

[Service]
Type=oneshot
Environment=KERNEL_SUITE=$KERNEL_SUITE
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
ExecStart=/usr/local/sbin/kernel-upgrade-test
EOF
cat >"$WORK/upgrade.sh" <<'EOF'
#!/bin/sh
# Test only: what an administrator does to upgrade the kernel; the output goes to the console for the host.
set -u
touch /var/lib/kernel-upgrade-test.done
say() { echo "kernel-upgrade-test: $*"; }
say "running $(uname -r); installing linux-image-amd64 from $KERNEL_SUITE"
if ! { apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends -t "$KERNEL_SUITE" install linux-image-amd64; } >/var/log/kernel-upgrade-test.log 2>&1; then
	tail -20 /var/log/kernel-upgrade-test.log
	say "FAILED"
	exit 1
fi
grep -aE 'systemd-boot|kernel-install|initramfs' /var/log/kernel-upgrade-test.log | tail -8 | sed 's/^/kernel-upgrade-test: apt: /'
say "installed $(ls /lib/modules | sort -V | tail -1)"
for f in /boot/efi/loader/entries/*.conf; do say "ESP entry $(basename "$f"): $(grep -E '^(version|linux) ' "$f" | tr -s ' ' | tr '\n' ' ')"; done
say "rebooting"
systemctl reboot
EOF
chmod 0755 "$WORK/upgrade.sh"
echo "deb http://deb.debian.org/debian $KERNEL_SUITE main" >"$WORK/backports.list"
# Put them into the root file system with debugfs: no mounts or loop devices.
read -r START SIZE < <(sfdisk --json "$WORK/disk.raw" 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"], p["size"])')
dd if="$WORK/disk.raw" of="$WORK/root.img" bs=512 skip="$START" count="$SIZE" conv=sparse status=none
debugfs -w -f - "$WORK/root.img" >"$WORK/debugfs.log" 2>&1 <<EOF
cd /etc/apt/sources.list.d
write $WORK/backports.list kernel-upgrade-test.list
cd /usr/local/sbin
write $WORK/upgrade.sh kernel-upgrade-test
cd /etc/systemd/system
write $WORK/upgrade.service kernel-upgrade-test.service
cd /etc/systemd/system/multi-user.target.wants
symlink kernel-upgrade-test.service /etc/systemd/system/kernel-upgrade-test.service
EOF
debugfs -R "stat /etc/systemd/system/multi-user.target.wants/kernel-upgrade-test.service" "$WORK/root.img" 2>/dev/null | grep -q 'Type: symlink' ||
	{ cat "$WORK/debugfs.log"; die "could not add the test unit"; }
dd if="$WORK/root.img" of="$WORK/disk.raw" bs=512 seek="$START" conv=notrunc,sparse status=none
rm "$WORK/root.img"

PORT=$(free_port)
say "booting ($ACCEL, OVMF), 127.0.0.1:$PORT -> guest 31990; serial log $WORK/serial.log"
# No -no-reboot: the guest's reboot must go through the firmware and systemd-boot again. One CPU: under
# multi-threaded TCG (QEMU 7.2) the 7.3 kernel's boot-time code patching trapped (Oops: int3 in
# sched_clock_cpu) with -smp 2; that is the emulator, not the upgrade.
qemu-system-x86_64 -machine q35 -accel "$ACCEL" -m 1536 -smp "${SMP:-1}" -nographic \
	-drive if=pflash,format=raw,readonly=on,file="$CODE" -drive if=pflash,format=raw,file="$WORK/vars.fd" \
	-drive file="$WORK/disk.raw",format=raw,if=virtio \
	-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:31990 -device virtio-net-pci,netdev=n0 \
	-serial file:"$WORK/serial.log" -monitor unix:"$WORK/monitor",server,nowait >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!

# The first boot's /v1/health is boot-vm-test.sh's job: here the upgrade starts as soon as printbox is up,
# and under TCG the guest is too busy with apt to answer HTTPS in time.
say "first boot, on the image's kernel"
watch_boot "$WORK/serial.log" "$PORT" "$LIMIT" "$QEMU_PID" 1 'kernel-upgrade-test: running' || exit 1
OLD=$(tr -d '\r' <"$WORK/serial.log" | grep -aoE 'Linux version [^ ]+' | head -1 | cut -d' ' -f3)
say "running kernel $OLD; waiting for the kernel upgrade inside the guest (apt-get, initramfs, kernel-install)"
while ! tr -d '\r' <"$WORK/serial.log" | grep -aq 'kernel-upgrade-test: rebooting'; do
	kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited during the upgrade"
	if tr -d '\r' <"$WORK/serial.log" | grep -aq 'kernel-upgrade-test: FAILED'; then
		tr -d '\r' <"$WORK/serial.log" | grep -a 'kernel-upgrade-test' | tail -30; die "the kernel upgrade failed in the guest"
	fi
	[ "$(elapsed)" -lt "$LIMIT" ] || { tail -30 "$WORK/serial.log"; die "no reboot within ${LIMIT}s"; }
	sleep 5
done
tr -d '\r' <"$WORK/serial.log" | grep -a 'kernel-upgrade-test: ' | sed 's/^.*kernel-upgrade-test: /    guest: /'
NEW=$(tr -d '\r' <"$WORK/serial.log" | grep -aoE 'kernel-upgrade-test: installed [^ ]+' | tail -1 | cut -d' ' -f3)
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] || die "no second kernel version was installed (running $OLD, newest ${NEW:-none})"
FROM=$(tr -d '\r' <"$WORK/serial.log" | grep -an 'kernel-upgrade-test: rebooting' | tail -1 | cut -d: -f1)

say "second boot: systemd-boot must pick $NEW"
watch_boot "$WORK/serial.log" "$PORT" "$LIMIT" "$QEMU_PID" "$((FROM + 1))" || exit 1
BOOTED=$(tail -n +"$((FROM + 1))" "$WORK/serial.log" | tr -d '\r' | grep -aoE 'Linux version [^ ]+' | head -1 | cut -d' ' -f3)
if [ "$BOOTED" = "$NEW" ]; then
	say "PASS: upgraded $OLD -> $NEW inside the VM; after the reboot systemd-boot started $NEW and /v1/health answered"
else
	say "FAIL: after the upgrade the guest booted ${BOOTED:-no kernel}, not $NEW"
	exit 1
fi
