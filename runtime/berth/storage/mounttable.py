"""The one mount table: every layer mount of a root, whatever the driver.

A driver describes a layer's mounts (`Driver.mounts`); this table performs them, at
<dir>/<id>, with one reference count and one lock per layer kept in <dir>/<id>.lock. The first
user mounts, the last one unmounts; a count left by a crashed process is corrected by looking
at the real mount table. A description that is a plain directory is handed out as it is.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from berth.locks import FileLock, adjust_counter
from berth.proc import run
from berth.storage import mounts as mount_calls
from berth.storage.driver import Activator, plain_directory

if TYPE_CHECKING:
    from berth.storage.driver import Driver, Mount


class MountTable:
    def __init__(self, driver: Driver, dir: str) -> None:
        self.driver = driver
        self.dir = dir

    def target(self, id: str) -> str:
        return os.path.join(self.dir, id)

    def _lockfile(self, id: str) -> str:
        return os.path.join(self.dir, f"{id}.lock")

    def mountpoint(self, id: str) -> str | None:
        """Where layer id is mounted now, if it is."""
        target = self.target(id)
        return target if os.path.isdir(target) and mount_calls.is_mountpoint(target) else None

    def mount(self, id: str, parents: list[str]) -> str:
        """The path of layer id's whole tree, mounted if it must be (one more user)."""
        description = self.driver.mounts(id, parents)
        plain = plain_directory(description)
        if plain is not None:
            return plain
        target = self.target(id)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with FileLock(self._lockfile(id)) as lock:
            if adjust_counter(lock, +1) == 1 or not mount_calls.is_mountpoint(target):
                try:
                    self._mount_all(id, description, target)
                except BaseException:
                    adjust_counter(lock, -1)
                    raise
        return os.path.join(target, description[0].root) if description[0].root else target

    def _mount_all(self, id: str, description: list[Mount], target: str) -> None:
        os.makedirs(target, mode=0o700, exist_ok=True)
        if isinstance(self.driver, Activator):
            self.driver.activate(id)
        done = 0
        try:
            for m in description:
                mount_calls.mount(m.type, m.source, target, m.data, cwd=m.cwd)
                done += 1
        except BaseException:
            for _ in range(done):
                run(["umount", target], check=False)
            if isinstance(self.driver, Activator):
                self.driver.deactivate(id)
            raise

    def unmount(self, id: str) -> None:
        """One user fewer; the last one unmounts (a layer never mounted here is left alone)."""
        if not os.path.exists(self._lockfile(id)):
            return
        target = self.target(id)
        with FileLock(self._lockfile(id)) as lock:
            if adjust_counter(lock, -1) == 0:
                self._unmount_all(id, target)

    def _unmount_all(self, id: str, target: str) -> None:
        while os.path.isdir(target) and mount_calls.is_mountpoint(target):
            mount_calls.umount(target)
        if isinstance(self.driver, Activator):
            self.driver.deactivate(id)

    def release(self, id: str) -> None:
        """Unmount layer id whatever its count (it is being removed) and forget it."""
        lockfile = self._lockfile(id)
        if not os.path.exists(lockfile):
            return
        target = self.target(id)
        with FileLock(lockfile) as lock:
            adjust_counter(lock, -(1 << 30))
            self._unmount_all(id, target)
            if os.path.isdir(target):
                os.rmdir(target)
        os.unlink(lockfile)
