"""Diff and apply layers over any driver, composed around it rather than inherited.

The differ mounts through the mount table it is given (the layer store), asks a driver that is a
NativeDiffer where changes can be, and leaves what counts as a change and how it is written to
`berth.storage.differ`. A layer tar is applied to the driver's content root where it has one
(with the driver's whiteout form), else to the mounted tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Protocol

from berth.errors import BerthError
from berth.storage.driver import ContentRoot, NativeDiffer, require

if TYPE_CHECKING:
    from berth.storage import differ
    from berth.storage.driver import Driver
    from berth.storage.tarapply import ApplyResult
    from berth.storage.tarsplit import Recorder
    from berth.storage.tarwriter import Sink


class Mounter(Protocol):
    def mount(self, id: str) -> str: ...

    def unmount(self, id: str) -> None: ...


def native_status(driver: Driver) -> tuple[bool, str]:
    """Whether the driver's native differ is used, and why (not)."""
    if isinstance(driver, NativeDiffer):
        return driver.native_diff()
    return False, "no native diff for this driver"


class LayerDiffer:
    def __init__(self, driver: Driver, mounter: Mounter | None) -> None:
        self.driver = driver
        self.mounter = mounter

    def _mounts(self) -> Mounter:
        if self.mounter is None:
            raise BerthError(f"the {self.driver.name} driver has no content root: its layers must be mounted")
        return self.mounter

    def _plan(self, id: str, parent: str | None, naive: bool) -> tuple[list[differ.Item], str]:
        from berth.storage import differ

        require(self.driver, id)
        m = self._mounts()
        new_root = m.mount(id)
        try:
            old_root = m.mount(parent) if parent else None
        except BaseException:
            m.unmount(id)
            raise
        try:
            cands = None
            if not naive and parent and isinstance(self.driver, NativeDiffer) and self.driver.native_diff()[0]:
                cands = self.driver.native_candidates(id, parent)
            items = differ.Differ(new_root, old_root, cands or differ.EVERYTHING).plan()
        except BaseException:
            m.unmount(id)
            raise
        finally:
            if parent:
                m.unmount(parent)
        return items, new_root

    def diff(self, id: str, parent: str | None, sink: Sink, naive: bool = False) -> int:
        """Write the layer tar of id against parent to sink (OCI layer format, canonical); returns
        the bytes of regular files it holds."""
        from berth.storage import differ

        items, new_root = self._plan(id, parent, naive)
        try:
            return differ.write_tar(items, new_root, sink)
        finally:
            self._mounts().unmount(id)

    def changes(self, id: str, parent: str | None, naive: bool = False) -> list[tuple[str, str]]:
        from berth.storage import differ

        items, _ = self._plan(id, parent, naive)
        self._mounts().unmount(id)
        return differ.changes(items)

    def diff_size(self, id: str, parent: str | None) -> int:
        from berth.storage import differ

        items, root = self._plan(id, parent, False)
        try:
            return differ.diff_size(items, root)
        finally:
            self._mounts().unmount(id)

    def apply(self, id: str, stream: BinaryIO, recorder: Recorder | None = None) -> ApplyResult:
        """Apply a layer tar to layer id (made on its parent and still empty of its own changes)."""
        from berth.storage.tarapply import apply_tar

        require(self.driver, id)
        if isinstance(self.driver, ContentRoot):
            return apply_tar(stream, self.driver.content_root(id), self.driver.whiteouts, recorder)
        m = self._mounts()
        target = m.mount(id)
        try:
            return apply_tar(stream, target, "delete", recorder)
        finally:
            m.unmount(id)
