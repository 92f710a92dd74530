"""Images to and from archives: docker-archive (what `docker save` writes and `docker load` reads)
and the OCI image layout, as a directory or a tar.

Layers are written once however many images share them. Layer tars that berth received are
rebuilt byte for byte (tar-split), so load -> save keeps every DiffID.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from berth import spool as spool_mod
from berth.errors import HostileInput, InvalidInput
from berth.image import formats, reference, validate
from berth.image.formats import CONTAINERD_NAME, INDEXES, MANIFESTS, OCI_LAYER, OCI_MANIFEST, REF_NAME, for_this_host
from berth.image.ingest import LayerIngest
from berth.image.store import Image, Stores
from berth.progress import Progress, quiet, with_bar
from berth.storage.fsutil import atomic_write
from berth.storage.tarwriter import REGTYPE, TarEntry, TarWriter

if TYPE_CHECKING:
    from berth.image.signing import Lookaside

FORMATS = ("docker-archive", "oci-archive", "oci-dir")
MAX_MANIFESTS = 4096  # an index (with its nested indexes) listing more is not an image archive


class _Selection:
    """The images to save with the names asked for, layers deduplicated by ChainID."""

    def __init__(self, stores: Stores, refs: list[str], progress: Progress = quiet) -> None:
        self.progress = progress
        self.images: list[tuple[Image, list[str]]] = []
        by_id: dict[str, list[str]] = {}
        order: list[Image] = []
        for ref in refs:
            img = stores.images.resolve(ref)
            if img.id not in by_id:
                by_id[img.id] = []
                order.append(img)
            name = None if ref.startswith("sha256:") or img.id.startswith("sha256:" + ref) else \
                str(reference.parse(ref))
            if name and name not in by_id[img.id]:
                by_id[img.id].append(name)
        self.images = [(img, by_id[img.id]) for img in order]


# ------------------------------------------------------------------------------- save
def save(stores: Stores, lookaside: Lookaside, refs: list[str], out: BinaryIO | str, fmt: str = "docker-archive",
         progress: Progress = quiet) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not refs:
        raise InvalidInput("save needs at least one image")
    sel = _Selection(stores, refs, progress)
    spool = spool_mod.make_dir(stores.root, "berth-save-")
    try:
        if fmt == "oci-dir":
            assert isinstance(out, str)
            _save_oci_dir(stores, lookaside, sel, out, spool)
            return
        if isinstance(out, str):
            tmp = out + ".berth-partial"
            try:
                with open(tmp, "wb") as f:
                    _save_tar(stores, lookaside, sel, f, fmt, spool)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            _save_tar(stores, lookaside, sel, out, fmt, spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _save_tar(stores: Stores, lookaside: Lookaside, sel: _Selection, out: BinaryIO, fmt: str, spool: str) -> None:
    w = TarWriter(out)
    if fmt == "docker-archive":
        _docker_archive(stores, sel, w, spool)
    else:
        _oci_entries(stores, sel, w, spool)
    for name, content in _signed_extras(stores, lookaside, sel):
        if isinstance(content, bytes):
            w.add_bytes(name, content)
        else:
            size = os.path.getsize(content)
            w.add_chunks(TarEntry(name, REGTYPE, 0o644, size=size), _file_chunks(content))
    w.close()


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


EXTRAS = "berth"


def _signed_extras(stores: Stores, look: Lookaside, sel: _Selection) -> list[tuple[str, bytes | str]]:
    """The saved images' signatures, with the manifest and compressed blobs they bind (so that
    load -> push sends the signed manifest again). Only images that have signatures."""
    from berth.image.distribution import manifest_for
    from berth.image.signing import normalize

    out: list[tuple[str, bytes | str]] = []
    blobs_seen: set[str] = set()
    for img, names in sel.images:
        wanted = [n for n in names if look.has_signatures(normalize(n))]
        if not wanted:
            continue
        data, mt = manifest_for(stores, img, quiet)
        digest = formats.digest(data)
        found = False
        for n in wanted:
            for rel, sig in look.export(normalize(n), digest):
                out.append((f"{EXTRAS}/signatures/{rel}", sig))
                found = True
        if not found:
            continue
        out.append((f"{EXTRAS}/manifests/{digest[7:]}.json", formats.compact_json({"image": img.id, "mediaType": mt})))
        out.append((f"{EXTRAS}/manifests/{digest[7:]}", data))
        for ly in json.loads(data).get("layers", []):
            bd = str(ly["digest"])
            if bd not in blobs_seen:
                blobs_seen.add(bd)
                out.append((f"{EXTRAS}/blobs/{bd[7:]}", stores.blobs.path(bd)))
    return out


def _docker_archive(stores: Stores, sel: _Selection, w: TarWriter, spool: str) -> None:
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for img, names in sel.images:
        layers = stores.layers.chain(img.top_layer) if img.top_layer else []
        paths = []
        parent_v1 = ""
        for ly in layers:
            v1 = hashlib.sha256(f"{ly.chain_id}".encode()).hexdigest()
            paths.append(f"{v1}/layer.tar")
            if v1 not in written:
                written.add(v1)
                w.add_dir(v1)
                w.add_bytes(f"{v1}/VERSION", b"1.0")
                legacy: dict[str, object] = {"id": v1, "created": "1970-01-01T00:00:00Z",
                                             "container_config": {"Cmd": None}}
                if parent_v1:
                    legacy["parent"] = parent_v1
                w.add_bytes(f"{v1}/json", formats.compact_json(legacy))
                size, chunks = stores.layers.tar_source(ly.id, spool)
                w.add_chunks(TarEntry(f"{v1}/layer.tar", REGTYPE, 0o644, size=size),
                             with_bar(chunks, f"layer {str(ly.diff_id)[7:19]}", size, sel.progress))
            parent_v1 = v1
        config_name = img.id[7:] + ".json"
        if config_name not in written:
            written.add(config_name)
            w.add_bytes(config_name, stores.images.config_bytes(img.id))
        manifest.append({"Config": config_name, "RepoTags": names or None, "Layers": paths})
        for n in names:
            repo, _, tag = n.rpartition(":")
            repositories.setdefault(repo, {})[tag] = parent_v1
    w.add_bytes("manifest.json", formats.compact_json(manifest))
    w.add_bytes("repositories", formats.compact_json(repositories))


def _oci_manifest(stores: Stores, img: Image, spool: str, sizes: dict[str, int]
                  ) -> tuple[bytes, list[tuple[str, int, Iterator[bytes] | None, str]]]:
    """The image's OCI manifest and its layers as (digest, size, chunks, layer id); a layer seen
    before (its size in `sizes`) comes without chunks."""
    cfg = stores.images.config_bytes(img.id)
    layers = []
    descs = []
    for ly in stores.layers.chain(img.top_layer) if img.top_layer else []:
        chunks: Iterator[bytes] | None = None
        if ly.id in sizes:
            size = sizes[ly.id]
        else:
            size, chunks = stores.layers.tar_source(ly.id, spool)
            sizes[ly.id] = size
        assert ly.diff_id is not None
        layers.append((ly.diff_id, size, chunks, ly.id))
        descs.append(formats.descriptor(OCI_LAYER, ly.diff_id, size))
    return formats.manifest(cfg, descs), layers


def _index_entries(sel: _Selection, manifests: dict[str, tuple[str, int]]) -> bytes:
    entries = []
    for img, names in sel.images:
        digest, size = manifests[img.id]
        for n in names or [None]:  # type: ignore[list-item]
            entries.append(formats.named(formats.descriptor(OCI_MANIFEST, digest, size), n))
    return formats.index(entries)


def _oci_entries(stores: Stores, sel: _Selection, w: TarWriter, spool: str) -> None:
    w.add_bytes("oci-layout", formats.compact_json({"imageLayoutVersion": "1.0.0"}))
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    seen: set[str] = set()
    sizes: dict[str, int] = {}
    manifests: dict[str, tuple[str, int]] = {}
    for img, _names in sel.images:
        data, layers = _oci_manifest(stores, img, spool, sizes)
        for digest, size, chunks, _lid in layers:
            if chunks is None or digest in seen:
                continue
            seen.add(digest)
            w.add_chunks(TarEntry(f"blobs/sha256/{digest[7:]}", REGTYPE, 0o644, size=size),
                         with_bar(chunks, f"layer {digest[7:19]}", size, sel.progress))
        cfg = stores.images.config_bytes(img.id)
        for blob in (cfg, data):
            d = formats.digest(blob)
            if d not in seen:
                seen.add(d)
                w.add_bytes(f"blobs/sha256/{d[7:]}", blob)
        manifests[img.id] = (formats.digest(data), len(data))
    w.add_bytes("index.json", _index_entries(sel, manifests))


def _save_oci_dir(stores: Stores, lookaside: Lookaside, sel: _Selection, path: str, spool: str) -> None:
    if os.path.exists(path) and not os.path.exists(os.path.join(path, "oci-layout")) and os.listdir(path):
        raise InvalidInput(f"{path} exists and is not an OCI layout: give an empty or new directory")
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    atomic_write(os.path.join(path, "oci-layout"), formats.compact_json({"imageLayoutVersion": "1.0.0"}))
    manifests: dict[str, tuple[str, int]] = {}
    sizes: dict[str, int] = {}
    for img, _names in sel.images:
        data, layers = _oci_manifest(stores, img, spool, sizes)
        for digest, _size, chunks, _lid in layers:
            target = os.path.join(blobs, digest[7:])
            if chunks is None or os.path.exists(target):
                continue
            tmp = target + ".partial"
            with open(tmp, "wb") as f:
                for chunk in chunks or []:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        for blob in (stores.images.config_bytes(img.id), data):
            atomic_write(os.path.join(blobs, formats.digest(blob)[7:]), blob)
        manifests[img.id] = (formats.digest(data), len(data))
    index_path = os.path.join(path, "index.json")
    atomic_write(index_path, _index_entries(sel, manifests))
    for name, content in _signed_extras(stores, lookaside, sel):
        target = os.path.join(path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(content, bytes):
            atomic_write(target, content)
        else:
            shutil.copyfile(content, target)


# ------------------------------------------------------------------------------- load
# what reading a damaged tar (or its compression) raises
CORRUPT = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def _why(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class _Source:
    """Random access to an archive's members: a directory or a (seekable) tar file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if os.path.isdir(path):
            return
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise InvalidInput(f"{path} is empty, not an image archive")
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed in close()
        except (tarfile.TarError, OSError):
            raise InvalidInput(f"{path} is not an image archive (a tar, optionally compressed, or an OCI layout "
                               "directory)") from None
        try:
            for m in self.tar.getmembers():
                self.members[posixpath.normpath(m.name.lstrip("./") or ".")] = m
        except CORRUPT as e:
            self.tar.close()
            raise InvalidInput(f"{path} is truncated or corrupt: {_why(e)}") from None

    def names(self, prefix: str) -> list[str]:
        """Regular files under prefix (archive-relative names)."""
        if self.tar is None:
            base = os.path.join(self.path, prefix)
            out = []
            for root, _dirs, files in os.walk(base):
                for f in files:
                    out.append(os.path.relpath(os.path.join(root, f), self.path))
            return sorted(out)
        return sorted(n for n, m in self.members.items() if n.startswith(prefix) and m.isreg())

    def exists(self, name: str) -> bool:
        if self.tar is None:
            return os.path.isfile(self._dir_path(name))
        return posixpath.normpath(name) in self.members

    def _dir_path(self, name: str) -> str:
        n = posixpath.normpath(name)
        if n.startswith("../") or n.startswith("/") or n == "..":
            raise HostileInput(f"archive refers to {name!r}, outside the archive")
        return os.path.join(self.path, n)

    def open(self, name: str) -> BinaryIO:
        if self.tar is None:
            try:
                return open(self._dir_path(name), "rb")  # noqa: SIM115
            except FileNotFoundError:
                raise InvalidInput(f"archive is missing {name}") from None
        n = posixpath.normpath(name)
        if n.startswith("../") or n.startswith("/"):
            raise HostileInput(f"archive refers to {name!r}, outside the archive")
        m = self.members.get(n)
        while m is not None and m.issym():
            n = posixpath.normpath(posixpath.join(posixpath.dirname(n), m.linkname))
            m = self.members.get(n)
        if m is None or not m.isreg():
            raise InvalidInput(f"archive is missing {name}")
        f = self.tar.extractfile(m)
        assert f is not None
        return f  # type: ignore[return-value]

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidInput(f"{name} in the archive is implausibly large")
        return data

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


