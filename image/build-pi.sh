#!/bin/bash
# Builds the printbox Raspberry Pi image: Debian 13 (trixie) arm64 with Debian's raspi-firmware and
# linux-image-arm64, the .deb installed; arm64 programs run on this machine through qemu-user-static.
# usage: image/build-pi.sh [path/to/printbox_<v>_arm64.deb]   (output: image/out/printbox-pi-arm64.img.xz)
# Needs root and: mmdebstrap qemu-user-static binfmt-support dosfstools mtools fdisk e2fsprogs xz-utils.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out}
SIZE_MIB=${SIZE_MIB:-2560}
# shellcheck source=lib/image-common.sh
. "$HERE/lib/image-common.sh"
[ "$(id -u)" = 0 ] || die "run as root"
need mmdebstrap mkfs.vfat mcopy mmd sfdisk mke2fs xz update-binfmts
mkdir -p "$OUT"
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 || die "qemu-user-static's aarch64 handler is not available"

DEB=${1:-}
if [ -z "$DEB" ]; then
	step "building the .deb (arm64)"
	OUT=$OUT "$HERE/build-deb.sh" arm64 | sed 's/^/    /'
	DEB=$(ls -t "$OUT"/printbox_*_arm64.deb | head -1)
fi
DEB=$(readlink -f "$DEB")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-pi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step "Debian trixie arm64 root with mmdebstrap under qemu-user (slow: 10-30 minutes)"
# raspi-firmware is in non-free-firmware; in a chroot its kernel hook fills /boot/firmware without a mount.
make_rootfs arm64 "$WORK/root" "$DEB" main,non-free-firmware linux-image-arm64 raspi-firmware firmware-brcm80211 initramfs-tools

step "boot partition contents (firmware, device trees, kernel, initrd, config.txt, cmdline.txt)"
FW=$WORK/firmware
mkdir -p "$FW"
KVER=$(ls "$WORK/root/lib/modules" | sort -V | tail -1)
# Debian's hook output when it ran; otherwise the same files put together here.
cp -a "$WORK/root/boot/firmware/." "$FW/" 2>/dev/null || true
cp -an "$WORK/root/usr/lib/raspi-firmware/." "$FW/"
cp -n "$WORK/root/usr/lib/linux-image-$KVER/broadcom/"bcm27*rpi*.dtb "$FW/" 2>/dev/null || true
cp "$WORK/root/boot/vmlinuz-$KVER" "$FW/vmlinuz"
cp "$WORK/root/boot/initrd.img-$KVER" "$FW/initrd.img"
[ -f "$FW/config.txt" ] || cat >"$FW/config.txt" <<CFG
# printbox on Raspberry Pi 3/4/5 (Debian's raspi-firmware and linux-image-arm64)
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img followkernel
disable_overscan=1
CFG
ROOT_PARTUUID=7072626f-02 # set again by assemble_disk
echo "console=tty0 console=ttyS1,115200 root=PARTUUID=$ROOT_PARTUUID rw fsck.repair=yes rootwait" >"$FW/cmdline.txt"
printf 'PARTUUID=%s / ext4 errors=remount-ro 0 1\nLABEL=BOOT /boot/firmware vfat umask=0077,nofail 0 2\n' "$ROOT_PARTUUID" >"$WORK/root/etc/fstab"
rm -rf "$WORK/root/boot/firmware" && mkdir -p "$WORK/root/boot/firmware"

step "disk image (${SIZE_MIB} MiB, MBR)"
assemble_disk "$WORK/printbox-pi-arm64.img" "$SIZE_MIB" 512 "$FW" "$WORK/root" dos
step "xz"
xz -T0 -6 -c "$WORK/printbox-pi-arm64.img" >"$OUT/printbox-pi-arm64.img.xz"
ls -lh "$OUT/printbox-pi-arm64.img.xz"
step "done: flash with  xzcat $OUT/printbox-pi-arm64.img.xz | sudo dd of=/dev/sdX bs=4M conv=fsync status=progress"
