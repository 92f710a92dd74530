#!/bin/sh
# PID 1 of the kernel lane's guest. It mounts the kernel file systems and a pure cgroup v2 tree,
# loads the drivers the tests need, formats the scratch disk (/dev/vdb, mounted on /tmp) on the
# first boot, mounts the host's share "lane" (rw) and runs lane/step-N.sh for the next step N,
# writing its exit code to lane/rc-N. A step that leaves lane/reboot behind reboots the guest (the
# next boot runs step N+1); otherwise the guest powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
export DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1 PYTHONDONTWRITEBYTECODE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -o remount,rw /
hostname berth-vm
ip link set lo up
for m in crc32c_generic dm_mod dm_thin_pool dm_snapshot loop overlay btrfs xfs quota_v2 9p 9pnet_virtio \
    bridge veth br_netfilter nf_nat nf_conntrack iptable_nat iptable_filter xt_MASQUERADE; do
  modprobe -q "$m" || echo "berth-vm: modprobe $m failed"
done
echo "+cpuset +cpu +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /lane
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 lane /lane || { echo "BERTH-VM-FAILED: no lane share"; busybox poweroff -f; }
if ! blkid /dev/vdb >/dev/null 2>&1; then
  mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/vdb
fi
mount /dev/vdb /tmp && chmod 1777 /tmp
n=$(cat /lane/next 2>/dev/null || echo 1)
echo "BERTH-VM-UP step $n $(uname -r)"
rm -f /lane/reboot
if [ -f "/lane/step-$n.sh" ]; then
  sh "/lane/step-$n.sh" </dev/null
  echo $? >"/lane/rc-$n"
else
  echo "berth-vm: no /lane/step-$n.sh"
fi
echo $((n + 1)) >/lane/next
sync
if [ -f /lane/reboot ]; then
  umount /lane /tmp 2>/dev/null
  echo "BERTH-VM-REBOOT"
  busybox reboot -f
fi
echo "BERTH-VM-DONE"
busybox poweroff -f
