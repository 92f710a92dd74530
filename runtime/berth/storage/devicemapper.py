"""devicemapper: every layer is a block device with its own file system, a thin snapshot of its
parent's device; its mount is described (`mounts`) and the layer store's mount table performs it.
Diffs are naive.

Two pool backends behind one interface:

* ReflinkPool — a thin-pool stand-in for kernels without device-mapper: each device is a sparse
  image file on an XFS (reflink=1) or btrfs file system; a snapshot is a reflink copy (shared
  extents, copy on write), a mount attaches it to a loop device (mount -o loop, freed at unmount),
  removal gives the space back.
* ThinPool — an existing dm-thin pool (`dm.thinpooldev`): create_thin / create_snap / delete
  messages, one thin target per active device (activated before it is mounted), transaction ids
  advanced around every change.

A device's file system holds the layer under /rootfs (so that lost+found never shows).
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from berth.errors import BerthError, InvalidInput
from berth.proc import run
from berth.storage import mounts
from berth.storage.driver import Activator, Driver, FastCommit, Mount, Quiesced, Snapshotter, require
from berth.units import parse_size

if TYPE_CHECKING:
    from berth.host.probe import HostFacts

DEFAULT_BASESIZE = 10 << 30
DEFAULT_MIN_FREE = 10  # percent
DEFAULT_VG = "berth"
_VG_RE = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")


class DmOptions:
    """Every dm.* option, checked in one place: the driver's own (dm.basesize, dm.fs,
    dm.min_free_space, dm.thinpooldev, dm.pool) and those that shape the pool
    `berth host prepare --pool thin` makes (dm.vg, dm.blocksize, dm.thinp_*)."""

    KNOWN = ("dm.basesize", "dm.fs", "dm.min_free_space", "dm.thinpooldev", "dm.pool", "dm.vg", "dm.blocksize",
             "dm.thinp_percent", "dm.thinp_metapercent", "dm.thinp_autoextend_threshold",
             "dm.thinp_autoextend_percent")

    def __init__(self, opts: dict[str, str]) -> None:
        for k in opts:
            if k not in self.KNOWN:
                raise BerthError(f"unknown storage option {k!r} for the devicemapper driver "
                                 f"(allowed: {', '.join(self.KNOWN)})")
        self.basesize = parse_size(opts["dm.basesize"], "dm.basesize") if "dm.basesize" in opts else DEFAULT_BASESIZE
        self.fs = opts.get("dm.fs", "ext4")
        if self.fs not in ("ext4", "xfs"):
            raise BerthError(f"dm.fs must be ext4 or xfs, not {self.fs!r}")
        raw = opts.get("dm.min_free_space", f"{DEFAULT_MIN_FREE}%").rstrip("%")
        if not raw.isdigit() or not 0 <= int(raw) < 100:
            raise BerthError("dm.min_free_space is a percentage below 100, e.g. 10%")
        self.min_free = int(raw)
        self.thinpooldev = opts.get("dm.thinpooldev")
        self.pool_dir = opts.get("dm.pool")
        # the pool `berth host prepare --pool thin` makes
        self.vg = opts.get("dm.vg", DEFAULT_VG)
        if not _VG_RE.match(self.vg):
            raise InvalidInput(f"dm.vg={self.vg!r} is not a valid volume group name")
        self.chunk = opts.get("dm.blocksize", "512K").upper()
        try:
            chunk = parse_size(self.chunk, "dm.blocksize")
        except InvalidInput:
            chunk = 0
        if chunk < 64 << 10 or chunk > 1 << 30 or chunk % (64 << 10):
            raise InvalidInput(f"dm.blocksize={self.chunk!r}: use a multiple of 64K between 64K and 1G (e.g. 512K)")
        self.chunk_kib = chunk >> 10
        self.data_percent = self._percent(opts, "dm.thinp_percent", 95)
        self.meta_percent = self._percent(opts, "dm.thinp_metapercent", 1)
        if self.data_percent + self.meta_percent > 100:
            raise InvalidInput("dm.thinp_percent + dm.thinp_metapercent must not exceed 100")
        self.threshold = self._percent(opts, "dm.thinp_autoextend_threshold", 80)
        self.extend = self._percent(opts, "dm.thinp_autoextend_percent", 20)

    @staticmethod
    def _percent(opts: dict[str, str], key: str, default: int) -> int:
        raw = opts.get(key, str(default)).rstrip("%")
        if not raw.isdigit() or not 0 < int(raw) <= 100:
            raise InvalidInput(f"{key}={opts.get(key)!r}: use a percentage from 1 to 100")
        return int(raw)


class PoolFull(BerthError):
    pass


class PoolBackend(ABC):
    name = ""
    activate_to_mount = True  # False: the mount source attaches itself (a loop mount)

    @abstractmethod
    def create(self, dev: str, size: int) -> None: ...

    @abstractmethod
    def snapshot(self, src: str, dev: str) -> None: ...

    @abstractmethod
    def remove(self, dev: str) -> None: ...

    @abstractmethod
    def activate(self, dev: str) -> str:
        """Block device path of dev (activated if it was not)."""

    @abstractmethod
    def deactivate(self, dev: str) -> None: ...

    @abstractmethod
    def usage(self) -> tuple[int, int]:
        """(bytes used, bytes total) of the pool's data space."""

    @abstractmethod
    def exists(self, dev: str) -> bool: ...

    @abstractmethod
    def mount_source(self, dev: str) -> tuple[str, tuple[str, ...]]:
        """What a mount of dev names as its source, and the mount options that go with it."""


