#!/bin/busybox sh
# /init of the syspage test VM (replay/kernel/harness.py builds the initramfs).
# Mounts the pseudo file systems, runs /run.sh (the harness's command script),
# and powers off. Results travel back on the serial console between markers:
#   @@SYSPAGE-BEGIN <name>@@ ... @@SYSPAGE-END <name> <exit status>@@
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
hostname syspage-vm

# section NAME COMMAND...: run COMMAND, its output framed by markers
section() {
	name=$1
	shift
	echo "@@SYSPAGE-BEGIN $name@@"
	"$@"
	rc=$?
	echo "@@SYSPAGE-END $name $rc@@"
}

# With tsc_early_khz (harness.clock_args) the guest starts on tsc-early and moves to tsc
# about a second after boot; wait for it (at most 5 s) so no timing spans the switch.
cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
i=0
while [ "$(cat $cs)" = tsc-early ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done

echo "@@SYSPAGE-BOOTED $(uname -r)@@"
# shellcheck source=/dev/null
. /run.sh
echo "@@SYSPAGE-DONE@@"
# with qemu -no-reboot the reset ends QEMU
reboot -f
