"""Read what the kernel and the host offer. Probing never changes the host: trial mounts happen in
a private mount namespace inside a temporary directory that is removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from functools import cached_property

from berth.errors import BerthError
from berth.proc import run
from berth.record import Factory, Record

FS_MAGIC = {0x9123683E: "btrfs", 0xEF53: "ext4", 0x58465342: "xfs", 0x01021994: "tmpfs",
            0x794C7630: "overlay", 0x61756673: "aufs", 0x2FC12FC1: "zfs", 0x6969: "nfs",
            0xF15F: "ecryptfs", 0x65735546: "fuse"}


class RuntimeFacts(Record):
    name: str
    path: str | None
    version: str = ""
    works: bool = False
    reason: str = ""


def _libc():  # type: ignore[no-untyped-def]
    import ctypes

    return ctypes.CDLL("libc.so.6", use_errno=True)


def existing_ancestor(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        p = os.path.dirname(p)
    return p


def fs_type(path: str) -> str:
    """Name of the file system holding path (its nearest existing ancestor)."""
    import ctypes

    class Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("rest", ctypes.c_byte * 104)]

    buf = Statfs()
    if _libc().statfs(os.fsencode(existing_ancestor(path)), ctypes.byref(buf)) != 0:
        return "unknown"
    magic = buf.f_type & 0xFFFFFFFF
    return FS_MAGIC.get(magic, f"0x{magic:x}")


def supports_d_type(path: str) -> bool:
    """True when readdir on path's file system reports entry types (overlay needs it)."""
    import ctypes

    d = existing_ancestor(path)
    libc = _libc()
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    dirp = libc.opendir(os.fsencode(d))
    if not dirp:
        return False
    try:
        while True:
            ent = libc.readdir(dirp)
            if not ent:
                return True
            # struct dirent64 on Linux: ino(8) off(8) reclen(2) type(1) name
            d_type = ctypes.c_ubyte.from_address(ent + 18).value
            name = ctypes.string_at(ent + 19)
            if name in (b".", b".."):
                continue
            return d_type != 0
    finally:
        libc.closedir(dirp)


def _read(path: str, default: str = "") -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return default


def kernel_filesystems() -> list[str]:
    out = []
    for line in _read("/proc/filesystems").splitlines():
        parts = line.split()
        if parts:
            out.append(parts[-1])
    return out


class CgroupFacts(Record):
    version: str
    controllers: list[str] = Factory(list)
    unified_controllers: list[str] = Factory(list)


def cgroup_facts() -> CgroupFacts:
    root = "/sys/fs/cgroup"
    if fs_type(root) == "0x63677270":
        ctrl = _read(f"{root}/cgroup.controllers").split()
        return CgroupFacts("2", ctrl, ctrl)
    v1 = []
    for line in _read("/proc/cgroups").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "1" and os.path.isdir(f"{root}/{parts[0]}"):
            v1.append(parts[0])
    unified = f"{root}/unified"
    if os.path.isdir(unified) and os.path.exists(f"{unified}/cgroup.controllers"):
        return CgroupFacts("1 (hybrid)", v1, _read(f"{unified}/cgroup.controllers").split())
    return CgroupFacts("1", v1)


def namespaces() -> list[str]:
    try:
        return sorted(os.listdir("/proc/self/ns"))
    except OSError:
        return []


def device_signature(dev: str) -> str | None:
    """The file system or volume signature on a device or image file (blkid -p); None when blank."""
    cp = run(["blkid", "-p", "-o", "export", dev], check=False)
    for line in cp.stdout.decode().splitlines():
        if line.startswith("TYPE="):
            return line.split("=", 1)[1]
    return None


def device_mapper() -> tuple[bool, str]:
    """Whether this kernel has device-mapper, and if not, why not. The control node alone proves
    nothing: installing dmsetup or lvm2 creates /dev/mapper/control even where the kernel lacks the
    driver, so the kernel's own list of misc devices decides."""
    try:
        with open("/proc/misc", encoding="ascii") as f:
            registered = any(line.split()[-1:] == ["device-mapper"] for line in f)
    except OSError:
        registered = os.path.exists("/dev/mapper/control")
    if registered and os.path.exists("/dev/mapper/control"):
        return True, ""
    if registered:
        return False, "/dev/mapper/control is missing (dmsetup mknodes makes it)"
    return False, "this kernel has no device-mapper (not in /proc/misc; modprobe dm_mod where it is a module)"


