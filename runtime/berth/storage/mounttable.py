"""The one mount table: every layer mount of a root, whatever the driver.

A driver describes a layer's mounts (`Driver.mounts`); this table performs them, at <dir>/<id>,
under one lock per layer (<dir>/<id>.lock). Who uses a mount is recorded next to it, before the
mount is made, so that a process killed while it holds one leaves a record recovery understands:

- a temporary user (a diff, a commit, an exec's user lookup, a build step) holds a flock on its
  own file <dir>/<id>.use-<pid>-<n> for as long as it uses the mount. The kernel drops the flock
  when the process dies, so a use file whose flock can be taken is a dead user's;
- a container's rootfs outlives the `berth start` that mounted it: it is pinned (<dir>/<id>.pin)
  until the container's exit or removal releases it.

The first user mounts; whoever finds no live user left (an unmount, or `recover()` at the next
start and in `berth storage check`) unmounts. A description that is a plain directory is handed
out as it is.
"""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

from berth import faults
from berth.locks import FileLock
from berth.proc import run
from berth.storage import mounts as mount_calls
from berth.storage.driver import Activator, plain_directory

if TYPE_CHECKING:
    from berth.storage.driver import Driver, Mount


class MountTable:
    def __init__(self, driver: Driver, dir: str) -> None:
        self.driver = driver
        self.dir = dir
        self._uses: dict[str, list[tuple[str, int]]] = {}  # this process's use files: id -> [(path, fd)]

    def target(self, id: str) -> str:
        return os.path.join(self.dir, id)

    def _lockfile(self, id: str) -> str:
        return os.path.join(self.dir, f"{id}.lock")

    def _pinfile(self, id: str) -> str:
        return os.path.join(self.dir, f"{id}.pin")

    def mountpoint(self, id: str) -> str | None:
        """Where layer id is mounted now, if it is."""
        target = self.target(id)
        return target if os.path.isdir(target) and mount_calls.is_mountpoint(target) else None

    # -- users -------------------------------------------------------------------------------
    def _add_use(self, id: str) -> None:
        """Record this process as a user of id's mount: the file appears under its final name
        only once it is flocked, so a use file is never mistaken for a dead user's."""
        n = sum(len(v) for v in self._uses.values())
        tmp = os.path.join(self.dir, f".{id}.new-{os.getpid()}-{n}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        path = os.path.join(self.dir, f"{id}.use-{os.getpid()}-{n}-{os.urandom(3).hex()}")
        os.rename(tmp, path)
        self._uses.setdefault(id, []).append((path, fd))

    def _drop_use(self, id: str) -> None:
        held = self._uses.get(id)
        if not held:
            return
        path, fd = held.pop()
        if not held:
            del self._uses[id]
        os.unlink(path)
        os.close(fd)

    def _live_users(self, id: str) -> int:
        """How many users id's mount has, after forgetting the dead ones (the caller holds id's lock)."""
        live = int(os.path.exists(self._pinfile(id)))
        prefix = f"{id}.use-"
        mine = {p for p, _fd in self._uses.get(id, [])}
        for n in os.listdir(self.dir):
            if not n.startswith(prefix):
                continue
            p = os.path.join(self.dir, n)
            if p in mine or not _dead(p):
                live += 1
        return live

    # -- mount / unmount ---------------------------------------------------------------------
    def mount(self, id: str, parents: list[str], pin: bool = False) -> str:
        """The path of layer id's whole tree, mounted if it must be. The caller becomes one more
        user: a temporary one, or with pin the container that runs on it."""
        description = self.driver.mounts(id, parents)
        plain = plain_directory(description)
        if plain is not None:
            return plain
        target = self.target(id)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with FileLock(self._lockfile(id)):
            if pin:
                with open(self._pinfile(id), "w", encoding="ascii"):
                    pass
            else:
                self._add_use(id)
            faults.point("mount: user recorded")
            if not mount_calls.is_mountpoint(target):
                try:
                    self._mount_all(id, description, target)
                except BaseException:
                    self._forget(id, pin)
                    raise
            faults.point("mount: mounted")
        return os.path.join(target, description[0].root) if description[0].root else target

    def _forget(self, id: str, pin: bool) -> None:
        if pin:
            if os.path.exists(self._pinfile(id)):
                os.unlink(self._pinfile(id))
        else:
            self._drop_use(id)

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

    def unmount(self, id: str, pin: bool = False) -> None:
        """One user fewer (this process's, or with pin the container's); when no live user is
        left the layer is unmounted (a layer never mounted here is left alone)."""
        if not os.path.exists(self._lockfile(id)):
            return
        target = self.target(id)
        with FileLock(self._lockfile(id)):
            self._forget(id, pin)
            if self._live_users(id) == 0:
                self._unmount_all(id, target)

    def users(self, id: str) -> int:
        """Live users of id's mount (0 for a layer not mounted here)."""
        if not os.path.exists(self._lockfile(id)):
            return 0
        with FileLock(self._lockfile(id)):
            return self._live_users(id)

    def _unmount_all(self, id: str, target: str) -> None:
        while os.path.isdir(target) and mount_calls.is_mountpoint(target):
            mount_calls.umount(target)
        if isinstance(self.driver, Activator):
            self.driver.deactivate(id)
        faults.point("mount: unmounted")

    def release(self, id: str) -> None:
        """Unmount layer id whatever its users (it is being removed) and forget it."""
        lockfile = self._lockfile(id)
        if not os.path.exists(lockfile):
            return
        target = self.target(id)
        with FileLock(lockfile):
            while self._uses.get(id):
                self._drop_use(id)
            for n in os.listdir(self.dir):
                if n.startswith(f"{id}.use-") or n == f"{id}.pin":
                    os.unlink(os.path.join(self.dir, n))
            self._unmount_all(id, target)
            if os.path.isdir(target):
                os.rmdir(target)
        os.unlink(lockfile)

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Unmount what only dead processes were using; forget their use files. Returns the
        layers unmounted."""
        if not os.path.isdir(self.dir):
            return []
        names = os.listdir(self.dir)
        for n in names:
            pid = n.rpartition(".new-")[2].split("-")[0]
            if n.startswith(".") and ".new-" in n and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                os.unlink(os.path.join(self.dir, n))
        out = []
        for n in names:
            if not n.endswith(".lock"):
                continue
            id = n[: -len(".lock")]
            with FileLock(self._lockfile(id)):
                for u in os.listdir(self.dir):
                    p = os.path.join(self.dir, u)
                    if u.startswith(f"{id}.use-") and _dead(p):
                        os.unlink(p)
                if self._live_users(id) == 0 and self.mountpoint(id):
                    self._unmount_all(id, self.target(id))
                    out.append(f"unmounted layer {id} (its users are gone)")
        return out

    def stale(self) -> bool:
        """Whether a dead process's use of a mount is recorded (recover() has work to do)."""
        if not os.path.isdir(self.dir):
            return False
        return any(".use-" in n and _dead(os.path.join(self.dir, n)) for n in os.listdir(self.dir))


def _dead(path: str) -> bool:
    """Whether the process that flocked path is gone (its flock can be taken)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
