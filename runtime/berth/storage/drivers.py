"""The storage drivers by name, and automatic selection (btrfs, overlay, devicemapper, vfs — with the reason).

Driver modules are imported only when a driver is asked for, so a command that uses one driver
does not pay for loading the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from berth.errors import BerthError

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage.driver import Driver

DRIVERS = {"btrfs": ("berth.storage.btrfs", "BtrfsDriver"), "overlay": ("berth.storage.overlay", "OverlayDriver"),
           "vfs": ("berth.storage.vfs", "VfsDriver"),
           "devicemapper": ("berth.storage.devicemapper", "DeviceMapperDriver"),
           "aufs": ("berth.storage.aufs", "AufsDriver")}
AUTO_ORDER = ("btrfs", "overlay", "devicemapper", "vfs")
ALL_NAMES = ("vfs", "overlay", "btrfs", "devicemapper", "aufs")


def _support(name: str, facts: HostFacts) -> tuple[bool, str]:
    return driver_class(name).supported(facts)


def driver_support(facts: HostFacts) -> dict[str, tuple[bool, str]]:
    """Every known driver with whether it works here and why."""
    return {name: _support(name, facts) for name in ALL_NAMES}


def choose(facts: HostFacts) -> tuple[str, str]:
    """Auto-select a driver: (name, reason)."""
    skipped = []
    for name in AUTO_ORDER:
        ok, why = _support(name, facts)
        if ok:
            reason = why if not skipped else f"{why}; skipped {'; '.join(skipped)}"
            return name, reason
        skipped.append(f"{name}: {why}")
    raise BerthError("no storage driver works on this host: " + "; ".join(skipped))


def driver_class(name: str) -> type[Driver]:
    if name in DRIVERS:
        module, cls = DRIVERS[name]
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    raise BerthError(f"unknown storage driver {name!r}; choose one of: {', '.join(DRIVERS)}")
