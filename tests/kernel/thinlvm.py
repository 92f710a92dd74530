"""Helpers for the kernel lane's dm-thin tests: whether device-mapper is here, the spare disk the lane
gives the guest, and taking an LVM volume group (and the thin devices berth activated in its pool)
apart again."""

from __future__ import annotations

import os
import subprocess

from berth.host.probe import device_mapper

SPARE_DISK = os.environ.get("BERTH_VM_SPARE_DISK", "")  # set by the kernel lane: a blank virtio disk
LVM_ENV = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
HAS_DM, NO_DM = device_mapper()
REASON = f"no device-mapper: {NO_DM}"  # the skip conftest allows: the kernel lane runs these


def lvm(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, env=LVM_ENV, check=check, timeout=120)


def pool_status(vg: str) -> list[str]:
    """`dmsetup status` of the group's thin pool: start, length, thin-pool, transaction id, ..."""
    return lvm("dmsetup", "status", f"{vg.replace('-', '--')}-thinpool").stdout.split()


def remove_group(vg: str, devices: list[str]) -> None:
    """Remove berth's thin devices, the volume group and the physical volumes' labels."""
    for line in lvm("dmsetup", "ls", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("berth-"):
            lvm("dmsetup", "remove", "-f", name, check=False)
    lvm("vgremove", "-ff", "-y", vg, check=False)
    for dev in devices:
        lvm("pvremove", "-ff", "-y", dev, check=False)
        lvm("wipefs", "-a", dev, check=False)
