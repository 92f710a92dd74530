"""pull and push over the OCI distribution API.

Blobs are verified (digest and size) before anything is kept. Pulled layer blobs stay in the blob
store as they arrived, and the manifest with them, so pushing the image again — to any
repository — sends the same bytes: manifest and layer digests survive pull -> push.
"""

from __future__ import annotations

import gzip
import json
import os
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from berth.errors import InvalidInput, NotFound
from berth.image import formats
from berth.image.formats import ACCEPT, INDEXES, MANIFESTS, OCI_LAYER_GZIP, OCI_MANIFEST, for_this_host
from berth.image.ingest import LayerIngest
from berth.image.registry import Client, Registries, Response, qualified, split_reference
from berth.image.store import BlobStore, Image, Stores
from berth.progress import Progress, quiet, with_bar

if TYPE_CHECKING:
    from berth.image.signing import Trust

CHUNK = 1 << 20
MONOLITHIC_MAX = 8 << 20
UPLOAD_CHUNK = 16 << 20



def _short(d: str) -> str:
    return d[7:19]


def _iter_body(resp_body: object) -> Iterator[bytes]:
    while True:
        chunk = resp_body.read(CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            return
        yield chunk


def _client(host: str, tls_verify: bool, ca_file: str | None, authfile: str | None,
            registries: Registries | None = None) -> Client:
    return Client(host, tls_verify=tls_verify, ca_file=ca_file, authfile=authfile, registries=registries)


def _get_manifest(c: Client, repo: str, ref: str, want: str | None) -> tuple[bytes, str, str]:
    """A manifest's bytes, digest and media type, refused unless it hashes to the digest asked for
    (`want`) or, asked by tag, to the one the registry sent (Docker-Content-Digest)."""
    r = c.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": ACCEPT})
    body = r.read()
    r.close()
    digest = formats.digest(body)
    sent = r.headers.get("docker-content-digest")
    if want and digest != want:
        raise InvalidInput(f"the registry sent a manifest with digest {digest}, not {want}: refusing it")
    if sent and sent != digest:
        raise InvalidInput(f"{c.registry}: the manifest of {repo}:{ref} hashes to {digest}, but the registry "
                           f"sent it as {sent}: refusing it")
    try:
        doc = json.loads(body)
    except ValueError:
        raise InvalidInput(f"{c.registry}: the manifest of {repo}:{ref} is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{c.registry}: the manifest of {repo}:{ref} is not a JSON object")
    return body, digest, str(doc.get("mediaType") or r.headers.get("content-type", "").split(";")[0])


def _platform_manifest(c: Client, ref: str, repo: str, tag: str) -> tuple[bytes, str, str, dict[str, object]]:
    """The manifest for this host under a tag or digest (an index is resolved to this platform's
    manifest): bytes, digest, media type, document. No blob is fetched."""
    body, digest, mt = _get_manifest(c, repo, tag, tag if tag.startswith("sha256:") else None)
    doc = json.loads(body)
    if mt in INDEXES:
        matches = [d for d in doc.get("manifests", []) if isinstance(d, dict) and for_this_host(d)]
        if not matches:
            raise NotFound(f"{ref} has no image for this platform")
        want = matches[0]
        body, digest, mt = _get_manifest(c, repo, str(want["digest"]), str(want["digest"]))
        doc = json.loads(body)
        mt = doc.get("mediaType") or want.get("mediaType") or OCI_MANIFEST
    if mt not in MANIFESTS:
        raise InvalidInput(f"unsupported manifest type {mt!r} for {ref} (schema 1 manifests are not supported)")
    return body, digest, mt, doc


def remote_image(ref: str, tls_verify: bool = True, ca_file: str | None = None, authfile: str | None = None,
                 registries: Registries | None = None) -> tuple[str, str]:
    """(manifest digest, image ID) of what a reference names in its registry now, for this platform:
    only manifests are fetched, no blob."""
    host, repo, tag = split_reference(ref, registries.default if registries else None)
    c = _client(host, tls_verify, ca_file, authfile, registries)
    _body, digest, _mt, doc = _platform_manifest(c, ref, repo, tag)
    config = doc.get("config")
    if not isinstance(config, dict) or not str(config.get("digest", "")).startswith("sha256:"):
        raise InvalidInput(f"{ref}: the manifest names no config blob")
    return digest, str(config["digest"])


def remote_digest(ref: str, tls_verify: bool = True, ca_file: str | None = None, authfile: str | None = None,
                  registries: Registries | None = None) -> str | None:
    """The digest of the manifest a tag names in its registry (None: the tag is not there)."""
    host, repo, tag = split_reference(ref, registries.default if registries else None)
    c = _client(host, tls_verify, ca_file, authfile, registries)
    r = c.request("HEAD", f"/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT}, ok=(200, 404))
    r.close()
    if r.status == 404:
        return None
    sent = r.headers.get("docker-content-digest")
    if sent:
        return sent
    return _get_manifest(c, repo, tag, None)[1]


# ------------------------------------------------------------------------------- pull
def pull(stores: Stores, trust: Trust, ref: str, tls_verify: bool = True, ca_file: str | None = None,
         authfile: str | None = None, progress: Progress = quiet,
         registries: Registries | None = None) -> tuple[Image, str]:
    """Pull an image; it is tagged with the reference as given (a short name stays short)."""
    default = registries.default if registries else None
    host, repo, tag = split_reference(ref, default)
    c = _client(host, tls_verify, ca_file, authfile, registries)
    body, digest, mt, doc = _platform_manifest(c, ref, repo, tag)
    from berth.image import signing

    normalized = signing.normalize(qualified(ref, default))
    if not trust.accepts_unsigned(normalized):
        # checked before a single blob is fetched: a refused image leaves nothing behind
        signing.verify(trust, normalized, digest)
        progress(f"Signature accepted for {normalized}")
    progress(f"Manifest {digest}")
    cdesc: dict[str, object] = doc["config"]  # type: ignore[assignment]
    cr = c.request("GET", f"/v2/{repo}/blobs/{cdesc['digest']}")
    config_bytes = cr.read()
    cr.close()
    if formats.digest(config_bytes) != cdesc["digest"] or len(config_bytes) != cdesc.get("size", len(config_bytes)):
        raise InvalidInput(f"config blob {cdesc['digest']} does not match its digest or size: refusing it")
    config = json.loads(config_bytes)
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    layers = doc.get("layers", [])
    if len(diff_ids) != len(layers):
        raise InvalidInput(f"{ref}: the config lists {len(diff_ids)} layers, the manifest {len(layers)}")
    blobs = stores.blobs
    with LayerIngest(stores.layers) as ingest:
        for desc, diff_id in zip(layers, diff_ids, strict=True):
            bd = str(desc["digest"])
            existing = ingest.next(diff_id)
            if existing is not None and blobs.has(bd):
                progress(f"Layer {_short(bd)}: already present")
                ingest.reuse(existing)
                continue
            if not blobs.has(bd):
                progress(f"Copying blob {_short(bd)} ({desc.get('size', '?')} bytes)")
                _download_blob(c, blobs, repo, bd, desc.get("size"), progress)
            else:
                progress(f"Blob {_short(bd)}: already downloaded")
            stores.manifests.add_layer_blob(diff_id, bd, str(desc.get("mediaType", OCI_LAYER_GZIP)),
                                            int(desc.get("size", 0)))
            stores.manifests.add_sources([bd], host, repo)
            if existing is not None:
                ingest.reuse(existing)
                continue
            with open(blobs.path(bd), "rb") as f:
                ingest.unpack(f, bd)
        img = stores.images.add_raw(config_bytes, ingest.parent, ingest.size,
                                    [ref] if not tag.startswith("sha256:") else [])
        blobs.put(body)
        stores.manifests.add_manifest(img.id, digest, mt)
        stores.manifests.add_sources([cdesc["digest"]], host, repo)
        progress(f"Image {img.id}")
        return img, digest


def _download_blob(c: Client, blobs: BlobStore, repo: str, digest: str, size: int | None,
                   progress: Progress) -> None:
    """Fetch a layer blob, resuming a download an earlier pull left unfinished (HTTP Range)."""
    opened: list[Response] = []

    def fetch(offset: int) -> tuple[int, Iterator[bytes]]:
        for r in opened:
            r.close()
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        r = c.request("GET", f"/v2/{repo}/blobs/{digest}", headers, ok=(200, 206))
        opened.append(r)
        start = offset if r.status == 206 else 0
        if start:
            progress(f"Resuming blob {_short(digest)} at byte {start}")
        total = size - start if size is not None else None
        return start, with_bar(_iter_body(r.body), _short(digest), total, progress)

    try:
        blobs.put_resumable(fetch, digest, size)
    finally:
        for r in opened:
            r.close()


# ------------------------------------------------------------------------------- push
def manifest_for(stores: Stores, img: Image, progress: Progress = quiet) -> tuple[bytes, str]:
    """The image's manifest: the one it was pulled with if there is one (exact bytes), else a new
    OCI manifest with gzip layers (compressed once, then kept)."""
    blobs = stores.blobs
    for digest, media_type in stores.manifests.manifests(img.id):
        if blobs.has(digest):
            data = blobs.get(digest)
            doc = json.loads(data)
            if all(blobs.has(str(ly["digest"])) for ly in doc.get("layers", [])):
                return data, media_type
    descs = []
    spool = os.path.join(stores.root, "tmp")
    os.makedirs(spool, exist_ok=True)
    for ly in stores.layers.chain(img.top_layer) if img.top_layer else []:
        assert ly.diff_id is not None
        known = next((b for b in stores.manifests.layer_blobs(ly.diff_id) if blobs.has(b[0])), None)
        if known is None:
            progress(f"Compressing layer {_short(str(ly.diff_id))}")
            _size, chunks = stores.layers.tar_source(ly.id, spool)
            digest, n = blobs.put_stream(_gzip_chunks(chunks))
            stores.manifests.add_layer_blob(ly.diff_id, digest, OCI_LAYER_GZIP, n)
            descs.append(formats.descriptor(OCI_LAYER_GZIP, digest, n))
        else:
            descs.append(formats.descriptor(known[1], known[0], known[2]))
    data = formats.manifest(stores.images.config_bytes(img.id), descs)
    digest = blobs.put(data)
    stores.manifests.add_manifest(img.id, digest, OCI_MANIFEST)
    return data, OCI_MANIFEST


class _GzipSink:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, b: bytes) -> int:
        self.out.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        return None


def _gzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Deterministic gzip (no name, mtime 0) of a stream of chunks."""
    sink = _GzipSink()
    gz = gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=sink, mtime=0)  # type: ignore[arg-type]
    for chunk in chunks:
        gz.write(chunk)
        if sink.out:
            yield b"".join(sink.out)
            sink.out.clear()
    gz.close()
    if sink.out:
        yield b"".join(sink.out)


def _upload(c: Client, stores: Stores, repo: str, digest: str, size: int, progress: Progress) -> None:
    host = c.registry
    r = c.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
    r.close()
    if r.status == 200:
        progress(f"Blob {_short(digest)}: already in {repo}")
        return
    location = None
    for source in stores.manifests.sources(digest, host, repo):
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        m = c.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", {"Content-Length": "0"}, data=b"", ok=(201, 202))
        m.close()
        if m.status == 201:
            progress(f"Blob {_short(digest)}: mounted from {source}")
            return
        location = m.headers.get("location")
        break
    if location is None:
        s = c.request("POST", f"/v2/{repo}/blobs/uploads/", {"Content-Length": "0"}, data=b"", ok=(202,))
        s.close()
        location = s.headers.get("location")
    if not location:
        raise InvalidInput(f"{host}: the registry gave no upload location")
    location = urllib.parse.urljoin(c.url("/"), location)
    path = stores.blobs.path(digest)
    progress(f"Copying blob {_short(digest)} ({size} bytes)")
    with open(path, "rb") as f:
        if size <= MONOLITHIC_MAX:
            data = f.read()
            u = c.request("PUT", _with_digest(location, digest),
                          {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
                          data=data, ok=(201,))
            u.close()
            return
        offset = 0
        while True:
            chunk = f.read(UPLOAD_CHUNK)
            if not chunk:
                break
            p = c.request("PATCH", location, {"Content-Type": "application/octet-stream",
                                              "Content-Length": str(len(chunk)),
                                              "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                          data=chunk, ok=(202,))
            p.close()
            offset += len(chunk)
            location = urllib.parse.urljoin(location, p.headers.get("location", location))
            progress(f"  {_short(digest)}: {offset}/{size} bytes")
        u = c.request("PUT", _with_digest(location, digest), {"Content-Length": "0"}, data=b"", ok=(201,))
        u.close()


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}{urllib.parse.urlencode({'digest': digest})}"


def push(stores: Stores, src: str, dest: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
         authfile: str | None = None, progress: Progress = quiet, registries: Registries | None = None) -> str:
    img = stores.images.resolve(src)
    target = dest or src
    host, repo, tag = split_reference(target, registries.default if registries else None)
    if tag.startswith("sha256:"):
        raise InvalidInput("push to a tag, not a digest")
    data, mt = manifest_for(stores, img, progress)
    doc = json.loads(data)
    c = _client(host, tls_verify, ca_file, authfile, registries)
    for ly in doc.get("layers", []):
        _upload(c, stores, repo, str(ly["digest"]), int(ly["size"]), progress)
    _upload(c, stores, repo, str(doc["config"]["digest"]), int(doc["config"]["size"]), progress)
    r = c.request("PUT", f"/v2/{repo}/manifests/{tag}", {"Content-Type": mt, "Content-Length": str(len(data))},
                  data=data, ok=(201,))
    r.close()
    digest = formats.digest(data)
    sent = r.headers.get("docker-content-digest")
    if sent and sent != digest:
        raise InvalidInput(f"{host} stored the manifest as {sent}, berth sent {digest}")
    stores.manifests.add_sources([str(ly["digest"]) for ly in doc.get("layers", [])] + [str(doc["config"]["digest"])],
                                 host, repo)
    progress(f"Pushed {target}@{digest}")
    return digest
