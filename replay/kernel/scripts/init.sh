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

echo "@@SYSPAGE-BOOTED $(uname -r)@@"
# shellcheck source=/dev/null
. /run.sh
echo "@@SYSPAGE-DONE@@"
# with qemu -no-reboot the reset ends QEMU
reboot -f