class _VerifyingReader(io.RawIOBase):
    """Reads a blob while hashing it; verify() compares with the expected digest."""

    def __init__(self, inner: BinaryIO, expected: str | None) -> None:
        self.inner = inner
        self.expected = expected
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(b))
        b[: len(data)] = data
        if self.expected:
            self.h.update(data)
        return len(data)

    def verify(self, what: str) -> None:
        while self.read(1 << 20):
            pass
        if self.expected and "sha256:" + self.h.hexdigest() != self.expected:
            raise InvalidInput(f"{what} does not match its digest {self.expected}: the archive is corrupt")


def _plan(src: _Source, path: str, default_name: str | None) -> Plan:
    if src.exists("manifest.json"):
        return _plan_docker(src)
    if src.exists("index.json") and src.exists("oci-layout"):
        return _plan_oci(src, default_name or _default_repo(path))
    raise InvalidInput(f"{path} is neither a docker-archive (manifest.json) nor an OCI layout "
                       "(oci-layout, index.json)")


def contents(path: str, default_name: str | None = None) -> list[tuple[str, list[str]]]:
    """(image ID, names) of every image load would make of an archive, read without loading a layer."""
    src = _Source(path)
    try:
        plan = _plan(src, path, default_name)
        return [(formats.digest(config_bytes), names) for config_bytes, _layers, names in plan]
    finally:
        src.close()


