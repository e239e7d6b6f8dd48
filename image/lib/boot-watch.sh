# Shared steps of the emulated boot tests (boot-vm-test.sh, boot-pi-test.sh, test-vm-kernel-upgrade.sh):
# watch a guest's serial log for the stages of a boot, wait for /v1/health over HTTPS on a forwarded port,
# power the guest off through the QEMU monitor, and check from outside that its root file system was grown.
# shellcheck shell=bash

T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
say() { printf '[%4ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "boot-test: ERROR: $*" >&2; exit 1; }

# boot_workdir NAME: $WORK, a temp dir removed on exit (KEEP=1 keeps it); QEMU ($QEMU_PID) is stopped on exit.
boot_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/printbox-$1.XXXXXX")
	QEMU_PID=
	trap boot_cleanup EXIT
}
boot_cleanup() {
	if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null; fi
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Stages of a boot, in order: "pattern in the serial log|what it means". A stage not seen is reported as such.
BOOT_STAGES=(
	'Linux version ::kernel started (firmware or boot loader done)'
	'Run /init as init process::initramfs running'
	'Welcome to .*Debian::systemd running from the root file system'
	'printbox-grow-root: .*(->|already fills)::root partition and file system grown (or already full)'
	'printbox login::login prompt on the console (boot finished)'
	'setup code::console message shown (URL, fingerprint, setup code)'
)

# watch_boot SERIAL_LOG PORT LIMIT QEMU_PID [FROM_LINE] [UNTIL]: prints each stage the first time it appears,
# returns 0 once https://127.0.0.1:PORT/v1/health answers (or, given UNTIL, once that pattern is in the log),
# 1 if QEMU exits or LIMIT seconds pass. FROM_LINE: ignore log lines before it (a second boot in the same log).
watch_boot() {
	local log=$1 port=$2 limit=$3 pid=$4 from=${5:-1} until=${6:-} seen=() i pattern what body
	local start
	start=$(elapsed)
	while :; do
		for i in "${!BOOT_STAGES[@]}"; do
			[ -n "${seen[$i]:-}" ] && continue
			pattern=${BOOT_STAGES[$i]%%::*} what=${BOOT_STAGES[$i]#*::}
			if tail -n +"$from" "$log" 2>/dev/null | tr -d '\r' | grep -aqE "$pattern"; then
				seen[$i]=1
				say "stage: $what"
			fi
		done
		if [ -n "$until" ] && tail -n +"$from" "$log" 2>/dev/null | tr -d '\r' | grep -aqE "$until"; then
			return 0
		fi
		if [ -z "$until" ] && body=$(curl -ksf --max-time 5 "https://127.0.0.1:$port/v1/health"); then
			say "stage: /v1/health answered over HTTPS: ${body:0:160}"
			HEALTH_AFTER=$(($(elapsed) - start))
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then say "FAIL: qemu exited"; tail -30 "$log"; return 1; fi
		if [ $(($(elapsed) - start)) -ge "$limit" ]; then say "FAIL: no answer from /v1/health within ${limit}s"; tail -40 "$log"; return 1; fi
		sleep 2
	done
}

# monitor MONITOR_SOCKET COMMAND...: HMP commands to QEMU's monitor.
monitor() {
	python3 - "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5); s.recv(4096)
for cmd in sys.argv[2:]:
    s.sendall(cmd.encode() + b"\n"); time.sleep(0.5); s.recv(4096)
s.close()
PY
}

# powerdown MONITOR_SOCKET QEMU_PID LIMIT [sysrq]: the power button (systemd-logind shuts down), then wait for
# QEMU to exit (-no-reboot). With "sysrq", a guest still up after LIMIT gets SysRq sync, remount read-only
# and power off from the (x86) keyboard, so its file systems are clean for the checks that follow.
powerdown() {
	local mon=$1 pid=$2 limit=$3 sysrq=${4:-} i
	monitor "$mon" system_powerdown || return 1
	for ((i = 0; i < limit; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 1
	done
	[ "$sysrq" = sysrq ] || return 1
	say "no power-off after ${limit}s: SysRq s, u, o"
	monitor "$mon" 'sendkey alt-sysrq-s' 'sendkey alt-sysrq-u' 'sendkey alt-sysrq-o' || return 1
	for ((i = 0; i < 30; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 1
	done
	return 1
}

# replay_root_journal IMAGE: for a guest that could not be powered off (QEMU's raspi3b has no power button):
# e2fsck on a copy of the root partition replays its journal, as the next boot would, so that the superblock
# read below is the one the guest last committed.
replay_root_journal() {
	local img=$1 start size rc=0
	read -r start size < <(sfdisk --json "$img" 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"], p["size"])')
	dd if="$img" of="$img.root" bs=512 skip="$start" count="$size" conv=sparse status=none
	e2fsck -fy "$img.root" >"$img.e2fsck.log" 2>&1 || rc=$?
	[ "$rc" -le 1 ] || { cat "$img.e2fsck.log"; return 1; } # 1: errors corrected (the journal replayed)
	dd if="$img.root" of="$img" bs=512 seek="$start" conv=notrunc,sparse status=none
	rm -f "$img.root"
}

# root_fs_report IMAGE: "<partition MiB> <ext4 MiB> <disk MiB> <sectors after the partition>" of partition 2 (the root) of a raw image, read
# from the partition table and the ext4 superblock; no mounts or loop devices.
root_fs_report() {
	local img=$1 start size sb blocks_lo blocks_hi log_bs
	read -r start size < <(sfdisk --json "$img" 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"], p["size"])')
	sb=$(mktemp)
	dd if="$img" of="$sb" bs=512 skip=$((start + 2)) count=2 status=none
	[ "$(od -An -j56 -N2 -tx2 --endian=little "$sb" | tr -d ' ')" = ef53 ] || { rm -f "$sb"; echo "0 0 0 0"; return; }
	blocks_lo=$(od -An -j4 -N4 -tu4 --endian=little "$sb" | tr -d ' ')
	blocks_hi=$(od -An -j336 -N4 -tu4 --endian=little "$sb" | tr -d ' ')
	log_bs=$(od -An -j24 -N4 -tu4 --endian=little "$sb" | tr -d ' ')
	rm -f "$sb"
	local disk_sectors=$(($(stat -c %s "$img") / 512))
	echo "$((size / 2048)) $((((blocks_hi << 32) + blocks_lo) * (1024 << log_bs) / 1048576)) $((disk_sectors / 2048)) $((disk_sectors - start - size))"
}

# check_grown IMAGE BEFORE_FS_MIB: the root partition reaches the end of the disk (less the backup GPT's 33
# sectors, or up to 1 MiB of alignment) and its file system fills it; prints the figures.
check_grown() {
	local img=$1 before=$2 part fs disk tail
	read -r part fs disk tail < <(root_fs_report "$img")
	say "root partition ${part} MiB ending ${tail} sectors before the end of the ${disk} MiB disk; ext4 ${fs} MiB (${before} MiB before boot)"
	[ "$fs" -gt "$before" ] && [ "$tail" -le 2048 ] && [ $((part - fs)) -le 8 ]
}