class ReflinkPool(PoolBackend):
    name = "reflink"
    activate_to_mount = False

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)

    def _img(self, dev: str) -> str:
        return os.path.join(self.path, f"{dev}.img")

    def exists(self, dev: str) -> bool:
        return os.path.exists(self._img(dev))

    def mount_source(self, dev: str) -> tuple[str, tuple[str, ...]]:
        # mount attaches the image to a loop device and frees it at unmount (autoclear)
        return self._img(dev), ("loop",)

    def create(self, dev: str, size: int) -> None:
        with open(self._img(dev), "wb") as f:
            f.truncate(size)

    def snapshot(self, src: str, dev: str) -> None:
        run(["cp", "--reflink=always", self._img(src), self._img(dev)],
            what="reflink snapshot of a thin device")

    def remove(self, dev: str) -> None:
        self.deactivate(dev)
        if os.path.exists(self._img(dev)):
            os.unlink(self._img(dev))

    def _loop(self, dev: str) -> str | None:
        out = run(["losetup", "-j", self._img(dev)], check=False).stdout.decode()
        return out.split(":", 1)[0] if out.strip() else None

    def activate(self, dev: str) -> str:
        return self._loop(dev) or run(["losetup", "-f", "--show", self._img(dev)],
                                      what="activating a thin device").stdout.decode().strip()

    def deactivate(self, dev: str) -> None:
        loop = self._loop(dev)
        if loop:
            run(["losetup", "-d", loop], check=False)

    def usage(self) -> tuple[int, int]:
        st = os.statvfs(self.path)
        total = st.f_blocks * st.f_frsize
        return total - st.f_bavail * st.f_frsize, total