def load(stores: Stores, lookaside: Lookaside, path: str, default_name: str | None = None
         ) -> list[tuple[Image, list[str]]]:
    """Load every image of an archive; returns the images with the names they got (the caller
    enforces the trust policy on them)."""
    src = _Source(path)
    before = {img.id for img in stores.images.list()}
    made: list[str] = []  # the layers this load created, oldest first
    out: list[tuple[Image, list[str]]] = []
    try:
        plan = _plan(src, path, default_name)
        for config_bytes, layer_blobs, names in plan:
            out.append((_load_image(stores, src, config_bytes, layer_blobs, made), names))
        _import_extras(stores, lookaside, src, out)
        # the names move last, all at once: a load that fails or is killed before leaves every
        # name where it was
        stores.images.move_tags([(img.id, names) for img, names in out])
        return [(stores.images.get(img.id), names) for img, names in out]
    except CORRUPT as e:
        _undo(stores, before, out, made)
        raise InvalidInput(f"{path} is truncated or corrupt: {_why(e)}") from None
    except BaseException:
        _undo(stores, before, out, made)
        raise
    finally:
        src.close()


def _undo(stores: Stores, before: set[str], loaded: list[tuple[Image, list[str]]], made: list[str]) -> None:
    """A load that fails leaves nothing behind: the images it added and the layers it created go."""
    for img, _names in loaded:
        if img.id not in before:
            stores.images.delete(img.id)
    for lid in reversed(made):
        try:
            stores.layers.remove(lid)
        except Exception:  # noqa: BLE001, S110 - best effort: the original error is what matters
            pass


