"""The layer store: content-addressed layers over a driver, with crash-safe create and remove.

A layer row is written with incomplete=1 before anything touches the driver and cleared only
when the layer is whole. The creating process holds a flock on the layer while it works; a later
`recover()` removes every incomplete layer whose lock it can take (its creator is gone).

The layer store is the only way to mount a layer: its mount table performs what the driver's
`mounts` describes. Diffs go through a LayerDiffer composed over the driver; the optional
capabilities (fast commit, snapshot, content root, freezing) are asked for with isinstance.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from berth import faults, spool
from berth.db import Database
from berth.errors import BerthError, LayerInUse, NotFound
from berth.locks import FileLock
from berth.proc import run
from berth.record import Record
from berth.storage.driver import (
    ContentRoot,
    Disposable,
    FastCommit,
    Quiesced,
    Snapshotter,
    plain_directory,
    require,
)
from berth.storage.layerdiff import LayerDiffer, native_status
from berth.storage.mounttable import MountTable

if TYPE_CHECKING:
    from berth.storage.driver import Driver
    from berth.storage.tarapply import ApplyResult
    from berth.storage.tarwriter import Sink


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """OCI ChainID: ChainID(L0) = DiffID(L0); ChainID(..Ln) = sha256(ChainID(..Ln-1) + ' ' + DiffID(Ln))."""
    if not parent_chain:
        return diff_id
    import hashlib

    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


class Layer(Record):
    id: str
    parent: str | None
    diff_id: str | None
    chain_id: str | None
    size: int
    rw: bool
    incomplete: bool
    created: float


def _layer(row: object) -> Layer:
    r = row  # sqlite3.Row
    return Layer(r["id"], r["parent"], r["diff_id"], r["chain_id"], r["size"], bool(r["rw"]),  # type: ignore[index]
                 bool(r["incomplete"]), r["created"])  # type: ignore[index]


class LayerStore:
    def __init__(self, db: Database, driver: Driver, lock_dir: str, split_dir: str, mount_dir: str) -> None:
        self.db = db
        self.driver = driver
        self.lock_dir = lock_dir
        self.split_dir = split_dir
        self.table = MountTable(driver, mount_dir)
        self.differ = LayerDiffer(driver, self)

    def _lock(self, id: str) -> FileLock:
        return FileLock(os.path.join(self.lock_dir, f"layer-{id}"))

    # -- queries -----------------------------------------------------------------------------
    def get(self, id: str) -> Layer:
        row = self.db.one("SELECT * FROM layers WHERE id = ?", (id,))
        if row is None:
            raise NotFound(f"layer {id} not found")
        return _layer(row)

    def by_chain(self, chain: str) -> Layer | None:
        row = self.db.one("SELECT * FROM layers WHERE chain_id = ? AND incomplete = 0", (chain,))
        return None if row is None else _layer(row)

    def all(self) -> list[Layer]:
        return [_layer(r) for r in self.db.query("SELECT * FROM layers ORDER BY created")]

    def chain(self, id: str) -> list[Layer]:
        """The layer and its ancestors, base first."""
        out = []
        cur: str | None = id
        while cur:
            layer = self.get(cur)
            out.append(layer)
            cur = layer.parent
        return list(reversed(out))

    # -- mounts -------------------------------------------------------------------------------
    def _parents(self, id: str) -> list[str]:
        return [layer.id for layer in reversed(self.chain(id)[:-1])]

    def mount(self, id: str, pin: bool = False) -> str:
        """The path of the layer's whole tree, mounted if the driver needs a mount; every mount
        is paired with an unmount. pin: the mount is a container's rootfs, which outlives this
        process (see MountTable)."""
        require(self.driver, id)
        return self.table.mount(id, self._parents(id), pin=pin)

    def unmount(self, id: str, pin: bool = False) -> None:
        self.table.unmount(id, pin=pin)

    @contextlib.contextmanager
    def mounted(self, id: str) -> Iterator[str]:
        root = self.mount(id)
        try:
            yield root
        finally:
            self.unmount(id)

    def metadata(self, id: str) -> dict[str, str]:
        """The driver's description of a layer, with where the mount table mounts it."""
        md = self.driver.metadata(id)
        if self.driver.exists(id) and plain_directory(self.driver.mounts(id, self._parents(id))) is None:
            md["MergedDir"] = self.table.target(id)
        return md

    @contextlib.contextmanager
    def _quiesced(self, id: str | None) -> Iterator[None]:
        """Layer id frozen while the driver copies it, where the driver asks for it and the
        layer is mounted."""
        quiesced = isinstance(self.driver, Quiesced) and self.driver.freeze_to_copy
        mnt = self.table.mountpoint(id) if id and quiesced else None
        if mnt is None:
            yield
            return
        run(["fsfreeze", "-f", mnt], what="freezing a device for its snapshot")
        try:
            yield
        finally:
            run(["fsfreeze", "-u", mnt], check=False)

    # -- creation ----------------------------------------------------------------------------
    def _begin(self, parent: str | None, rw: bool) -> tuple[str, FileLock]:
        id = os.urandom(32).hex()
        lock = self._lock(id)
        lock.acquire()
        try:
            with self.db.write() as c:
                if parent is not None:
                    row = c.execute("SELECT incomplete FROM layers WHERE id = ?", (parent,)).fetchone()
                    if row is None or row["incomplete"]:
                        raise NotFound(f"parent layer {parent} not found")
                c.execute("INSERT INTO layers(id, parent, rw, incomplete, created) VALUES (?, ?, ?, 1, ?)",
                          (id, parent, int(rw), time.time()))
        except BaseException:
            lock.release()
            raise
        return id, lock

    def split_path(self, id: str) -> str:
        return os.path.join(self.split_dir, f"{id}.json.gz")

    def _abort(self, id: str) -> None:
        """Remove a layer's mount and files, then its row, then its lock file (the caller holds
        the lock)."""
        self._abort_files(id)
        if os.path.exists(self.split_path(id)):
            os.unlink(self.split_path(id))
        with self.db.write() as c:
            c.execute("DELETE FROM layers WHERE id = ?", (id,))
        lockfile = os.path.join(self.lock_dir, f"layer-{id}")
        if os.path.exists(lockfile):
            os.unlink(lockfile)

    def create_from_tar(self, parent: str | None, stream: BinaryIO, keep_bytes: bool = True
                        ) -> tuple[Layer, bool, ApplyResult]:
        """Apply a layer tar on top of parent. Returns the layer, whether it was new (an identical
        layer already stored is reused and the new copy dropped) and what applying it found.
        With keep_bytes the tar's non-content bytes are kept so that it can be rebuilt exactly."""
        from berth.storage.fsutil import atomic_write
        from berth.storage.tarsplit import Recorder

        parent_chain = self.get(parent).chain_id if parent else None
        id, lock = self._begin(parent, rw=False)
        try:
            try:
                with self._quiesced(parent):
                    self.driver.create(id, parent, rw=False)
                recorder = Recorder() if keep_bytes else None
                result = self.differ.apply(id, stream, recorder)
                if recorder is not None:
                    os.makedirs(self.split_dir, exist_ok=True)
                    atomic_write(self.split_path(id), recorder.dump())
            except BaseException:
                self._abort(id)
                raise
            chain = chain_id(parent_chain, result.diff_id)
            with self.db.write() as c:
                row = c.execute("SELECT id FROM layers WHERE chain_id = ? AND incomplete = 0", (chain,)).fetchone()
                if row is None:
                    c.execute("UPDATE layers SET diff_id = ?, chain_id = ?, size = ?, incomplete = 0 WHERE id = ?",
                              (result.diff_id, chain, result.size, id))
                    existing = None
                else:
                    existing = row["id"]
            if existing is not None:
                self._abort(id)
                faults.point("layer: recorded")
                return self.get(existing), False, result
            faults.point("layer: recorded")
            return self.get(id), True, result
        finally:
            lock.release()

    def commit(self, rw_id: str, parent: str | None) -> Layer:
        """A read-only layer on parent holding rw layer rw_id's changes. Where the driver can copy
        natively (FastCommit), the copy runs while the canonical tar is hashed for the DiffID;
        elsewhere the tar streams through a pipe into a new layer."""
        import threading

        from berth.storage.tarapply import HashingSink

        driver = self.driver
        if not (isinstance(driver, FastCommit) and driver.fast_commit()[0]):
            return self._commit_by_tar(rw_id, parent)
        parent_chain = self.get(parent).chain_id if parent else None
        id, lock = self._begin(parent, rw=False)
        try:
            try:
                errors: list[BaseException] = []

                def copy() -> None:
                    try:
                        with self._quiesced(rw_id):
                            driver.commit_copy(rw_id, id, parent)
                    except BaseException as err:
                        errors.append(err)

                t = threading.Thread(target=copy)
                t.start()
                sink = HashingSink()
                try:
                    size = self.differ.diff(rw_id, parent, sink)
                finally:
                    t.join()
                if errors:
                    raise errors[0]
                diff_id = sink.digest()
            except BaseException:
                self._abort(id)
                raise
            return self._finish(id, chain_id(parent_chain, diff_id), diff_id, size)
        finally:
            lock.release()

    def _abort_files(self, id: str) -> None:
        self.table.release(id)
        self.driver.remove(id)

    def _commit_by_tar(self, rw_id: str, parent: str | None) -> Layer:
        import threading

        r, w = os.pipe()
        errors: list[BaseException] = []

        def produce() -> None:
            with os.fdopen(w, "wb", buffering=1 << 20) as out:
                try:
                    self.differ.diff(rw_id, parent, out)
                except BaseException as err:
                    errors.append(err)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        try:
            with os.fdopen(r, "rb", buffering=1 << 20) as stream:
                layer, _new, _res = self.create_from_tar(parent, stream, keep_bytes=False)
        finally:
            t.join()
        if errors:
            raise errors[0]
        return layer

    def _finish(self, id: str, chain: str, diff_id: str, size: int) -> Layer:
        """Record a finished read-only layer, or drop it for an identical one already stored."""
        with self.db.write() as c:
            row = c.execute("SELECT id FROM layers WHERE chain_id = ? AND incomplete = 0", (chain,)).fetchone()
            if row is None:
                c.execute("UPDATE layers SET diff_id = ?, chain_id = ?, size = ?, incomplete = 0 WHERE id = ?",
                          (diff_id, chain, size, id))
                return self.get(id)
        self._abort(id)
        return self.get(row["id"])

    def create_rw(self, parent: str | None, opts: dict[str, str] | None = None, disposable: bool = False) -> Layer:
        """A container's read-write layer; opts are the driver's per-layer options (size=N).
        disposable: the layer is removed after use (--rm), so its mounts may skip syncs."""
        id, lock = self._begin(parent, rw=True)
        try:
            try:
                with self._quiesced(parent):
                    self.driver.create(id, parent, rw=True, opts=opts or None)
                if disposable and isinstance(self.driver, Disposable):
                    self.driver.make_disposable(id)
            except BaseException:
                self._abort(id)
                raise
            with self.db.write() as c:
                c.execute("UPDATE layers SET incomplete = 0 WHERE id = ?", (id,))
            faults.point("layer: recorded")
            return self.get(id)
        finally:
            lock.release()

    def snapshot(self, id: str) -> Layer:
        """A point-in-time copy of a (rw) layer as a new rw layer with the same parent."""
        src = self.get(id)
        driver = self.driver
        if not isinstance(driver, Snapshotter):
            raise BerthError(f"the {driver.name} driver cannot snapshot a layer")
        new_id, lock = self._begin(src.parent, rw=True)
        try:
            try:
                with self._quiesced(id):
                    driver.snapshot(id, new_id)
            except BaseException:
                self._abort(new_id)
                raise
            with self.db.write() as c:
                c.execute("UPDATE layers SET incomplete = 0 WHERE id = ?", (new_id,))
            return self.get(new_id)
        finally:
            lock.release()

    # -- references ---------------------------------------------------------------------------
    # One lock discipline for references. A reference to a layer or an image is anything that
    # points at it: an image's top layer, a child layer's parent, a container's image and rw layer,
    # a snapshot, a tag. Every command that takes one (create/run, build, commit, snapshot, tag,
    # import, load, pull) holds the references lock SHARED from the moment it looks its target up
    # until the record that points at it is committed; removing images and collecting unreferenced
    # layers (rmi, image prune, recovery) holds it EXCLUSIVE, and decides what is unreferenced
    # only then. So a removal never sees a reference half-taken: it runs wholly before the lookup
    # (which then finds nothing, or makes its own copy) or wholly after the record (which then
    # keeps the target). Reference-takers never wait for each other; rmi waits for the ones in
    # flight. Recovery collects only when it gets the lock at once: then no command is between
    # making a layer and recording its user, and an unreferenced layer is a dead command's.
    def referencing(self) -> FileLock:
        """The references lock, to hold while taking a reference (shared)."""
        return FileLock(os.path.join(self.lock_dir, "references"), shared=True)

    def collecting(self) -> FileLock:
        """The references lock, to hold while removing images and collecting layers (exclusive)."""
        return FileLock(os.path.join(self.lock_dir, "references"), shared=False)

    # -- removal -----------------------------------------------------------------------------
    def remove(self, id: str) -> None:
        """Remove one layer (it must have no children). Marked incomplete first, so that a crash
        half-way leaves something recover() finishes."""
        with self._lock(id):
            with self.db.write() as c:
                if c.execute("SELECT 1 FROM layers WHERE parent = ?", (id,)).fetchone():
                    raise LayerInUse(f"layer {id} still has child layers")
                c.execute("UPDATE layers SET incomplete = 1 WHERE id = ?", (id,))
            self._abort(id)

    def unreferenced(self, referenced: set[str]) -> list[str]:
        """Layers that nothing in referenced (images' top layers, containers' rw layers and
        snapshots) uses, directly or as an ancestor: read-only layers no image needs, and rw
        layers left by a container swap that did not finish (leaves first)."""
        rows = self.db.query("SELECT id, parent, rw FROM layers WHERE incomplete = 0")
        keep: set[str] = set()
        by_id = {r["id"]: r for r in rows}
        for ref in referenced:
            cur = ref
            while cur and cur not in keep:
                keep.add(cur)
                cur = by_id[cur]["parent"] if cur in by_id else None
        out = []
        for r in rows:
            if r["id"] not in keep:
                out.append(r["id"])
        # order: children before parents
        depth = {}
        for lid in out:
            d, cur = 0, by_id[lid]["parent"]
            while cur:
                d += 1
                cur = by_id[cur]["parent"] if cur in by_id else None
            depth[lid] = d
        return sorted(out, key=lambda i: -depth[i])

    # -- recovery ----------------------------------------------------------------------------
    def has_incomplete(self) -> bool:
        return self.db.one("SELECT 1 FROM layers WHERE incomplete = 1 LIMIT 1") is not None

    def recover(self, full: bool = False) -> list[str]:
        """Finish what crashed processes left: remove incomplete layers nobody is working on; with
        full, also driver directories that have no row at all (`berth storage check`)."""
        removed: list[str] = []
        for row in self.db.query("SELECT id FROM layers WHERE incomplete = 1"):
            lock = self._lock(row["id"])
            if not lock.acquire(blocking=False):
                continue
            try:
                still = self.db.one("SELECT incomplete FROM layers WHERE id = ?", (row["id"],))
                if still is not None and still["incomplete"]:
                    if self.db.one("SELECT 1 FROM layers WHERE parent = ?", (row["id"],)):
                        continue
                    self._abort(row["id"])
                    removed.append(row["id"])
            finally:
                lock.release()
        if not full:
            return removed
        known = {r["id"] for r in self.db.query("SELECT id FROM layers")}
        for id in self.driver.ids():
            if id in known:
                continue
            lock = self._lock(id)
            if lock.acquire(blocking=False):
                try:
                    if self.db.one("SELECT 1 FROM layers WHERE id = ?", (id,)) is None:
                        self._abort(id)
                        removed.append(id)
                finally:
                    lock.release()
        return removed

    # -- layer tars for export -------------------------------------------------------------
    def tar_source(self, id: str, spool_dir: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the layer's tar: the exact bytes it arrived with where berth kept
        them, else the canonical diff (spooled to a temporary file, as its size is needed first).
        The chunks are checked against the DiffID as they stream; a mismatch raises at the end."""
        import hashlib

        from berth.storage.tarsplit import TarSplit

        layer = self.get(id)
        if os.path.exists(self.split_path(id)):
            with open(self.split_path(id), "rb") as f:
                split = TarSplit(f.read())
            # the layer's own files: its content root, else its mounted tree
            if isinstance(self.driver, ContentRoot):
                root, mounted = self.driver.content_root(id), False
            else:
                root, mounted = self.mount(id), True

            def exact() -> Iterator[bytes]:
                h = hashlib.sha256()
                try:
                    for chunk in split.assemble(root):
                        h.update(chunk)
                        yield chunk
                finally:
                    if mounted:
                        self.unmount(id)
                if "sha256:" + h.hexdigest() != layer.diff_id:
                    raise BerthError(f"layer {id} no longer matches its DiffID {layer.diff_id}: its files changed")
            return split.size, exact()
        fd, tmp_path = spool.make_file(spool_dir, ".layer-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                self.differ.diff(id, layer.parent, tmp)
            size = os.path.getsize(tmp_path)
        except BaseException:
            os.unlink(tmp_path)
            raise

        def spooled() -> Iterator[bytes]:
            h = hashlib.sha256()
            try:
                with open(tmp_path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                        yield chunk
            finally:
                os.unlink(tmp_path)
            if "sha256:" + h.hexdigest() != layer.diff_id:
                raise BerthError(f"layer {id} no longer matches its DiffID {layer.diff_id}")
        return size, spooled()

    # -- diffs -------------------------------------------------------------------------------
    def diff(self, id: str, sink: Sink, naive: bool = False) -> int:
        layer = self.get(id)
        return self.differ.diff(id, layer.parent, sink, naive=naive)

    def changes(self, id: str, naive: bool = False) -> list[tuple[str, str]]:
        layer = self.get(id)
        return self.differ.changes(id, layer.parent, naive=naive)

    def diff_size(self, id: str) -> int:
        """Bytes of regular files the layer adds or changes over its parent."""
        return self.differ.diff_size(id, self.get(id).parent)

    def native_diff(self) -> tuple[bool, str]:
        """Whether the driver's native differ is used, and why (not)."""
        return native_status(self.driver)
