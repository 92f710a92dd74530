#!/bin/busybox sh
# The kernel lane's initramfs: load what a virtio ext4 root needs, mount it, switch into it. With
# berth.probe on the kernel command line it only says that it came up (the KVM probe).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q berth.probe /proc/cmdline; then
  echo BERTH-VM-PROBE-OK
  poweroff -f
fi
while read -r ko; do insmod "$ko"; done </modules
for _ in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
if ! mount -t ext4 /dev/vda /newroot; then
  echo "BERTH-VM-FAILED: cannot mount the guest root /dev/vda"
  poweroff -f
fi
umount /proc /sys /dev
exec switch_root /newroot /sbin/berth-vm-init
