"""Named volumes: directories under the root (`<root>/volumes/<name>/_data`) recorded in the store,
created on first use by a container, filled from the image's content at the mount point the first
time (docker's copy-up: ownership, modes and times kept), and never removed while a container
refers to one."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from berth import faults, proc
from berth.container import pathres
from berth.container.config import ContainerConfig, Mount, check_volume_name
from berth.container.volumestore import Volume, VolumeStore
from berth.errors import InUse, NotFound
from berth.locks import FileLock
from berth.timefmt import iso_precise

if TYPE_CHECKING:
    from berth.container.store import ContainerStore

COPY_TIMEOUT = 3600
REMOVING = ".removing-"  # a volume being removed: its directory moved aside under this prefix


def _empty_volume_dir(path: str) -> bool:
    """A volume directory holding nothing but an empty _data (what creation makes first)."""
    try:
        entries = os.listdir(path)
        return entries == [] or (entries == ["_data"] and os.listdir(os.path.join(path, "_data")) == [])
    except OSError:
        return False


class VolumeInUse(InUse):
    """A volume that containers refer to cannot be removed."""


class Volumes:
    def __init__(self, store: VolumeStore, containers: ContainerStore, root: str, lock_dir: str) -> None:
        self.store = store
        self.containers = containers
        self.dir = os.path.join(root, "volumes")
        self.lock_dir = lock_dir

    def path(self, name: str) -> str:
        """The host directory a volume's data lives in."""
        return os.path.join(self.dir, name, "_data")

    def _lock(self, name: str) -> FileLock:
        return FileLock(os.path.join(self.lock_dir, f"vol-{name}"))

    # -- create, look ------------------------------------------------------------------------
    def create(self, name: str, labels: dict[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume of that name, made if missing; (volume, whether it was made now)."""
        check_volume_name(name)
        with self._lock(name):
            return self._ensure(name, labels or {})

    def _ensure(self, name: str, labels: dict[str, str]) -> tuple[Volume, bool]:
        # the directory first: a crash between the two leaves an empty directory the next create reuses
        os.makedirs(self.path(name), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(self.dir, name), 0o700)
        faults.point("volume: directory made")
        v = Volume(name, time.time(), dict(labels))
        if self.store.insert(v):
            return v, True
        return self.store.get(name), False

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        """Replace a volume's labels (its data stays)."""
        with self._lock(name):
            self.store.get(name)
            self.store.set_labels(name, dict(labels))

    def get(self, name: str) -> Volume:
        return self.store.get(name)

    def list(self) -> list[Volume]:
        return self.store.list()

    def users(self, name: str) -> list[str]:
        """Names of the containers whose mounts refer to the volume."""
        return [c.name for c in self.containers.list()
                if any(m.type == "volume" and m.source == name for m in c.config.volumes)]

    def size(self, name: str) -> int:
        """Bytes the volume's files take on disk (hard links counted once)."""
        total = 0
        seen: set[tuple[int, int]] = set()
        for top, dirs, files in os.walk(self.path(name)):
            for n in dirs + files:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(top, n))
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_blocks * 512
        return total

    def inspect(self, name: str) -> dict[str, object]:
        v = self.store.get(name)
        return {"Name": v.name, "Driver": "local", "Mountpoint": self.path(v.name),
                "CreatedAt": iso_precise(v.created), "Labels": v.labels, "Scope": "local", "Options": {},
                "UsedBy": self.users(v.name)}

    # -- remove ------------------------------------------------------------------------------
    def remove(self, name: str) -> None:
        """Remove a volume and its data; refused while a container (running or not) refers to it."""
        with self._lock(name):
            self.store.get(name)
            users = self.users(name)
            if users:
                raise VolumeInUse(f"volume {name} is in use by container(s) {', '.join(users)}: remove them first")
            # out of the way first, so that a crash half-way through the removal leaves no half
            # volume: the record of a volume moved aside is removed by recovery (leftovers)
            trash = os.path.join(self.dir, f"{REMOVING}{name}-{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(os.path.join(self.dir, name), trash)
            faults.point("volume: moved aside")
            self.store.delete(name)
            shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.lock_dir, f"vol-{name}"))

    def prune(self) -> list[tuple[str, int]]:
        """Remove every volume no container refers to; returns (name, bytes freed) of each."""
        used = {m.source for c in self.containers.list() for m in c.config.volumes if m.type == "volume"}
        out = []
        for v in self.store.list():
            if v.name in used:
                continue
            size = self.size(v.name)
            try:
                self.remove(v.name)
            except (VolumeInUse, NotFound):
                continue
            out.append((v.name, size))
        return out

    def leftovers(self) -> list[str]:
        """What a crash left (for storage check): a removal it interrupted is finished (the data
        moved aside and the record go), a creation it interrupted is undone (an empty directory
        that was never recorded). Each under the volume's lock, so a command at work is not
        taken for a dead one."""
        out = []
        for n in sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else []:
            name = n[len(REMOVING):].rpartition("-")[0] if n.startswith(REMOVING) else n
            with self._lock(name):
                path = os.path.join(self.dir, n)
                if not os.path.lexists(path):
                    continue  # the command that was at work finished meanwhile
                if n.startswith(REMOVING):
                    if self.store.exists(name) and not os.path.lexists(os.path.join(self.dir, name)):
                        self.store.delete(name)
                    shutil.rmtree(path, ignore_errors=True)
                    out.append(f"finished removing volume {name}")
                elif not self.store.exists(name) and _empty_volume_dir(path):
                    shutil.rmtree(path)
                    out.append(f"removed the directory of volume {name}, which was never recorded")
        return out

    def problems(self) -> list[str]:
        """Recorded volumes whose data directory is missing (for storage check)."""
        return [f"volume {v.name} is recorded but its directory {self.path(v.name)} is missing"
                for v in self.store.list() if not os.path.isdir(self.path(v.name))]

    # -- snapshots (berth snapshot create --with-volumes) --------------------------------------
    def snapshot_dir(self, cid: str, snapshot: str | None = None) -> str:
        base = os.path.join(os.path.dirname(self.dir), "volume-snapshots", cid)
        return os.path.join(base, snapshot) if snapshot else base

    def snapshot(self, cid: str, snapshot: str, names: list[str]) -> None:
        """Copy each volume's data (reflinks where the file system has them) as part of a
        container's snapshot; written under a temporary name and renamed, so it is whole or absent."""
        final = self.snapshot_dir(cid, snapshot)
        tmp = final + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, mode=0o700)
        try:
            for n in names:
                with self._lock(n):
                    os.mkdir(os.path.join(tmp, n), 0o700)
                    proc.run(["cp", "-a", "--reflink=auto", self.path(n) + "/.", os.path.join(tmp, n) + "/"],
                             what=f"copying volume {n} into snapshot {snapshot}", timeout=COPY_TIMEOUT)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def restore(self, cid: str, snapshot: str, names: list[str]) -> None:
        """Put each volume's data back as the snapshot has it, in place (the directory stays the
        same, so containers that mount it see the restored data)."""
        for n in names:
            saved = os.path.join(self.snapshot_dir(cid, snapshot), n)
            if not os.path.isdir(saved):
                raise NotFound(f"snapshot {snapshot} has no copy of volume {n} (its directory is gone)")
            with self._lock(n):
                self._ensure(n, {})
                data = self.path(n)
                for entry in os.listdir(data):
                    p = os.path.join(data, entry)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    else:
                        os.unlink(p)
                proc.run(["cp", "-a", "--reflink=auto", saved + "/.", data + "/"],
                         what=f"restoring volume {n} from snapshot {snapshot}", timeout=COPY_TIMEOUT)

    def drop_snapshot(self, cid: str, snapshot: str | None = None) -> None:
        """Remove the volume copies of one snapshot (or of all the container's snapshots)."""
        shutil.rmtree(self.snapshot_dir(cid, snapshot), ignore_errors=True)

    # -- containers --------------------------------------------------------------------------
    @contextlib.contextmanager
    def using(self, cfg: ContainerConfig) -> Iterator[list[str]]:
        """Hold the locks of the container's named volumes (made if missing) while the container
        that refers to them is recorded, so that no removal slips in between; yields the names of
        the volumes that are empty (to be filled from the image)."""
        names = sorted({m.source for m in cfg.volumes if m.type == "volume"})
        with contextlib.ExitStack() as stack:
            empty = []
            for n in names:
                stack.enter_context(self._lock(n))
                self._ensure(n, {})
                if not os.listdir(self.path(n)):
                    empty.append(n)
            yield empty

    def copy_up(self, cfg: ContainerConfig, rootfs: str, empty: list[str]) -> None:
        """Fill empty volumes from what the image has at their mount points (as docker does):
        the directory's content, ownership, modes and times. The mount point is resolved inside
        the rootfs, so a symlink in the image never leads the copy out of it."""
        for m in cfg.volumes:
            if m.type != "volume" or m.source not in empty:
                continue
            try:
                fd = pathres.open_in_root(rootfs, m.destination)
            except OSError:
                continue  # nothing there in the image: the volume stays empty
            try:
                if not os.path.isdir(f"/proc/self/fd/{fd}"):
                    continue
                proc.run(["cp", "-a", "--reflink=auto", f"/proc/{os.getpid()}/fd/{fd}/.", self.path(m.source) + "/"],
                         what=f"filling volume {m.source} from the image's {m.destination}", timeout=COPY_TIMEOUT)
            finally:
                os.close(fd)
            empty.remove(m.source)

    def host_mounts(self, mounts: list[Mount]) -> list[Mount]:
        """The mounts with each named volume replaced by a bind mount of its directory."""
        return [Mount(self.path(m.source), m.destination, m.readonly) if m.type == "volume" else m
                for m in mounts]
