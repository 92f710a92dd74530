"""Driver registry and automatic selection (btrfs, overlay, devicemapper, vfs — with the reason)."""

from __future__ import annotations

from berth.errors import BerthError
from berth.host.probe import HostFacts
from berth.storage.btrfs import BtrfsDriver
from berth.storage.driver import Driver
from berth.storage.overlay import OverlayDriver
from berth.storage.vfs import VfsDriver

DRIVERS: dict[str, type[Driver]] = {"btrfs": BtrfsDriver, "overlay": OverlayDriver, "vfs": VfsDriver}
PLANNED = {
    "devicemapper": "the devicemapper driver is not implemented yet",
    "aufs": "the aufs driver is not implemented yet",
}
AUTO_ORDER = ("btrfs", "overlay", "devicemapper", "vfs")
ALL_NAMES = ("vfs", "overlay", "btrfs", "devicemapper", "aufs")


def driver_support(facts: HostFacts) -> dict[str, tuple[bool, str]]:
    """Every known driver with whether it works here and why."""
    out: dict[str, tuple[bool, str]] = {}
    for name in ALL_NAMES:
        if name in DRIVERS:
            out[name] = DRIVERS[name].supported(facts)
        elif name == "devicemapper":
            dm = facts.devicemapper
            reason = str(dm["reason"]) if dm["reason"] else PLANNED[name]
            out[name] = (False, reason)
        else:
            present = "aufs" in facts.filesystems
            out[name] = (False, PLANNED[name] if present else
                         "aufs is not in /proc/filesystems (this kernel lacks it; use overlay)")
    return out


def choose(facts: HostFacts) -> tuple[str, str]:
    """Auto-select a driver: (name, reason)."""
    support = driver_support(facts)
    skipped = []
    for name in AUTO_ORDER:
        ok, why = support[name]
        if ok:
            reason = why if not skipped else f"{why}; skipped {'; '.join(skipped)}"
            return name, reason
        skipped.append(f"{name}: {why}")
    raise BerthError("no storage driver works on this host: " + "; ".join(skipped))


def driver_class(name: str) -> type[Driver]:
    if name in DRIVERS:
        return DRIVERS[name]
    if name in PLANNED:
        raise BerthError(f"{PLANNED[name]}; choose one of: {', '.join(DRIVERS)}")
    raise BerthError(f"unknown storage driver {name!r}; choose one of: {', '.join(DRIVERS)}")
