"""`berth host prepare`: make a host's storage ready for a driver, safely and idempotently.

Each step looks at what is there first and only does what is missing, so a second run changes
nothing and says so; with check=True nothing is changed and the plan is returned. A device that
already holds a file system or an LVM signature is never wiped unless force is given.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from berth.errors import BerthError, InvalidInput
from berth.host.probe import HostFacts, device_mapper, device_signature, fs_type
from berth.proc import run
from berth.storage import drivers, mounts
from berth.units import parse_size


class Step:
    def __init__(self, what: str, done: bool, warning: bool = False) -> None:
        self.what = what
        self.done = done  # True: already so, nothing to do
        self.warning = warning  # something the operator must read; changes nothing

    def __str__(self) -> str:
        return f"{'warning' if self.warning else 'ok' if self.done else 'change'}: {self.what}"


def _loop_for(path: str) -> str | None:
    out = run(["losetup", "-j", path], check=False).stdout.decode()
    for line in out.splitlines():
        return line.split(":", 1)[0]
    return None


def _write_config(path: str, updates: dict[str, Any], check: bool, steps: list[Step]) -> None:
    current: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            current = yaml.safe_load(f) or {}
    wanted = dict(current, **updates)
    if wanted == current:
        steps.append(Step(f"{path} already says {updates}", True))
        return
    steps.append(Step(f"write {updates} to {path}", False))
    if not check:
        from berth.storage.fsutil import atomic_write

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        atomic_write(path, yaml.safe_dump(wanted, sort_keys=True).encode())


def _fstab(fstab: str, line: str, target: str, check: bool, steps: list[Step]) -> None:
    existing = ""
    if os.path.exists(fstab):
        with open(fstab, encoding="utf-8") as f:
            existing = f.read()
    for ln in existing.splitlines():
        parts = ln.split()
        if len(parts) >= 2 and not ln.lstrip().startswith("#") and parts[1] == target:
            steps.append(Step(f"{fstab} mounts {target} at boot", True))
            return
    steps.append(Step(f"add '{line}' to {fstab}", False))
    if not check:
        with open(fstab, "a", encoding="utf-8") as f:
            if existing and not existing.endswith("\n"):
                f.write("\n")
            f.write(line + "\n")


def prepare(driver: str, root: str, config_path: str, devices: list[str] | None = None, loopback: str | None = None,
            mount: str | None = None, check: bool = False, force: bool = False, fstab: str = "/etc/fstab",
            pool: str | None = None, opts: dict[str, str] | None = None) -> list[Step]:
    """pool (devicemapper only): "thin" for a dm-thin pool made with LVM, "reflink" for the reflink
    stand-in; default thin where the kernel has device-mapper, reflink otherwise."""
    steps: list[Step] = []
    target = os.path.abspath(mount or root)
    updates: dict[str, Any] = {"driver": driver, "root": target}
    if pool and driver != "devicemapper":
        raise InvalidInput("--pool is for the devicemapper driver")
    if driver == "btrfs":
        _prepare_fs("btrfs", ["mkfs.btrfs", "-f"], target, devices, loopback, check, force, fstab, steps)
    elif driver == "overlay":
        if devices or loopback:
            _prepare_fs("xfs", ["mkfs.xfs", "-f", "-n", "ftype=1"], target, devices, loopback, check, force, fstab,
                        steps)
        facts = HostFacts(target if os.path.exists(target) else root)
        ok, why = drivers.driver_class("overlay").supported(facts)
        if not ok and not check:
            raise BerthError(f"overlay cannot work here: {why}")
        steps.append(Step(f"overlay checks: {why}", True))
    elif driver == "vfs":
        steps.append(Step("vfs needs no preparation", True))
    elif driver == "devicemapper" and (pool or ("thin" if device_mapper()[0] else "reflink")) == "thin":
        updates["storage_opts"] = dict(_current_opts(config_path), **_thin_pool(devices, loopback, opts or {}, check,
                                                                                 force, steps))
    elif driver == "devicemapper":
        if pool not in (None, "reflink"):
            raise InvalidInput(f"unknown pool {pool!r}: use thin or reflink")
        # the reflink pool: sparse device images on an XFS with reflink=1
        _prepare_fs("xfs", ["mkfs.xfs", "-f", "-m", "reflink=1"], target, devices, loopback, check, force, fstab,
                    steps)
        if not check:
            dm = drivers.driver_class("devicemapper")
            if not dm.reflink_pool_supported(HostFacts(target)):  # type: ignore[attr-defined]
                raise BerthError(f"{target} is an xfs without reflink=1: the reflink pool needs it "
                                 "(reformat with --force)")
        steps.append(Step("devicemapper uses the reflink pool (no device-mapper in this kernel)"
                          if not device_mapper()[0] else "devicemapper reflink pool", True))
    elif driver == "aufs":
        raise BerthError("aufs is not in this kernel: use overlay")
    else:
        raise InvalidInput(f"unknown driver {driver!r}: use btrfs, overlay, devicemapper or vfs")
    _write_config(config_path, updates, check, steps)
    return steps


def _current_opts(config_path: str) -> dict[str, str]:
    if not os.path.exists(config_path):
        return {}
    with open(config_path, encoding="utf-8") as f:
        return dict((yaml.safe_load(f) or {}).get("storage_opts") or {})


def _thin_pool(devices: list[str] | None, loopback: str | None, opts: dict[str, str], check: bool, force: bool,
               steps: list[Step]) -> dict[str, str]:
    from berth.host import thinpool

    if devices and loopback:
        raise InvalidInput("give --device or --loopback, not both")
    if not devices and not loopback:
        raise InvalidInput("a thin pool needs --device DEV (direct-lvm) or --loopback FILE:SIZE (loop-lvm)")
    options = drivers.driver_class("devicemapper").pool_options(opts)  # type: ignore[attr-defined]

    def add(what: str, done: bool) -> None:
        steps.append(Step(what, done))

    if devices:
        thinpool.preflight(list(devices), options, check=check, force=force, add_step=add)
        return thinpool.plan(list(devices), options, check=check, force=force, add_step=add)
    steps.append(Step(thinpool.LOOP_LVM_WARNING, True, warning=True))
    path, _, size = (loopback or "").partition(":")
    path = os.path.abspath(path)
    dev = _loop_for(path) if os.path.exists(path) else None
    if dev:
        add(f"{path} is attached as {dev}", True)
        thinpool.preflight([dev], options, check=check, force=force, add_step=add)
        return thinpool.plan([dev], options, check=check, force=force, add_step=add)
    if not os.path.exists(path) and not size:
        raise InvalidInput(f"{path} does not exist: give its size, --loopback {path}:100G")
    # blkid reads a file as well as a device: an existing file is checked before it is attached
    thinpool.preflight([path] if os.path.exists(path) else [], options, check=check, force=force, add_step=add)
    if not os.path.exists(path):
        add(f"create sparse file {path} of {size}", False)
        if not check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(parse_size(size, "size"))
    add(f"attach {path} to a loop device", False)
    if check:
        return thinpool.plan([], options, check=True, force=force, add_step=add, pending=f"<loop device of {path}>")
    dev = run(["losetup", "-f", "--show", path], what="attaching the loop file").stdout.decode().strip()
    try:
        return thinpool.plan([dev], options, check=False, force=force, add_step=add)
    except BaseException:
        run(["losetup", "-d", dev], check=False)
        raise


def _prepare_fs(fstype: str, mkfs: list[str], target: str, devices: list[str] | None, loopback: str | None,
                check: bool, force: bool, fstab: str, steps: list[Step]) -> None:
    if devices and loopback:
        raise InvalidInput("give --device or --loopback, not both")
    attached_here: str | None = None
    if os.path.isdir(target) and mounts.is_mountpoint(target) and fs_type(target) == fstype:
        steps.append(Step(f"{target} is a mounted {fstype} file system", True))
    else:
        if not devices and not loopback:
            raise InvalidInput(f"{target} is not on {fstype}: give --device DEV or --loopback FILE:SIZE")
        if loopback:
            path, _, size = loopback.partition(":")
            path = os.path.abspath(path)
            if not os.path.exists(path):
                steps.append(Step(f"create sparse file {path} of {size or '?'}", False))
                if not size:
                    raise InvalidInput(f"{path} does not exist: give its size, --loopback {path}:10G")
                if not check:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as f:
                        f.truncate(parse_size(size, "size"))
            dev = _loop_for(path) if os.path.exists(path) else None
            if dev:
                steps.append(Step(f"{path} is attached as {dev}", True))
            else:
                steps.append(Step(f"attach {path} to a loop device", False))
                if not check:
                    dev = run(["losetup", "-f", "--show", path], what="attaching the loop file").stdout.decode().strip()
                    attached_here = dev
            devs = [dev] if dev else []
            source = path
        else:
            devs = list(devices or [])
            source = devs[0]
        try:
            _format_and_mount(fstype, mkfs, target, devs, source, loopback, check, force, fstab, steps)
        except BaseException:
            if attached_here:
                run(["losetup", "-d", attached_here], check=False)
            raise


def _format_and_mount(fstype: str, mkfs: list[str], target: str, devs: list[str], source: str | None,
                      loopback: str | None, check: bool, force: bool, fstab: str, steps: list[Step]) -> None:
    for d in devs:
        if d and not os.path.exists(d):
            raise InvalidInput(f"device {d} does not exist")
    sigs = {d: device_signature(d) for d in devs if d}
    if devs and all(s == fstype for s in sigs.values()):
        steps.append(Step(f"{', '.join(devs)} already hold {fstype}", True))
    else:
        foreign = {d: s for d, s in sigs.items() if s and s != fstype}
        if foreign and not force:
            d, s = next(iter(foreign.items()))
            raise BerthError(f"{d} holds a {s} signature: refusing to wipe it (check the device; use --force "
                             "to format it anyway)")
        steps.append(Step(f"mkfs.{fstype} {' '.join(d or '<loop device>' for d in devs) or '<loop device>'}",
                          False))
        if not check:
            run(mkfs + devs, what=f"making the {fstype} file system")
    if not os.path.isdir(target) or not mounts.is_mountpoint(target):
        steps.append(Step(f"mount {source} on {target}", False))
        if not check:
            os.makedirs(target, exist_ok=True)
            run(["mount", "-t", fstype, devs[0], target], what=f"mounting {fstype}")
    if loopback:
        line = f"{source} {target} {fstype} loop 0 0"
    else:
        uuid = run(["blkid", "-s", "UUID", "-o", "value", devs[0]], check=False).stdout.decode().strip() \
            if devs and not check else ""
        line = f"{'UUID=' + uuid if uuid else devs[0]} {target} {fstype} defaults 0 0"
    _fstab(fstab, line, target, check, steps)