class ThinPool(PoolBackend):
    """An existing dm-thin pool. Device ids and the transaction id live in a small JSON file next
    to the driver; a change is 'open' while it runs, and an open change found at start-up is
    rolled back (the thin device deleted) before anything else happens."""

    name = "dm-thin"

    def __init__(self, pool: str, meta: str) -> None:
        if not os.path.exists(pool):
            # after a reboot without LVM's autoactivation (or a loop-lvm file not attached again)
            raise BerthError(f"the thin pool {pool} is not active: activate its volume group (vgchange -ay) or "
                             "run berth host prepare again")
        self.pool = pool
        self.meta_path = meta
        self.meta = self._load()
        self._rollback()

    def _load(self) -> dict[str, object]:
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"next_id": 1, "transaction_id": 0, "devices": {}, "open": None}

    def _save(self) -> None:
        from berth.storage.fsutil import atomic_write

        atomic_write(self.meta_path, json.dumps(self.meta).encode())

    def _message(self, msg: str) -> None:
        run(["dmsetup", "message", self.pool, "0", msg], what=f"thin pool message {msg!r}")

    def _begin(self, dev: str) -> int:
        dev_id = int(self.meta["next_id"])  # type: ignore[call-overload]
        self.meta["next_id"] = dev_id + 1
        self.meta["open"] = {"dev": dev, "id": dev_id}
        self._save()
        return dev_id

    def _commit(self, dev: str, dev_id: int, size: int) -> None:
        old = int(self.meta["transaction_id"])  # type: ignore[call-overload]
        self._message(f"set_transaction_id {old} {old + 1}")
        self.meta["transaction_id"] = old + 1
        self.meta["devices"][dev] = {"id": dev_id, "size": size}  # type: ignore[index]
        self.meta["open"] = None
        self._save()

    def _rollback(self) -> None:
        open_tx = self.meta.get("open")
        if open_tx:
            run(["dmsetup", "message", self.pool, "0", f"delete {open_tx['id']}"], check=False)  # type: ignore[index]
            # the crash may have come after set_transaction_id: the pool's own id is the truth
            self.meta["transaction_id"] = self._pool_transaction_id()
            self.meta["open"] = None
            self._save()

    def _pool_transaction_id(self) -> int:
        out = run(["dmsetup", "status", self.pool], what="thin pool status").stdout.decode().split()
        return int(out[3])

    def exists(self, dev: str) -> bool:
        return dev in self.meta["devices"]  # type: ignore[operator]

    def mount_source(self, dev: str) -> tuple[str, tuple[str, ...]]:
        return f"/dev/mapper/{self._name(dev)}", ()

    def create(self, dev: str, size: int) -> None:
        dev_id = self._begin(dev)
        self._message(f"create_thin {dev_id}")
        self._commit(dev, dev_id, size)

    def snapshot(self, src: str, dev: str) -> None:
        origin = self.meta["devices"][src]  # type: ignore[index]
        dev_id = self._begin(dev)
        active = os.path.exists(f"/dev/mapper/{self._name(src)}")
        if active:
            run(["dmsetup", "suspend", self._name(src)], what="suspending the origin")
        try:
            self._message(f"create_snap {dev_id} {origin['id']}")
        finally:
            if active:
                run(["dmsetup", "resume", self._name(src)], check=False)
        self._commit(dev, dev_id, int(origin["size"]))

    def _name(self, dev: str) -> str:
        return f"berth-{dev[:32]}"

    def remove(self, dev: str) -> None:
        self.deactivate(dev)
        info = self.meta["devices"].get(dev)  # type: ignore[union-attr]
        if info:
            self._message(f"delete {info['id']}")
            del self.meta["devices"][dev]  # type: ignore[union-attr]
            self._save()

    def activate(self, dev: str) -> str:
        name = self._name(dev)
        if not os.path.exists(f"/dev/mapper/{name}"):
            info = self.meta["devices"][dev]  # type: ignore[index]
            table = f"0 {int(info['size']) // 512} thin {self.pool} {info['id']}"
            run(["dmsetup", "create", name, "--table", table], what="activating a thin device")
        return f"/dev/mapper/{name}"

    def deactivate(self, dev: str) -> None:
        name = self._name(dev)
        if os.path.exists(f"/dev/mapper/{name}"):
            run(["dmsetup", "remove", "--deferred", name], check=False)

    def usage(self) -> tuple[int, int]:
        out = run(["dmsetup", "status", self.pool], what="thin pool status").stdout.decode().split()
        # <start> <len> thin-pool <transaction id> <used meta>/<total meta> <used data>/<total data> ...
        used, total = (int(x) for x in out[5].split("/"))
        # counted in data blocks: <start> <len> thin-pool <meta dev> <data dev> <block size in sectors> ...
        table = run(["dmsetup", "table", self.pool], what="thin pool table").stdout.decode().split()
        block = int(table[5]) * 512
        return used * block, total * block


