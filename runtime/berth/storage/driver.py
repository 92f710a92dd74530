"""The storage driver contract (modelled on containerd's snapshotters and containers/storage's
drivers) and the optional capabilities a driver may add.

A driver owns one directory and knows nothing of images or containers. Its core is small: make,
remove and list layers, say whether it works on a host (without changing the host), check its
own options, and *describe* how a layer is mounted — as data, a pure function that never mounts.
The layer store's mount table performs every mount, for every driver (`berth.storage.mounttable`),
and diffing is composed around a driver (`berth.storage.layerdiff`), not inherited.

What only some backends can do is a separate protocol, checked with isinstance, never a special
return value: a native differ, a fast commit, a point-in-time snapshot, a content root (the
layer's own files, readable and writable without a mount), and device activation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from berth.errors import BerthError, NotFound
from berth.record import Record

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage.differ import Candidates


class Mount(Record, frozen=True):
    """One mount, as data: `mount -t type -o ",".join(options) source <target>` run in cwd.

    A "bind" mount of a directory is the layer's tree as it already is: the mount table hands out
    the directory itself instead of mounting it. root is where the layer's tree is below the mount
    point ("" for the mount point itself)."""

    type: str
    source: str
    options: tuple[str, ...] = ()
    cwd: str | None = None
    root: str = ""

    @property
    def data(self) -> str:
        return ",".join(self.options)


def directory(path: str) -> list[Mount]:
    """The mounts of a layer whose tree is a plain directory."""
    return [Mount("bind", path, ("rbind", "rw"))]


def plain_directory(mounts: list[Mount]) -> str | None:
    """The directory a description stands for when it needs no mount at all, else None."""
    if len(mounts) == 1 and mounts[0].type == "bind":
        return os.path.join(mounts[0].source, mounts[0].root) if mounts[0].root else mounts[0].source
    return None


class Driver(ABC):
    name: str = ""
    subdirs: tuple[str, ...] = ()
    known_options: tuple[str, ...] = ()

    def __init__(self, home: str, options: dict[str, str], facts: HostFacts) -> None:
        self.home = home
        self.options = dict(options)
        self.facts = facts
        self.validate_options(self.options)
        os.makedirs(home, mode=0o700, exist_ok=True)
        for d in self.subdirs:
            os.makedirs(os.path.join(home, d), mode=0o700, exist_ok=True)

    # -- host and options ----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        """Whether the driver can work on this host, and why (never mutates the host)."""

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> None:
        """Refuse options the driver does not know or whose values are malformed."""
        for k in options:
            if k not in cls.known_options:
                allowed = ", ".join(cls.known_options) or "none"
                raise BerthError(f"unknown storage option {k!r} for the {cls.name} driver (allowed: {allowed})")

    # -- layers ------------------------------------------------------------------------------
    @abstractmethod
    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None: ...

    @abstractmethod
    def remove(self, id: str) -> None:
        """Remove a layer (the mount table has released it); removing an absent layer is not an
        error (crash recovery relies on it)."""

    @abstractmethod
    def exists(self, id: str) -> bool: ...

    @abstractmethod
    def ids(self) -> list[str]:
        """Layer ids present on disk (for consistency checks)."""

    @abstractmethod
    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        """How to mount layer id whose ancestors are parents (nearest first). Pure: it reads the
        driver's own records and never mounts, activates or writes anything."""

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", self.facts.backing_fs)]

    def metadata(self, id: str) -> dict[str, str]:
        return {}


def require(driver: Driver, id: str) -> None:
    if not driver.exists(id):
        raise NotFound(f"layer {id} does not exist in the {driver.name} driver")


# -- optional capabilities -------------------------------------------------------------------
@runtime_checkable
class NativeDiffer(Protocol):
    """The backend knows where a layer's changes are, so that the differ need not walk it all."""

    def native_diff(self) -> tuple[bool, str]:
        """Whether native_candidates may be used here, and why (not)."""

    def native_candidates(self, id: str, parent: str) -> Candidates:
        """Where id can differ from its direct parent."""


@runtime_checkable
class FastCommit(Protocol):
    """A rw layer's changes become a new read-only layer by a native copy, not a tar round trip."""

    def fast_commit(self) -> tuple[bool, str]:
        """Whether commit_copy may be used here, and why (not)."""

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> None:
        """Make new_id, a read-only layer on parent, hold rw_id's changes."""


@runtime_checkable
class Snapshotter(Protocol):
    """A point-in-time copy of a layer as a new layer with the same parent."""

    def snapshot(self, id: str, new_id: str) -> None: ...


@runtime_checkable
class ContentRoot(Protocol):
    """The layer's own files are a directory, read and written without a mount; whiteouts says
    how deletions are kept there ("delete": the directory is the whole tree; "overlay": char
    devices 0:0 and the opaque xattr; "aufs": .wh. files)."""

    whiteouts: str

    def content_root(self, id: str) -> str: ...


@runtime_checkable
class Activator(Protocol):
    """A layer's mount source must be made available before it is mounted (a block device)."""

    def activate(self, id: str) -> None: ...

    def deactivate(self, id: str) -> None: ...


@runtime_checkable
class Disposable(Protocol):
    """A rw layer that is thrown away after use (an --rm container's) may skip the syncs that
    would make its content survive a crash: overlay's volatile mount (no syncfs at unmount)."""

    def make_disposable(self, id: str) -> None:
        """Mark rw layer id so that its mounts skip those syncs where the host allows it."""


@runtime_checkable
class Quiesced(Protocol):
    """A mounted layer must be frozen while it is copied (a file system on a block device)."""

    freeze_to_copy: bool
