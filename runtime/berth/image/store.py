"""The image store: image configs as content-addressed blobs, image records and tags in the database."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from berth import faults, spool, trace
from berth.db import Database
from berth.errors import InvalidInput, NotFound
from berth.image import reference
from berth.record import Record
from berth.storage.fsutil import atomic_write

if TYPE_CHECKING:
    from berth.storage.layers import LayerStore


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Image(Record):
    id: str
    top_layer: str | None
    created: str | None
    size: int
    tags: list[str]


def _write_hashed(f: BinaryIO, chunks: Iterable[bytes], h: Any) -> int:
    """Write chunks to f while hashing them; fsync; return how many bytes were written."""
    n = 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
        f.write(chunk)
    f.flush()
    with trace.span("fsync", getattr(f, "name", "blob")):
        os.fsync(f.fileno())
    return n


class BlobStore:
    """blobs/sha256/<hex>, written temp + fsync + rename, verified on read."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, digest: str) -> str:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64:
            raise InvalidInput(f"invalid digest {digest!r}")
        return os.path.join(self.root, algo, hexd)

    def put(self, data: bytes) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        p = self.path(digest)
        if not os.path.exists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            atomic_write(p, data)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store (run 'berth storage check')") from None
        import hashlib

        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidInput(f"blob {digest} is corrupt on disk")
        return data

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None,
                   size: int | None = None) -> tuple[str, int]:
        """Store a blob from chunks: hashed while written to a temp file, verified against the
        expected digest and size when given, fsynced, renamed into place. Nothing is kept on a
        mismatch."""
        import hashlib

        os.makedirs(os.path.join(self.root, "sha256"), exist_ok=True)
        tmp = os.path.join(self.root, "sha256", spool.name(".tmp-"))
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                n = _write_hashed(f, chunks, h)
            digest = "sha256:" + h.hexdigest()
            if expected is not None and digest != expected:
                raise InvalidInput(f"blob {expected} arrived with digest {digest}: refusing it")
            if size is not None and n != size:
                raise InvalidInput(f"blob {expected or digest} arrived with {n} bytes, {size} announced: refusing it")
            os.rename(tmp, self.path(digest))
            return digest, n
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def partial_path(self, digest: str) -> str:
        """Where an interrupted download of digest waits to be resumed."""
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            raise InvalidInput(f"invalid digest {digest!r}")
        return os.path.join(self.root, "incoming", f"{hexd}.partial")

    def put_resumable(self, fetch: Callable[[int], tuple[int, Iterator[bytes]]], expected: str,
                      size: int | None = None) -> tuple[str, int, int]:
        """Download a blob that a broken transfer may have started: fetch(offset) returns the
        offset the source actually starts at (0 when it ignored the range) and the chunks from
        there. Bytes land in a partial file that outlives a killed process; the whole blob is
        verified against expected before it is renamed into place. A resumed download whose
        result does not verify is fetched once more from the start. Returns (digest, size, bytes
        reused from an earlier attempt)."""
        import fcntl

        partial = self.partial_path(expected)
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        os.makedirs(os.path.join(self.root, "sha256"), exist_ok=True)
        # one downloader per blob: a second pull of the same image waits, then finds it stored
        lock_path = partial[: -len(".partial")] + ".lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.has(expected):
                result = (expected, os.path.getsize(self.path(expected)), 0)
            else:
                result = self._download(partial, fetch, expected, size)
            # stored: later pulls find the blob before they look for a lock (a waiter holding this
            # unlinked file finds the blob as well)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
            return result

    def _download(self, partial: str, fetch: Callable[[int], tuple[int, Iterator[bytes]]], expected: str,
                  size: int | None) -> tuple[str, int, int]:
        import hashlib

        offset = os.path.getsize(partial) if os.path.exists(partial) else 0
        if size is not None and offset > size:
            offset = 0
        for attempt in (0, 1):
            start, chunks = fetch(offset)
            h = hashlib.sha256()
            try:
                with open(partial, "r+b" if os.path.exists(partial) else "w+b") as f:
                    f.truncate(start)
                    f.seek(0)
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(block)
                    n = start + _write_hashed(f, chunks, h)
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT):
                    # a full file system gets its space back now, not when the pull is retried
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(partial)
                raise
            digest = "sha256:" + h.hexdigest()
            if digest == expected and (size is None or n == size):
                os.rename(partial, self.path(digest))
                return digest, n, start
            os.unlink(partial)
            if start == 0 or attempt == 1:
                if size is not None and n != size:
                    raise InvalidInput(f"blob {expected} arrived with {n} bytes, {size} announced: refusing it")
                raise InvalidInput(f"blob {expected} arrived with digest {digest}: refusing it")
            offset = 0  # the kept bytes were not a prefix of this blob: once more, whole
        raise AssertionError("unreachable")

    def remove(self, digest: str) -> None:
        p = self.path(digest)
        if os.path.exists(p):
            os.unlink(p)

    def collect(self, keep: set[str]) -> list[tuple[str, int]]:
        """Remove every blob not in keep (the caller holds the references lock exclusively, so no
        blob is on its way to being recorded); returns (digest, bytes) of those removed. Spool
        names (.tmp-*) are left to berth.spool."""
        d = os.path.join(self.root, "sha256")
        out = []
        for n in os.listdir(d) if os.path.isdir(d) else []:
            digest = f"sha256:{n}"
            if n.startswith(".") or digest in keep:
                continue
            p = os.path.join(d, n)
            size = os.path.getsize(p)
            os.unlink(p)
            out.append((digest, size))
        return out


class ImageStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def _tags(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.db.query("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]

    def _image(self, row: object) -> Image:
        r = row
        return Image(r["id"], r["top_layer"], r["created"], r["size"], self._tags(r["id"]))  # type: ignore[index]

    def add(self, config: dict[str, object], top_layer: str | None, size: int, tags: list[str]) -> Image:
        """Store an image config and its record; tags move to it from any image that had them."""
        return self.add_raw(canonical_json(config), top_layer, size, tags)

    def add_raw(self, data: bytes, top_layer: str | None, size: int, tags: list[str]) -> Image:
        """Like add, keeping the config's bytes as they are (the image ID is their digest)."""
        config = json.loads(data)
        image_id = self.blobs.put(data)
        names = [str(reference.parse(t)) for t in tags]
        with self.db.write() as c:
            c.execute("INSERT OR IGNORE INTO images(id, top_layer, created, size, added) VALUES (?, ?, ?, ?, ?)",
                      (image_id, top_layer, config.get("created"), size, time.time()))
            for n in names:
                c.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES (?, ?)", (n, image_id))
        return self.get(image_id)

    def get(self, image_id: str) -> Image:
        row = self.db.one("SELECT * FROM images WHERE id = ?", (image_id,))
        if row is None:
            raise NotFound(f"image {image_id} not found")
        return self._image(row)

    def config(self, image_id: str) -> dict[str, object]:
        return json.loads(self.blobs.get(image_id))

    def config_bytes(self, image_id: str) -> bytes:
        return self.blobs.get(image_id)

    def list(self) -> list[Image]:
        return [self._image(r) for r in self.db.query("SELECT * FROM images ORDER BY added DESC")]

    def resolve(self, ref: str) -> Image:
        """An image by tag, full ID, or unambiguous ID prefix (at least 4 hex digits)."""
        hexpart = ref[7:] if ref.startswith("sha256:") else ref
        if 4 <= len(hexpart) <= 64 and all(ch in "0123456789abcdef" for ch in hexpart):
            rows = self.db.query("SELECT * FROM images WHERE id LIKE ?", (f"sha256:{hexpart}%",))
            if len(rows) == 1:
                return self._image(rows[0])
            if len(rows) > 1:
                raise InvalidInput(f"image ID prefix {ref!r} is ambiguous: give more digits")
            if ref.startswith("sha256:"):
                raise NotFound(f"no image with ID {ref}")
        try:
            name = str(reference.parse(ref))
        except InvalidInput:
            raise NotFound(f"no such image: {ref}") from None
        row = self.db.one("SELECT image_id FROM tags WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no such image: {ref} (see 'berth images')")
        img = self.get(row["image_id"])
        faults.point("image: resolved")
        return img

    def tag(self, image_id: str, name: str) -> str:
        n = str(reference.parse(name))
        with self.db.write() as c:
            c.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES (?, ?)", (n, image_id))
        return n

    def move_tags(self, named: list[tuple[str, list[str]]]) -> None:
        """Give each image its names, all in one transaction (a name moves from any image that had it)."""
        with self.db.write() as c:
            for image_id, names in named:
                for n in names:
                    c.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES (?, ?)",
                              (str(reference.parse(n)), image_id))

    def untag(self, name: str) -> str:
        n = str(reference.parse(name))
        with self.db.write() as c:
            cur = c.execute("DELETE FROM tags WHERE name = ?", (n,))
            if cur.rowcount == 0:
                raise NotFound(f"no such tag: {name}")
        return n

    def delete(self, image_id: str) -> None:
        with self.db.write() as c:
            c.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
            c.execute("DELETE FROM images WHERE id = ?", (image_id,))
        self.blobs.remove(image_id)

    def top_layers(self) -> set[str]:
        return {r["top_layer"] for r in self.db.query("SELECT top_layer FROM images") if r["top_layer"]}

    # -- build cache: (parent image, step) -> the image the step made -------------------------
    def cached_step(self, key: str) -> str | None:
        row = self.db.one("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        return None if row is None else str(row["image_id"])

    def cache_step(self, key: str, image_id: str) -> None:
        with self.db.write() as w:
            w.execute("INSERT OR REPLACE INTO build_cache(key, image_id) VALUES (?, ?)", (key, image_id))

    def forget_steps(self, image_ids: Iterable[str]) -> None:
        """Drop the build-cache entries that lead to these images."""
        with self.db.write() as w:
            for image_id in image_ids:
                w.execute("DELETE FROM build_cache WHERE image_id = ?", (image_id,))


class ManifestStore:
    """What registries and archives sent with an image: its manifests (exact bytes in the blob
    store), the compressed blobs of its layers, and where each blob came from (for cross-repository
    mounts on push)."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def manifests(self, image_id: str) -> list[tuple[str, str]]:
        """(digest, media type) of the manifests recorded for an image."""
        return [(str(r["digest"]), str(r["media_type"])) for r in self.db.query(
            "SELECT digest, media_type FROM image_manifests WHERE image_id = ?", (image_id,))]

    def add_manifest(self, image_id: str, digest: str, media_type: str) -> None:
        with self.db.write() as w:
            w.execute("INSERT OR IGNORE INTO image_manifests(image_id, digest, media_type) VALUES (?, ?, ?)",
                      (image_id, digest, media_type))

    def layer_blobs(self, diff_id: str) -> list[tuple[str, str, int]]:
        """(blob digest, media type, size) of the compressed forms known for a layer."""
        return [(str(r["blob"]), str(r["media_type"]), int(r["size"])) for r in self.db.query(
            "SELECT blob, media_type, size FROM layer_blobs WHERE diff_id = ?", (diff_id,))]

    def add_layer_blob(self, diff_id: str, blob: str, media_type: str, size: int) -> None:
        with self.db.write() as w:
            w.execute("INSERT OR IGNORE INTO layer_blobs(diff_id, blob, media_type, size) VALUES (?, ?, ?, ?)",
                      (diff_id, blob, media_type, size))

    def still_referenced(self, image_ids: set[str], diff_ids: set[str]) -> set[str]:
        """Forget the manifests of images that are gone and the compressed forms of layers that
        are gone; returns the blobs the rest refers to (manifests and layer blobs), which with
        the image configs are every blob that must be kept."""
        keep: set[str] = set()
        gone: list[tuple[str, tuple[str, ...]]] = []
        for r in self.db.query("SELECT image_id, digest FROM image_manifests"):
            if r["image_id"] in image_ids:
                keep.add(str(r["digest"]))
            else:
                gone.append(("DELETE FROM image_manifests WHERE image_id = ? AND digest = ?",
                             (r["image_id"], r["digest"])))
        for r in self.db.query("SELECT diff_id, blob FROM layer_blobs"):
            if r["diff_id"] in diff_ids:
                keep.add(str(r["blob"]))
            else:
                gone.append(("DELETE FROM layer_blobs WHERE diff_id = ? AND blob = ?", (r["diff_id"], r["blob"])))
        for r in self.db.query("SELECT DISTINCT blob FROM blob_sources"):
            if r["blob"] not in keep and r["blob"] not in image_ids:
                gone.append(("DELETE FROM blob_sources WHERE blob = ?", (r["blob"],)))
        if gone:  # nothing to forget: no write (a full disk must not fail a command that only looks)
            with self.db.write() as w:
                for sql, args in gone:
                    w.execute(sql, args)
        return keep

    def add_sources(self, blobs: Iterable[str], registry: str, repository: str) -> None:
        with self.db.write() as w:
            for blob in blobs:
                w.execute("INSERT OR IGNORE INTO blob_sources(blob, registry, repository) VALUES (?, ?, ?)",
                          (blob, registry, repository))

    def sources(self, blob: str, registry: str, other_than: str) -> list[str]:
        """Repositories of registry that blob is known to be in, other than other_than."""
        return [str(r["repository"]) for r in self.db.query(
            "SELECT repository FROM blob_sources WHERE blob = ? AND registry = ? AND repository != ?",
            (blob, registry, other_than))]


class Stores(Record, frozen=True):
    """What moving images in and out works on: the image, manifest and layer stores, and the root
    (temporary files go on its file system)."""

    images: ImageStore
    manifests: ManifestStore
    layers: LayerStore
    root: str

    @property
    def blobs(self) -> BlobStore:
        return self.images.blobs