def _import_extras(stores: Stores, lookaside: Lookaside, src: _Source, loaded: list[tuple[Image, list[str]]]) -> None:
    """Signatures, and the signed manifests with their compressed blobs, carried by a berth archive."""
    ids = {img.id: img for img, _ in loaded}
    for name in src.names(f"{EXTRAS}/signatures/"):
        rel = name[len(EXTRAS) + len("/signatures/"):]
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or not re.fullmatch(r"signature-\d+", parts[-1]):
            raise HostileInput(f"archive signature path {name!r} is not a lookaside path")
        lookaside.import_signature(parts[:-1], src.read(name, limit=1 << 20))
    for name in src.names(f"{EXTRAS}/manifests/"):
        if not name.endswith(".json"):
            continue
        meta = validate.parse(src.read(name, limit=1 << 16), f"{name} in the archive")
        img = ids.get(str(meta.get("image"))) if isinstance(meta, dict) else None
        if img is None:
            continue
        data = src.read(name[: -len(".json")], limit=4 << 20)
        digest = "sha256:" + os.path.basename(name[: -len(".json")])
        if formats.digest(data) != digest:
            raise InvalidInput(f"archive manifest {digest} does not match its digest")
        _config, layers = validate.manifest(data, f"archive manifest {digest}")
        diff_ids = stores.images.config(img.id)["rootfs"]["diff_ids"]  # type: ignore[index]
        for ly, diff_id in zip(layers, diff_ids, strict=False):
            bd = str(ly["digest"])
            if not stores.blobs.has(bd):
                with src.open(f"{EXTRAS}/blobs/{bd[7:]}") as f:
                    stores.blobs.put_stream(iter(lambda f=f: f.read(1 << 20), b""), expected=bd)
            stores.manifests.add_layer_blob(diff_id, bd, str(ly.get("mediaType")), int(ly.get("size", 0)))
        stores.blobs.put(data)
        stores.manifests.add_manifest(img.id, digest, str(meta.get("mediaType") or OCI_MANIFEST))