class DeviceMapperDriver(Driver, FastCommit, Snapshotter, Activator, Quiesced):
    name = "devicemapper"
    subdirs = ("mnt", "metadata")
    freeze_to_copy = True
    known_options = DmOptions.KNOWN

    @classmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        dm = facts.devicemapper
        if dm.get("thin_pool_target"):
            return True, "the device-mapper thin-pool target is available (give dm.thinpooldev)"
        if facts.backing_fs in ("xfs", "btrfs"):
            if facts.backing_fs == "btrfs" or _xfs_reflink(facts.root):
                return True, (f"no device-mapper here ({dm.get('reason')}); the reflink pool works on "
                              f"this {facts.backing_fs}")
            return False, "the root's xfs has no reflink=1: recreate it with mkfs.xfs -m reflink=1"
        return False, (f"{dm.get('reason') or 'no thin-pool target'}; the reflink stand-in needs the root on "
                       f"xfs (reflink=1) or btrfs, not {facts.backing_fs} (berth host prepare --driver devicemapper)")

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> None:
        DmOptions(options)

    @classmethod
    def pool_options(cls, options: dict[str, str]) -> DmOptions:
        """The dm.* options, checked (`berth host prepare --pool thin` shapes its pool with them)."""
        return DmOptions(options)

    @classmethod
    def reflink_pool_supported(cls, facts: HostFacts) -> bool:
        """Whether the reflink pool works at facts.root: btrfs, or xfs made with reflink=1."""
        return facts.backing_fs == "btrfs" or (facts.backing_fs == "xfs" and _xfs_reflink(facts.root))

    def __init__(self, home: str, options: dict[str, str], facts: HostFacts) -> None:
        super().__init__(home, options, facts)
        opts = DmOptions(self.options)
        self.basesize, self.fs, self.min_free = opts.basesize, opts.fs, opts.min_free
        if opts.thinpooldev is not None:
            self.pool: PoolBackend = ThinPool(opts.thinpooldev, os.path.join(self.home, "thin-metadata.json"))
        else:
            self.pool = ReflinkPool(opts.pool_dir or os.path.join(self.home, "pool"))
        # dmsetup suspend freezes a dm-thin origin's mounted file system itself (and fails on one frozen already)
        self.freeze_to_copy = not isinstance(self.pool, ThinPool)

    # -- helpers -----------------------------------------------------------------------------
    def _mnt(self, id: str) -> str:
        return os.path.join(self.home, "mnt", id)

    def _check_space(self) -> None:
        used, total = self.pool.usage()
        free = total - used
        if total and free * 100 < self.min_free * total:
            raise PoolFull(f"thin pool full: {free >> 20} MiB free of {total >> 20} MiB, below dm.min_free_space="
                           f"{self.min_free}%; remove containers or images, or grow the pool")

    def _ensure_base(self) -> None:
        if self.pool.exists("base"):
            return
        self.pool.create("base", self.basesize)
        dev = self.pool.activate("base")
        try:
            if self.fs == "ext4":
                run(["mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev],
                    what="making the base device's file system")
                run(["tune2fs", "-c", "-1", "-i", "0", dev], check=False)
            else:
                run(["mkfs.xfs", "-q", "-f", "-K", dev], what="making the base device's file system")
            tmp = self._mnt("base")
            os.makedirs(tmp, exist_ok=True)
            mounts.mount(self.fs, dev, tmp, "nouuid" if self.fs == "xfs" else "")
            try:
                os.mkdir(os.path.join(tmp, "rootfs"), 0o755)
            finally:
                mounts.umount(tmp)
        except BaseException:
            self.pool.remove("base")
            raise
        finally:
            self.pool.deactivate("base")

    # -- contract ----------------------------------------------------------------------------
    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None:
        from berth.storage import quota

        quota.refuse(opts, "devicemapper")
        self._check_space()
        if parent:
            require(self, parent)
        else:
            self._ensure_base()
        self.pool.snapshot(parent or "base", id)

    def exists(self, id: str) -> bool:
        return self.pool.exists(id)

    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        """The device's file system; the layer is its /rootfs."""
        source, options = self.pool.mount_source(id)
        return [Mount(self.fs, source, options + (("nouuid",) if self.fs == "xfs" else ()), root="rootfs")]

    def activate(self, id: str) -> None:
        if self.pool.activate_to_mount:
            self.pool.activate(id)

    def deactivate(self, id: str) -> None:
        self.pool.deactivate(id)

    def remove(self, id: str) -> None:
        self.pool.remove(id)

    def snapshot(self, id: str, new_id: str) -> None:
        """A snapshot of the device (the layer store freezes a mounted one around it)."""
        require(self, id)
        self._check_space()
        self.pool.snapshot(id, new_id)

    def fast_commit(self) -> tuple[bool, str]:
        return True, "a snapshot of the device"

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> None:
        """The container's device, snapshotted, is the new layer (no data copied)."""
        self.snapshot(rw_id, new_id)

    def status(self) -> list[tuple[str, str]]:
        used, total = self.pool.usage()
        full = total and (total - used) * 100 < self.min_free * total
        state = (f"full (below dm.min_free_space={self.min_free}%): remove containers or images, or grow the pool"
                 if full else "ok")
        return [("Pool backend", self.pool.name), ("Pool state", state), ("Data space used", f"{used >> 20} MiB"),
                ("Data space total", f"{total >> 20} MiB"), ("Base device size", f"{self.basesize >> 30} GiB"),
                ("Backing filesystem of devices", self.fs), ("Min free space", f"{self.min_free}%")]

    def ids(self) -> list[str]:
        if isinstance(self.pool, ReflinkPool):
            return sorted(n[:-4] for n in os.listdir(self.pool.path) if n.endswith(".img") and n != "base.img")
        return sorted(d for d in self.pool.meta["devices"] if d != "base")  # type: ignore[union-attr]


def _xfs_reflink(path: str) -> bool:
    from berth.host.probe import existing_ancestor

    target = run(["findmnt", "-n", "-o", "TARGET", "-T", existing_ancestor(path)], check=False).stdout.decode().strip()
    cp = run(["xfs_info", target or existing_ancestor(path)], check=False)
    return b"reflink=1" in cp.stdout
