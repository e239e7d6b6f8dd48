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

step "Debian trixie amd64 root with mmdebstrap (kernel, systemd, avahi, printbox; takes a few minutes)"
make_rootfs amd64 "$WORK/root" "$DEB" main linux-image-amd64 systemd-boot-efi initramfs-tools

step "UEFI boot files (systemd-boot, kernel and initrd on the ESP)"
ESP=$WORK/esp
mkdir -p "$ESP/EFI/BOOT" "$ESP/loader/entries"
cp "$WORK/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$ESP/EFI/BOOT/BOOTX64.EFI"
KVER=$(ls "$WORK/root/lib/modules" | sort -V | tail -1)
cp "$WORK/root/boot/vmlinuz-$KVER" "$ESP/vmlinuz"
cp "$WORK/root/boot/initrd.img-$KVER" "$ESP/initrd.img"
printf 'default printbox.conf\ntimeout 0\n' >"$ESP/loader/loader.conf"
ROOT_PARTUUID=6c8d4bd2-7b8a-4e39-9c1b-2f1e0e0a0b02 # set again by assemble_disk
printf 'title printbox (Debian %s)\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=%s rw console=tty0 console=ttyS0,115200\n' \
	"$KVER" "$ROOT_PARTUUID" >"$ESP/loader/entries/printbox.conf"
printf 'PARTUUID=%s / ext4 errors=remount-ro 0 1\nLABEL=BOOT /boot/efi vfat umask=0077,nofail 0 2\n' "$ROOT_PARTUUID" >"$WORK/root/etc/fstab"
mkdir -p "$WORK/root/boot/efi"

step "disk image (${SIZE_MIB} MiB, GPT)"
assemble_disk "$WORK/printbox-amd64.raw" "$SIZE_MIB" 256 "$ESP" "$WORK/root" gpt
mv "$WORK/printbox-amd64.raw" "$OUT/printbox-amd64.raw"
step "qcow2"
qemu-img convert -f raw -O qcow2 -c "$OUT/printbox-amd64.raw" "$OUT/printbox-amd64.qcow2"
ls -lh "$OUT/printbox-amd64.raw" "$OUT/printbox-amd64.qcow2"
step "done: boot it with image/boot-vm-test.sh, or: qemu-system-x86_64 -m 1024 -bios /usr/share/ovmf/OVMF.fd -drive file=$OUT/printbox-amd64.qcow2,if=virtio -nic user,hostfwd=tcp::31990-:31990"
