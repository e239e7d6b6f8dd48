#!/bin/bash
# Builds the printbox VM image: Debian 13 (trixie) amd64, UEFI (systemd-boot), raw and qcow2, the .deb installed.
# usage: image/build-vm.sh [path/to/printbox_<v>_amd64.deb]   (builds the .deb when none is given; output in image/out/)
# Needs root and: mmdebstrap qemu-utils dosfstools mtools fdisk e2fsprogs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out}
SIZE_MIB=${SIZE_MIB:-2048}
# shellcheck source=lib/image-common.sh
. "$HERE/lib/image-common.sh"
[ "$(id -u)" = 0 ] || die "run as root"
need mmdebstrap qemu-img mkfs.vfat mcopy mmd sfdisk mke2fs
mkdir -p "$OUT"

DEB=${1:-}
if [ -z "$DEB" ]; then
	step "building the .deb"
	OUT=$OUT "$HERE/build-deb.sh" amd64 | sed 's/^/    /'
	DEB=$(ls -t "$OUT"/printbox_*_amd64.deb | head -1)
fi
DEB=$(readlink -f "$DEB")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-vm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ROOT_PARTUUID=6c8d4bd2-7b8a-4e39-9c1b-2f1e0e0a0b02 # the same in assemble_disk
step "Debian trixie amd64 root with mmdebstrap (kernel, systemd-boot, systemd, avahi, printbox; takes a few minutes)"
make_rootfs amd64 "$WORK/root" "$DEB" main linux-image-amd64 systemd-boot systemd-boot-efi initramfs-tools

step "UEFI boot files: systemd-boot and the kernel put on the ESP by kernel-install, as a kernel upgrade will"
# The ESP is mounted at /boot/efi in the VM; here it is a plain directory of the root, copied into the FAT
# partition below. Entries are named by the literal token "printbox" (the machine id is made at first
# boot), and Debian's hooks (/etc/kernel/postinst.d/zz-systemd-boot, /etc/initramfs/post-update.d/systemd-boot)
# run kernel-install for every kernel or initrd installed later, so upgrades land where systemd-boot reads.
R=$WORK/root
mkdir -p "$R/boot/efi" "$R/etc/kernel"
echo printbox >"$R/etc/kernel/entry-token"
echo "root=PARTUUID=$ROOT_PARTUUID rw console=tty0 console=ttyS0,115200" >"$R/etc/kernel/cmdline"
printf 'PARTUUID=%s / ext4 errors=remount-ro 0 1\nLABEL=BOOT /boot/efi vfat umask=0077,nofail 0 2\n' "$ROOT_PARTUUID" >"$R/etc/fstab"
in_chroot() {
	# /proc and /sys for bootctl; /boot/efi bound onto itself so that it is a mount point,
	# SYSTEMD_RELAX_ESP_CHECKS because it is not a FAT partition here, and BOOT_MNT because inside a chroot
	# `stat -c %m` cannot see that mount (kernel-install's loader entry would name /boot/efi/printbox/...).
	unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && mount -t sysfs sys "$0/sys" &&
		mount --rbind /dev "$0/dev" && mount --bind "$0/boot/efi" "$0/boot/efi" && exec chroot "$0" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_RELAX_ESP_CHECKS=1 BOOT_MNT=/boot/efi "$@"' "$R" "$@"
}
in_chroot bootctl install --esp-path=/boot/efi --no-variables --entry-token=literal:printbox --make-entry-directory=yes ||
	die "bootctl install failed"
for KVER in $(ls "$R/lib/modules" | sort -V); do
	in_chroot kernel-install --esp-path=/boot/efi add "$KVER" "/boot/vmlinuz-$KVER" "/boot/initrd.img-$KVER" || die "kernel-install $KVER failed"
done
# No menu; systemd-boot boots the entry with the highest kernel version, so an upgrade is picked up.
printf 'timeout 0\n' >"$R/boot/efi/loader/loader.conf"
# bootctl wrote a random seed: it would be the same on every box made from this image. Each makes its own.
rm -f "$R/boot/efi/loader/random-seed"
ls "$R"/boot/efi/loader/entries/printbox-*.conf >/dev/null 2>&1 || die "kernel-install wrote no loader entry"
# Every file an entry names must be on the ESP, at that path from the ESP's root (how systemd-boot reads it).
for f in $(awk '$1 == "linux" || $1 == "initrd" { print $2 }' "$R"/boot/efi/loader/entries/*.conf); do
	[ -f "$R/boot/efi$f" ] || die "a loader entry names $f, which is not on the ESP"
done
sed 's/^/    /' "$R"/boot/efi/loader/entries/printbox-*.conf
ESP=$WORK/esp
mv "$R/boot/efi" "$ESP" && mkdir -p "$R/boot/efi"

step "disk image (${SIZE_MIB} MiB, GPT)"
assemble_disk "$WORK/printbox-amd64.raw" "$SIZE_MIB" 256 "$ESP" "$WORK/root" gpt
mv "$WORK/printbox-amd64.raw" "$OUT/printbox-amd64.raw"
step "qcow2"
qemu-img convert -f raw -O qcow2 -c "$OUT/printbox-amd64.raw" "$OUT/printbox-amd64.qcow2"
ls -lh "$OUT/printbox-amd64.raw" "$OUT/printbox-amd64.qcow2"
step "done: boot it with image/boot-vm-test.sh, or: qemu-system-x86_64 -m 1024 -bios /usr/share/ovmf/OVMF.fd -drive file=$OUT/printbox-amd64.qcow2,if=virtio -nic user,hostfwd=tcp::31990-:31990"
