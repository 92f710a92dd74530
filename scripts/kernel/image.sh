#!/usr/bin/env bash
# Build the kernel lane's VM image into OUTDIR: Debian's own kernel (vmlinuz, its modules), a
# busybox initramfs that switches into the guest root, and the guest root itself (debootstrap
# minbase plus the storage and runtime tools) as an ext4 image made without mounting anything.
# Usage: scripts/kernel/image.sh OUTDIR     (about 3 minutes; the Makefile caches the result)
set -euo pipefail
out=${1:?usage: $0 OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
packages=python3,python3-yaml,lvm2,dmsetup,thin-provisioning-tools,xfsprogs,btrfs-progs,e2fsprogs,util-linux,\
mount,kmod,procps,iproute2,iptables,runc,crun,conmon,busybox-static,attr,file,containernetworking-plugins,criu
for tool in depmod dpkg-deb mkfs.ext4 busybox; do
  command -v $tool >/dev/null || { echo "$tool is missing (apt-get install kmod e2fsprogs busybox-static)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT

# The kernel: the package linux-image-amd64 points at, unpacked, with modules.dep made here.
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $pkg ]] || { echo "apt knows no linux-image-amd64 (apt-get update?)" >&2; exit 1; }
version=${pkg#linux-image-}
(cd "$work" && apt-get download -q "$pkg" >/dev/null 2>"$work/apt.log") || { cat "$work/apt.log" >&2; exit 1; }
dpkg-deb -x "$work/$pkg"_*.deb "$work/kernel"
depmod -b "$work/kernel" "$version"
kmods=$work/kernel/lib/modules/$version

# The initramfs: static busybox, the modules a virtio ext4 root needs (in dependency order), an init.
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
: >"$ird/modules"
for m in virtio_pci virtio_blk crc32c_generic ext4; do
  modprobe -d "$work/kernel" -S "$version" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$ird/lib/modules/"
  echo "/lib/modules/$(basename "$ko")" >>"$ird/modules"
done
install -m 755 "$here/initramfs-init.sh" "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"

# The guest root: debootstrap, then the kernel's modules, the lane's PID 1 and LVM without udev.
"$here/../debian-rootfs.sh" "$work/guest.tar" bookworm "$packages"
mkdir "$work/root"
tar --numeric-owner --xattrs -C "$work/root" -xf "$work/guest.tar"
rm "$work/guest.tar"
mkdir -p "$work/root/lib/modules"
cp -a "$kmods" "$work/root/lib/modules/"
rm -rf "$work/root/lib/modules/$version/kernel/drivers/"{gpu,net/wireless,media,infiniband,staging,sound}
depmod -b "$work/root" "$version"
install -m 755 "$here/guest-init.sh" "$work/root/sbin/berth-vm-init"
# no udev in the guest: LVM and libdevmapper make the device nodes themselves
sed -i -E 's/^(\s*)#?\s*(udev_sync|udev_rules|obtain_device_list_from_udev) = 1/\1\2 = 0/' \
  "$work/root/etc/lvm/lvm.conf"
echo berth-vm >"$work/root/etc/hostname"
printf '127.0.0.1 localhost berth-vm\n' >"$work/root/etc/hosts"
mkfs.ext4 -q -F -L berth-vm -d "$work/root" "$work/root.img" 3G

mv "$work/root.img" "$out/root.img"
cp "$work/kernel/boot/vmlinuz-$version" "$out/vmlinuz"
mv "$work/initramfs.gz" "$out/initramfs.gz"
echo "$version" >"$out/version"
