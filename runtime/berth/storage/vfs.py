"""vfs: every layer is a full copy of its parent (reflink / copy_file_range where the fs allows)."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from berth.proc import run
from berth.storage.driver import ContentRoot, Driver, Mount, Snapshotter, directory, require

if TYPE_CHECKING:
    from berth.host.probe import HostFacts


def copy_tree(src: str, dst: str) -> None:
    """Copy src's contents into the existing dir dst, keeping owners, modes, xattrs, links, times.

    GNU cp clones extents (FICLONE) where the file system can and uses copy_file_range otherwise.
    """
    run(["cp", "-a", "--reflink=auto", "--", f"{src}/.", dst], what="copying a layer")


class VfsDriver(Driver, ContentRoot, Snapshotter):
    subdirs = ("dir",)
    name = "vfs"
    whiteouts = "delete"

    @classmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        return True, "works on any file system (a full copy per layer)"

    def _dir(self, id: str) -> str:
        return os.path.join(self.home, "dir", id)

    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None:
        from berth.storage import quota

        quota.refuse(opts, "vfs")
        d = self._dir(id)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.mkdir(d, 0o755)
        if parent:
            require(self, parent)
            copy_tree(self._dir(parent), d)

    def remove(self, id: str) -> None:
        d = self._dir(id)
        if os.path.lexists(d):
            shutil.rmtree(d)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._dir(id))

    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        return directory(self._dir(id))

    def content_root(self, id: str) -> str:
        return self._dir(id)

    def snapshot(self, id: str, new_id: str) -> None:
        require(self, id)
        d = self._dir(new_id)
        os.mkdir(d, 0o755)
        copy_tree(self._dir(id), d)

    def ids(self) -> list[str]:
        d = os.path.join(self.home, "dir")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []
