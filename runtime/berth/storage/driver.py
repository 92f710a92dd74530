"""The storage driver contract (modelled on the graphdriver interface) and the shared diff paths.

A driver owns one directory and knows nothing of images or containers. Diffing is shared: a
driver only says where its tree is (mount) and, optionally, where changes can be (native
candidates); `berth.storage.differ` decides what changed and writes the tar.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, BinaryIO

from berth.errors import BerthError, NotFound

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage import differ
    from berth.storage.differ import Candidates
    from berth.storage.tarapply import ApplyResult
    from berth.storage.tarsplit import Recorder
    from berth.storage.tarwriter import Sink


class Driver(ABC):
    name: str = ""
    whiteouts = "delete"
    subdirs: tuple[str, ...] = ()

    def __init__(self, home: str, runroot: str, options: dict[str, str], facts: HostFacts) -> None:
        self.home = home
        self.runroot = runroot
        self.options = dict(options)
        self.facts = facts
        self._check_options()
        os.makedirs(home, mode=0o700, exist_ok=True)
        for d in self.subdirs:
            os.makedirs(os.path.join(home, d), mode=0o700, exist_ok=True)

    # -- support -----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        """Whether the driver can work on this host, and why (never mutates the host)."""

    known_options: tuple[str, ...] = ()

    def _check_options(self) -> None:
        for k in self.options:
            if k not in self.known_options:
                allowed = ", ".join(self.known_options) or "none"
                raise BerthError(f"unknown storage option {k!r} for the {self.name} driver (allowed: {allowed})")

    # -- layers -----------------------------------------------------------------------------
    @abstractmethod
    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None: ...

    @abstractmethod
    def remove(self, id: str) -> None:
        """Remove a layer; removing an absent layer is not an error (crash recovery relies on it)."""

    @abstractmethod
    def exists(self, id: str) -> bool: ...

    @abstractmethod
    def mount(self, id: str) -> str:
        """Path of the layer's full tree; reference-counted where the driver really mounts."""

    @abstractmethod
    def unmount(self, id: str) -> None: ...

    @abstractmethod
    def snapshot(self, id: str, new_id: str) -> None:
        """A point-in-time copy of layer id as a new layer with the same parent."""

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> bool:
        """Make new_id (a read-only layer on parent) hold rw_id's changes without a tar round trip,
        where the backend can; False means "not here, use diff + apply"."""
        return False

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", self.facts.backing_fs)]

    def metadata(self, id: str) -> dict[str, str]:
        return {}

    def cleanup(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds (mounts) at shutdown."""

    def ids(self) -> list[str]:
        """Layer ids present on disk (for consistency checks)."""
        return []

    # -- diffs ------------------------------------------------------------------------------
    def native_diff(self) -> tuple[bool, str]:
        """Whether native_candidates may be used, and why not."""
        return False, "no native diff for this driver"

    def native_candidates(self, id: str, parent: str | None) -> Candidates | None:
        return None

    def _require(self, id: str) -> None:
        if not self.exists(id):
            raise NotFound(f"layer {id} does not exist in the {self.name} driver")

    def _plan(self, id: str, parent: str | None, naive: bool) -> tuple[list[differ.Item], str]:
        from berth.storage import differ

        self._require(id)
        new_root = self.mount(id)
        try:
            old_root = self.mount(parent) if parent else None
        except BaseException:
            self.unmount(id)
            raise
        try:
            cands = None
            if not naive and parent and self.native_diff()[0]:
                cands = self.native_candidates(id, parent)
            items = differ.Differ(new_root, old_root, cands or differ.EVERYTHING).plan()
        finally:
            if parent:
                self.unmount(parent)
        return items, new_root

    def diff(self, id: str, parent: str | None, sink: Sink, naive: bool = False) -> int:
        """Write the layer tar of id against parent to sink (OCI layer format, canonical); returns
        the bytes of regular files it holds."""
        from berth.storage import differ

        items, new_root = self._plan(id, parent, naive)
        try:
            return differ.write_tar(items, new_root, sink)
        finally:
            self.unmount(id)

    def changes(self, id: str, parent: str | None, naive: bool = False) -> list[tuple[str, str]]:
        from berth.storage import differ

        items, _ = self._plan(id, parent, naive)
        self.unmount(id)
        return differ.changes(items)

    def diff_size(self, id: str, parent: str | None) -> int:
        from berth.storage import differ

        items, root = self._plan(id, parent, False)
        try:
            return differ.diff_size(items, root)
        finally:
            self.unmount(id)

    def apply_target(self, id: str) -> tuple[str, bool]:
        """Directory a layer tar is applied to, and whether it must be unmounted afterwards."""
        return self.mount(id), True

    def apply_diff(self, id: str, parent: str | None, stream: BinaryIO,
                   recorder: Recorder | None = None) -> ApplyResult:
        from berth.storage.tarapply import apply_tar

        self._require(id)
        target, mounted = self.apply_target(id)
        try:
            return apply_tar(stream, target, self.whiteouts, recorder)
        finally:
            if mounted:
                self.unmount(id)
