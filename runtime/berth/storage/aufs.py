"""aufs: a branch directory per layer, stacked with `br=` (rw on top, ro+wh below). aufs keeps
whiteouts as `.wh.` files, the same form as in a layer tar, so a branch is applied as is and its
changes are listed without walking the parent. Kernels without aufs (most today) get a clear
"not here, use overlay" from the probe, and auto-selection never picks it."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from berth.errors import BerthError
from berth.storage.driver import ContentRoot, Driver, Mount, NativeDiffer, Snapshotter, require
from berth.storage.vfs import copy_tree

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage.differ import Candidates

PAGE = os.sysconf("SC_PAGE_SIZE")


class AufsDriver(Driver, NativeDiffer, Snapshotter, ContentRoot):
    name = "aufs"
    whiteouts = "aufs"
    subdirs = ("layers", "diff")

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
        with open(os.path.join(self.home, "layers", id), "w", encoding="ascii") as f:
            f.write("\n".join(chain))

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._diff(id))

    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        """The layer's branch read-write on top of its parents' branches (read-only, whiteouts
        honoured)."""
        branches = [f"{self._diff(id)}=rw"] + [f"{self._diff(p)}=ro+wh" for p in parents]
        m = Mount("aufs", "none", ("br:" + ":".join(branches), "dio", "xino=/dev/shm/aufs.xino"))
        if len(m.data) > PAGE - 1:
            raise BerthError(f"aufs branch list for {id} does not fit one page ({len(m.data)} bytes)")
        return [m]

    def remove(self, id: str) -> None:
        shutil.rmtree(self._diff(id), ignore_errors=True)
        layers = os.path.join(self.home, "layers", id)
        if os.path.exists(layers):
            os.unlink(layers)

    def content_root(self, id: str) -> str:
        return self._diff(id)

    def native_candidates(self, id: str, parent: str) -> Candidates:
        """The branch holds exactly the layer's changes, deletions as .wh. files."""
        from berth.storage.differ import OPAQUE_MARKER, WHITEOUT_PREFIX, Candidates

        if self._parents(id)[:1] != [parent]:
            raise BerthError(f"layer {parent} is not the parent of aufs layer {id}")
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
        require(self, id)
        parents = self._parents(id)
        self.create(new_id, parents[0] if parents else None)
        copy_tree(self._diff(id), self._diff(new_id))

    def ids(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.home, "diff")))