class HostFacts:
    """Everything the drivers and `berth info` ask about the host, computed once per process; the
    trial mounts are remembered in the runroot (keyed by boot, kernel and options)."""

    def __init__(self, root: str, cache_dir: str | None = None) -> None:
        self.root = root
        self.cache_dir = cache_dir

    @cached_property
    def kernel(self) -> str:
        return os.uname().release

    @cached_property
    def filesystems(self) -> list[str]:
        return kernel_filesystems()

    @cached_property
    def backing_fs(self) -> str:
        return fs_type(self.root)

    @cached_property
    def d_type(self) -> bool:
        return supports_d_type(self.root)

    @cached_property
    def overlay_options(self) -> str:
        from berth.storage.overlay_check import overlay_mount_options

        return overlay_mount_options()

    @cached_property
    def overlay(self) -> dict[str, object]:
        """What overlay's own checks (beside the driver, storage/overlay_check) found."""
        from berth.storage.overlay_check import OVERLAY_PARAMS, TRIAL_VERSION, probe_overlay

        facts: dict[str, object] = {"present": "overlay" in self.filesystems}
        params = {}
        for p in ("redirect_dir", "metacopy", "index", "xino_auto"):
            v = _read(f"{OVERLAY_PARAMS}/{p}", "")
            if v:
                params[p] = v
        facts["module_defaults"] = params
        major, minor = (int(x) for x in self.kernel.split(".")[:2])
        facts["userxattr"] = (major, minor) >= (5, 11)
        facts["mount_options"] = self.overlay_options
        if facts["present"]:
            facts.update(self._cached("overlay", f"{self.overlay_options}|trial{TRIAL_VERSION}",
                                      lambda: probe_overlay(self.overlay_options, self.filesystems)))
        return facts

    def _cached(self, name: str, key_extra: str, compute: Callable[[], dict[str, object]]) -> dict[str, object]:
        key = f"{_read('/proc/sys/kernel/random/boot_id')}|{self.kernel}|{key_extra}"
        path = os.path.join(self.cache_dir, f"probe-{name}.json") if self.cache_dir else None
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                if data.get("key") == key:
                    return data["value"]
            except (OSError, ValueError, KeyError):
                pass
        value = compute()
        if path and os.path.isdir(self.cache_dir or ""):
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"key": key, "value": value}, f)
            os.replace(tmp, path)
        return value

    @cached_property
    def devicemapper(self) -> dict[str, object]:
        control, reason = device_mapper()
        thin = False
        if not control:
            pass
        elif shutil.which("dmsetup"):
            cp = run(["dmsetup", "targets"], check=False)
            thin = b"thin-pool" in cp.stdout
            if not thin:
                reason = "the dm thin-pool target is not available (modprobe dm_thin_pool)"
        else:
            reason = "dmsetup is not installed (apt-get install dmsetup)"
        return {"control": control, "thin_pool_target": thin, "reason": reason}

    @cached_property
    def cgroups(self) -> CgroupFacts:
        return cgroup_facts()

    @cached_property
    def namespaces(self) -> list[str]:
        return namespaces()

    @cached_property
    def conmon(self) -> dict[str, str | None]:
        path = shutil.which("conmon")
        version = ""
        if path:
            cp = run([path, "--version"], check=False)
            version = cp.stdout.decode(errors="replace").splitlines()[0] if cp.stdout else ""
        return {"path": path, "version": version}

    def as_dict(self) -> dict[str, object]:
        return {
            "kernel": self.kernel,
            "filesystems": self.filesystems,
            "backing_fs": self.backing_fs,
            "d_type": self.d_type,
            "overlay": self.overlay,
            "btrfs": {"present": "btrfs" in self.filesystems, "root_on_btrfs": self.backing_fs == "btrfs",
                      "progs": shutil.which("btrfs")},
            "devicemapper": self.devicemapper,
            "aufs": {"present": "aufs" in self.filesystems},
            "cgroup_version": self.cgroups.version,
            "cgroups": self.cgroups.to_dict(),
            "namespaces": self.namespaces,
            "conmon": self.conmon,
        }


def check_root() -> None:
    if os.geteuid() != 0:
        raise BerthError("berth needs root for storage operations (mounts, ownership): run it as root")
