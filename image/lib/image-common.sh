# Shared steps of build-vm.sh and build-pi.sh: a Debian root with printbox, then a partitioned disk image
# assembled from files (mke2fs -d, mtools), so no loop devices or mounts are needed.
# shellcheck shell=bash

START=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' $(($(date +%s) - START)) "$*"; }
die() { echo "image: ERROR: $*" >&2; exit 1; }

need() {
	for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is missing; run: apt-get install mmdebstrap qemu-utils dosfstools mtools fdisk e2fsprogs qemu-user-static binfmt-support"; done
}

# make_rootfs ARCH DIR DEB COMPONENTS PACKAGES...: Debian trixie with the .deb installed and the appliance set up.
make_rootfs() {
	local arch=$1 dir=$2 deb=$3 components=$4
	shift 4
	local pkgs
	pkgs=$(
		IFS=,
		echo "$*"
	)
	# The hooks run in order after the packages are installed; $1 is the root inside mmdebstrap.
	mmdebstrap --arch="$arch" --variant=important --components="$components" \
		--include="$pkgs,adduser,init-system-helpers,libstdc++6,libgcc-s1,avahi-daemon,cloud-guest-utils,fdisk,e2fsprogs,systemd-sysv,dbus,udev,kmod,iproute2,ca-certificates" \
		--customize-hook="copy-in '$deb' /tmp" \
		--customize-hook="upload '$HERE/lib/grow-root' /usr/local/sbin/printbox-grow-root" \
		--customize-hook='chmod 0755 "$1/usr/local/sbin/printbox-grow-root"' \
		--customize-hook="upload '$HERE/systemd/printbox-grow-root.service' /etc/systemd/system/printbox-grow-root.service" \
		--customize-hook="chroot \"\$1\" dpkg -i /tmp/$(basename "$deb")" \
		--customize-hook='rm -f "$1"/tmp/*.deb' \
		--customize-hook='echo printbox >"$1/etc/hostname"' \
		--customize-hook='printf "127.0.0.1\tlocalhost\n127.0.1.1\tprintbox\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$1/etc/hosts"' \
		--customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" >"$1/etc/systemd/network/20-wired.network"' \
		--customize-hook='chroot "$1" systemctl enable printbox-grow-root.service systemd-networkd.service printbox.service printbox-console.service avahi-daemon.service' \
		--customize-hook='chroot "$1" systemctl disable ssh.service 2>/dev/null || true' \
		--customize-hook='echo uninitialized >"$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
		trixie "$dir" "${MIRROR:-http://deb.debian.org/debian}" || die "mmdebstrap failed"
	# No keys, certificate or setup code may be baked in: every box makes its own at first boot.
	[ -z "$(ls -A "$dir/var/lib/printbox" 2>/dev/null)" ] || die "the image's /var/lib/printbox is not empty"
}

# assemble_disk OUT.raw SIZE_MIB BOOT_MIB BOOT_DIR ROOT_DIR PART_TYPE: partition 1 FAT (boot/ESP), partition 2 ext4 root.
# Sets ROOT_PARTUUID (the disk id is fixed from SOURCE_DATE_EPOCH so builds name partitions alike).
assemble_disk() {
	local out=$1 size=$2 boot_mib=$3 bootdir=$4 rootdir=$5 table=$6
	local tmp
	tmp=$(dirname "$out")
	rm -f "$out"
	truncate -s "${size}M" "$out"
	if [ "$table" = gpt ]; then
		ROOT_PARTUUID=6c8d4bd2-7b8a-4e39-9c1b-2f1e0e0a0b02
		sfdisk --quiet "$out" <<EOF
label: gpt
first-lba: 2048
start=2048, size=$((boot_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP
type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_PARTUUID, name=root
EOF
	else
		# Raspberry Pi firmware reads MBR only; PARTUUID is <disk id>-02.
		sfdisk --quiet "$out" <<EOF
label: dos
label-id: 0x7072626f
start=2048, size=$((boot_mib * 2048)), type=c
type=83
EOF
		ROOT_PARTUUID=7072626f-02
	fi
	local root_start root_sectors
	read -r root_start root_sectors < <(sfdisk --dump "$out" | awk -F'[=,]' '/ : start=/ {s=$2; n=$4} END {gsub(/ /,"",s); gsub(/ /,"",n); print s, n}')
	step "boot partition (FAT, ${boot_mib} MiB) from $(du -sh "$bootdir" | cut -f1) of files"
	rm -f "$tmp/boot.img"
	mkfs.vfat -C -n BOOT "$tmp/boot.img" $((boot_mib * 1024)) >/dev/null
	(cd "$bootdir" && find . -mindepth 1 -type d | sed 's|^\./||' | while read -r d; do mmd -i "$tmp/boot.img" "::$d"; done)
	(cd "$bootdir" && find . -type f | sed 's|^\./||' | while read -r f; do mcopy -i "$tmp/boot.img" "$f" "::$f"; done)
	dd if="$tmp/boot.img" of="$out" bs=1M seek=1 conv=notrunc status=none
	step "root partition (ext4, $((root_sectors / 2048)) MiB) from $(du -sh "$rootdir" | cut -f1) of files"
	rm -f "$tmp/root.img"
	mke2fs -q -t ext4 -L root -d "$rootdir" -E root_owner=0:0 "$tmp/root.img" $((root_sectors / 2))k || die "mke2fs -d failed"
	dd if="$tmp/root.img" of="$out" bs=512 seek="$root_start" conv=notrunc,sparse status=none
	rm -f "$tmp/boot.img" "$tmp/root.img"
}