def _default_repo(path: str) -> str:
    base = os.path.basename(os.path.normpath(path)).lower()
    for ext in (".tar.gz", ".tgz", ".tar"):
        base = base.removesuffix(ext)
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in base).strip("._-")
    return f"localhost/{cleaned or 'image'}"


Plan = list[tuple[bytes, list[tuple[str, str | None]], list[str]]]


def _plan_docker(src: _Source) -> Plan:
    manifest = validate.docker_manifest(src.read("manifest.json"), "manifest.json in the archive")
    plan: Plan = []
    for entry in manifest:
        config = src.read(entry["Config"])
        names = [str(reference.parse(t)) for t in entry.get("RepoTags") or []]
        plan.append((config, [(str(p), None) for p in entry["Layers"]], names))
    return plan


def _blob_name(digest: object) -> str:
    return "blobs/sha256/" + validate.digest(digest, "the archive")[7:]


def _read_blob(src: _Source, desc: dict[str, object]) -> bytes:
    data = src.read(_blob_name(desc.get("digest")))
    if formats.digest(data) != desc.get("digest"):
        raise InvalidInput(f"blob {desc.get('digest')} does not match its digest: the archive is corrupt")
    return data


def _plan_oci(src: _Source, default_repo: str) -> Plan:
    plan: Plan = []
    pending: list[tuple[dict[str, Any], str | None]] = [
        (d, None) for d in validate.index(src.read("index.json"), "index.json in the archive")]
    seen = 0
    while pending:
        seen += 1
        if seen > MAX_MANIFESTS:
            raise InvalidInput(f"the archive's index lists more than {MAX_MANIFESTS} manifests")
        desc, inherited = pending.pop(0)
        mt = desc.get("mediaType")
        ann = desc.get("annotations") or {}
        name = ann.get(CONTAINERD_NAME) or inherited
        ref_name = ann.get(REF_NAME)
        if not name and ref_name:
            name = ref_name if (":" in ref_name or "/" in ref_name) else f"{default_repo}:{ref_name}"
        if mt in INDEXES:
            sub = validate.index(_read_blob(src, desc), f"index {desc['digest']}")
            matches = [d for d in sub if for_this_host(d)]
            if not matches:
                raise InvalidInput("the archive's index has no image for this platform")
            pending.insert(0, (matches[0], name))
            continue
        if mt is not None and mt not in MANIFESTS:
            raise InvalidInput(f"unsupported manifest type {mt!r} in the archive")
        config_desc, layer_descs = validate.manifest(_read_blob(src, desc), f"manifest {desc['digest']}")
        config = _read_blob(src, config_desc)
        layers = [(_blob_name(ly["digest"]), str(ly["digest"])) for ly in layer_descs]
        names = [str(reference.parse(name))] if name else []
        plan.append((config, layers, names))
    return plan


def _load_image(stores: Stores, src: _Source, config_bytes: bytes, layers: list[tuple[str, str | None]],
                made: list[str]) -> Image:
    """The image's layers and record, without its names (load gives them at the end)."""
    diff_ids = list(validate.image_config(config_bytes, "the image config in the archive")["rootfs"]["diff_ids"])
    if len(diff_ids) != len(layers):
        raise InvalidInput(f"image config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
    with LayerIngest(stores.layers) as ingest:
        for (member, blob_digest), diff_id in zip(layers, diff_ids, strict=True):
            existing = ingest.next(diff_id)
            if existing is not None:
                ingest.reuse(existing)
                continue
            with src.open(member) as raw:
                # an uncompressed blob's digest is its DiffID, which applying it checks anyway
                reader = _VerifyingReader(raw, None if blob_digest == diff_id else blob_digest)
                ingest.unpack(reader, member, lambda r=reader, m=member: r.verify(f"layer {m}"))  # type: ignore[arg-type]
        made.extend(ingest.created)
        return stores.images.add_raw(config_bytes, ingest.parent, ingest.size, [])
