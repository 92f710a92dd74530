"""Per-container size limits (`--storage-opt size=N`): XFS project quotas for overlay, btrfs
qgroups for btrfs. The limit of each layer is recorded in <driver home>/quotas/<id> so that a
snapshot of the layer gets the same limit and removal frees what the limit held."""

from __future__ import annotations

import fcntl
import json
import os

from berth.errors import BerthError, InvalidInput
from berth.proc import run
from berth.storage.fsutil import atomic_write
from berth.units import parse_size

FIRST_PROJECT_ID = 100_000  # well above the ids admins hand out by hand in /etc/projid


def requested_size(opts: dict[str, str] | None, driver: str) -> int | None:
    """The size= option in bytes (None without one); any other key is refused."""
    if not opts:
        return None
    unknown = sorted(set(opts) - {"size"})
    if unknown:
        raise InvalidInput(f"the {driver} driver knows no storage option {', '.join(unknown)} (only size=N)")
    size = parse_size(opts["size"], "size")
    if size < 1 << 20:
        raise InvalidInput(f"size={opts['size']} is too small: give at least 1m")
    return size


def refuse(opts: dict[str, str] | None, driver: str) -> None:
    """For drivers without limits: any per-layer option is refused with where limits do work."""
    if opts:
        raise InvalidInput(f"the {driver} driver cannot limit a container's size ({', '.join(sorted(opts))}): "
                           "size= works with overlay on xfs mounted with prjquota and with btrfs")


def mount_of(path: str) -> tuple[str, str, set[str]]:
    """(mount point, file system type, options) of the mount holding path."""
    path = os.path.realpath(path)
    best = ("/", "", set())
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            target = parts[1].replace("\\040", " ")
            if (path == target or path.startswith(target.rstrip("/") + "/")) and len(target) >= len(best[0]):
                best = (target, parts[2], set(parts[3].split(",")))
    return best


class Quotas:
    """The record of which layer has which limit (and, on XFS, which project id)."""

    def __init__(self, home: str) -> None:
        self.dir = os.path.join(home, "quotas")

    def get(self, id: str) -> dict[str, int] | None:
        try:
            with open(os.path.join(self.dir, id), encoding="utf-8") as f:
                return json.load(f)  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def put(self, id: str, record: dict[str, int]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        atomic_write(os.path.join(self.dir, id), json.dumps(record).encode())

    def drop(self, id: str) -> None:
        try:
            os.unlink(os.path.join(self.dir, id))
        except FileNotFoundError:
            pass

    def next_project_id(self) -> int:
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, ".next-project-id"), "a+", encoding="ascii") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            n = int(f.read().strip() or FIRST_PROJECT_ID)
            f.seek(0)
            f.truncate()
            f.write(str(n + 1))
            f.flush()
            os.fsync(f.fileno())
        return n


class XfsProjectQuota:
    """A hard block limit on a directory tree through an XFS project (overlay's upper dirs)."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.quotas = Quotas(home)

    def check(self) -> str:
        """The mount point, or a BerthError that says what to do."""
        target, fstype, options = mount_of(self.home)
        if fstype != "xfs":
            raise BerthError(f"size= needs the berth root on xfs mounted with prjquota; {self.home} is on "
                             f"{fstype or 'an unknown file system'} (berth host prepare --driver overlay --device DEV "
                             "makes an xfs; mount it with -o prjquota)")
        if not options & {"prjquota", "pquota"}:
            raise BerthError(f"size= needs project quotas: mount {target} with -o prjquota (it is mounted with "
                             f"{','.join(sorted(options & {'pqnoenforce', 'usrquota', 'grpquota'})) or 'none'})")
        return target

    def limit(self, id: str, tree: str, size: int) -> None:
        mnt = self.check()
        project = self.quotas.next_project_id()
        self.quotas.put(id, {"size": size, "project": project})
        run(["xfs_quota", "-x", "-c", f"project -s -p {tree} {project}", mnt], what="setting the xfs project")
        run(["xfs_quota", "-x", "-c", f"limit -p bhard={size} {project}", mnt], what="setting the xfs quota")

    def release(self, id: str) -> None:
        record = self.quotas.get(id)
        if record:
            target, _fstype, _options = mount_of(self.home)
            run(["xfs_quota", "-x", "-c", f"limit -p bhard=0 {record['project']}", target], check=False)
            self.quotas.drop(id)


class BtrfsQgroup:
    """A referenced-bytes limit on a subvolume through its btrfs qgroup."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.quotas = Quotas(home)

    def limit(self, id: str, subvolume: str, size: int) -> None:
        target, _fstype, _options = mount_of(subvolume)
        if not os.path.exists(os.path.join(self.home, "quotas", ".enabled")):
            # quotas cost every write on the file system a little: enabled only once a limit is asked for
            run(["btrfs", "quota", "enable", target], what="enabling btrfs quotas")
            os.makedirs(os.path.join(self.home, "quotas"), exist_ok=True)
            open(os.path.join(self.home, "quotas", ".enabled"), "w").close()
        self.quotas.put(id, {"size": size})
        run(["btrfs", "qgroup", "limit", str(size), subvolume], what="setting the btrfs qgroup limit")

    def subvolume_id(self, subvolume: str) -> str | None:
        cp = run(["btrfs", "inspect-internal", "rootid", subvolume], check=False)
        return cp.stdout.decode().strip() or None if cp.returncode == 0 else None

    def release(self, id: str, subvolume_id: str | None, fs_path: str) -> None:
        if self.quotas.get(id) is None:
            return
        if subvolume_id:
            target, _fstype, _options = mount_of(fs_path)
            run(["btrfs", "qgroup", "destroy", f"0/{subvolume_id}", target], check=False)
        self.quotas.drop(id)
