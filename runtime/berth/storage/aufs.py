"""aufs: a branch directory per layer, stacked with `br=` (rw on top, ro+wh below). aufs keeps
whiteouts as `.wh.` files, the same form as in a layer tar, so a branch is applied as is and its
changes are listed without walking the parent. Kernels without aufs (most today) get a clear
"not here, use overlay" from the probe, and auto-selection never picks it."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from berth.errors import BerthError
from berth.locks import FileLock, adjust_counter
from berth.storage import mounts
from berth.storage.driver import Driver
from berth.storage.vfs import copy_tree

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage.differ import Candidates

PAGE = os.sysconf("SC_PAGE_SIZE")


class AufsDriver(Driver):
    name = "aufs"
    whiteouts = "aufs"
    subdirs = ("layers", "diff", "mnt")

    @classmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        if "aufs" not in facts.filesystems:
            return False, "aufs is not in /proc/filesystems (this kernel lacks it; use overlay)"
        if facts.backing_fs in ("aufs", "btrfs", "ecryptfs"):
            return False, f"aufs cannot be stacked on {facts.backing_fs}"
        return True, "the kernel has aufs"

    def native_diff(self) -> tuple[bool, str]:
        return True, "the branch keeps this layer's changes (whiteouts included)"

    def _diff(self, id: str) -> str:
        return os.path.join(self.home, "diff", id)

    def _parents(self, id: str) -> list[str]:
        try:
            with open(os.path.join(self.home, "layers", id), encoding="ascii") as f:
                return [ln for ln in f.read().split() if ln]
        except FileNotFoundError:
            return []

    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None:
        from berth.storage import quota

        quota.refuse(opts, "aufs")
        chain = ([parent] + self._parents(parent)) if parent else []
        os.mkdir(self._diff(id), 0o755)
        os.makedirs(os.path.join(self.home, "mnt", id), exist_ok=True)
        with open(os.path.join(self.home, "layers", id), "w", encoding="ascii") as f:
            f.write("\n".join(chain))

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._diff(id))

    def _lock(self, id: str) -> FileLock:
        return FileLock(os.path.join(self.runroot, "aufs-mounts", id))

    def mount(self, id: str) -> str:
        self._require(id)
        mnt = os.path.join(self.home, "mnt", id)
        branches = [f"{self._diff(id)}=rw"] + [f"{self._diff(p)}=ro+wh" for p in self._parents(id)]
        data = "br:" + ":".join(branches) + ",dio,xino=/dev/shm/aufs.xino"
        if len(data) > PAGE - 1:
            raise BerthError(f"aufs branch list for {id} does not fit one page ({len(data)} bytes)")
        with self._lock(id) as lock:
            if adjust_counter(lock, +1) == 1 or not mounts.is_mountpoint(mnt):
                try:
                    mounts.mount("aufs", "none", mnt, data)
                except BaseException:
                    adjust_counter(lock, -1)
                    raise
        return mnt

    def unmount(self, id: str) -> None:
        mnt = os.path.join(self.home, "mnt", id)
        with self._lock(id) as lock:
            if adjust_counter(lock, -1) == 0 and mounts.is_mountpoint(mnt):
                mounts.umount(mnt)

    def remove(self, id: str) -> None:
        mnt = os.path.join(self.home, "mnt", id)
        if os.path.isdir(mnt) and mounts.is_mountpoint(mnt):
            mounts.umount(mnt)
        for p in (self._diff(id), mnt):
            shutil.rmtree(p, ignore_errors=True)
        layers = os.path.join(self.home, "layers", id)
        if os.path.exists(layers):
            os.unlink(layers)

    def apply_target(self, id: str) -> tuple[str, bool]:
        return self._diff(id), False

    def native_candidates(self, id: str, parent: str | None) -> Candidates | None:
        from berth.storage.differ import OPAQUE_MARKER, WHITEOUT_PREFIX, Candidates

        if not parent or self._parents(id)[:1] != [parent]:
            return None
        cands = Candidates()
        top = self._diff(id)
        for root, dirs, files in os.walk(top):
            rel = os.path.relpath(root, top)
            rel = "" if rel == "." else rel
            for n in dirs + files:
                p = f"{rel}/{n}" if rel else n
                if n == OPAQUE_MARKER:
                    cands.subtrees.add(rel)
                elif n.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                    continue
                elif n.startswith(WHITEOUT_PREFIX):
                    cands.paths.add(f"{rel}/{n[4:]}" if rel else n[4:])
                else:
                    cands.paths.add(p)
        return cands

    def snapshot(self, id: str, new_id: str) -> None:
        self._require(id)
        parents = self._parents(id)
        self.create(new_id, parents[0] if parents else None)
        copy_tree(self._diff(id), self._diff(new_id))

    def ids(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.home, "diff")))
