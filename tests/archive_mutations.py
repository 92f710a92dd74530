"""Damaged copies of valid image archives (docker-archive and OCI layout tars), for the tests that
feed them to `berth load` and `berth import`: truncations, byte flips, JSON field mutations,
missing blobs, wrong media types, a member whose header claims more bytes than the file has."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

Edit = Callable[[bytes], bytes | None]  # a member's new content; None drops the member


def members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        return [(m, t.extractfile(m).read() if m.isreg() else None) for m in t.getmembers()]  # type: ignore[union-attr]


def rewrite(archive: bytes, pick: Callable[[str], bool], edit: Edit) -> bytes:
    """The archive with the members pick() chooses replaced by edit(content)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for m, data in members(archive):
            if data is not None and pick(m.name):
                new = edit(data)
                if new is None:
                    continue
                data = new
            if data is None:
                t.addfile(m)
            else:
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))
    return out.getvalue()


def edit_json(fn: Callable[[Any], Any]) -> Edit:
    return lambda data: json.dumps(fn(json.loads(data))).encode()


def claim_size(archive: bytes, name: str, size: int) -> bytes:
    """The archive with member `name`'s header claiming `size` bytes (checksum fixed)."""
    offset = next(m.offset for m, _ in members(archive) if m.name == name)
    hdr = bytearray(archive[offset:offset + 512])
    hdr[124:136] = b"%011o\0" % size
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return archive[:offset] + bytes(hdr) + archive[offset + 512:]


def flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x41]) + data[at + 1:]


def layer_name(archive: bytes) -> str:
    return next(m.name for m, _ in members(archive) if m.name.endswith("layer.tar"))


def config_name(archive: bytes) -> str:
    return next(m.name for m, _ in members(archive) if m.name.endswith(".json") and "/" not in m.name
                and m.name != "manifest.json")


def oci_blobs(archive: bytes) -> dict[str, str]:
    """The OCI layout's manifest, config and layer blob member names."""
    by_name = {m.name: d for m, d in members(archive)}
    index = json.loads(by_name["index.json"])
    mname = "blobs/sha256/" + index["manifests"][0]["digest"][7:]
    manifest = json.loads(by_name[mname])  # type: ignore[arg-type]
    return {"manifest": mname, "config": "blobs/sha256/" + manifest["config"]["digest"][7:],
            "layer": "blobs/sha256/" + manifest["layers"][0]["digest"][7:]}


def docker_cases(da: bytes) -> dict[str, bytes]:
    """Named damaged docker-archives (each must be refused in one line, leaving nothing behind)."""
    layer, config = layer_name(da), config_name(da)
    is_manifest: Callable[[str], bool] = lambda n: n == "manifest.json"  # noqa: E731
    is_config: Callable[[str], bool] = lambda n: n == config  # noqa: E731
    is_layer: Callable[[str], bool] = lambda n: n == layer  # noqa: E731
    first = lambda fn: edit_json(lambda d: [fn(d[0])])  # noqa: E731
    return {
        "truncated in the first header": da[:100],
        "truncated in the first member": da[:1024],
        "truncated half-way through the layer": da[:len(da) // 2],
        "gzip that ends early": gzip.compress(da)[:len(da) // 4],
        "layer member claims more bytes than the file has": claim_size(da, layer, len(da) * 4),
        "manifest.json claims more bytes than the file has": claim_size(da, "manifest.json", len(da) * 4),
        "manifest.json not JSON": rewrite(da, is_manifest, lambda d: d[:30]),
        "manifest.json a string": rewrite(da, is_manifest, lambda d: b'"x"'),
        "manifest.json entry a number": rewrite(da, is_manifest, lambda d: b"[1]"),
        "Layers not a list": rewrite(da, is_manifest, first(lambda e: {**e, "Layers": "x"})),
        "Layers of numbers": rewrite(da, is_manifest, first(lambda e: {**e, "Layers": [5]})),
        "RepoTags of numbers": rewrite(da, is_manifest, first(lambda e: {**e, "RepoTags": [5]})),
        "RepoTags a bad reference": rewrite(da, is_manifest, first(lambda e: {**e, "RepoTags": ["Bad Ref"]})),
        "Config missing": rewrite(da, is_manifest, first(lambda e: {**e, "Config": "nope.json"})),
        "Config outside the archive": rewrite(da, is_manifest, first(lambda e: {**e, "Config": "../../etc/passwd"})),
        "layer missing": rewrite(da, is_layer, lambda d: None),
        "config not JSON": rewrite(da, is_config, lambda d: d[:40]),
        "config a list": rewrite(da, is_config, lambda d: b"[1]"),
        "config diff_ids a string": rewrite(da, is_config, edit_json(
            lambda c: {**c, "rootfs": {"type": "layers", "diff_ids": "abc"}})),
        "config diff_ids bad digests": rewrite(da, is_config, edit_json(
            lambda c: {**c, "rootfs": {"type": "layers", "diff_ids": [5]}})),
        "config diff_ids wrong": rewrite(da, is_config, edit_json(
            lambda c: {**c, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}})),
        "config.config a string": rewrite(da, is_config, edit_json(lambda c: {**c, "config": "x"})),
        "config Env of numbers": rewrite(da, is_config, edit_json(lambda c: {**c, "config": {"Env": [1]}})),
        "layer byte flipped": rewrite(da, is_layer, lambda d: flip(d, 5000)),
        "layer cut short": rewrite(da, is_layer, lambda d: d[:len(d) // 3]),
        "layer header damaged": rewrite(da, is_layer, lambda d: flip(d, 512 * 40 + 20)),
    }


def oci_cases(oci: bytes) -> dict[str, bytes]:
    """Named damaged OCI layout tars."""
    blobs = oci_blobs(oci)
    is_index: Callable[[str], bool] = lambda n: n == "index.json"  # noqa: E731
    entry = lambda fn: edit_json(lambda d: {**d, "manifests": [fn(d["manifests"][0])]})  # noqa: E731
    return {
        "truncated half-way": oci[:len(oci) // 2],
        'index "manifests": "x"': rewrite(oci, is_index, edit_json(lambda d: {**d, "manifests": "x"})),
        "index manifests of numbers": rewrite(oci, is_index, edit_json(lambda d: {**d, "manifests": [1]})),
        "index a list": rewrite(oci, is_index, edit_json(lambda d: [d])),
        "index not JSON": rewrite(oci, is_index, lambda d: d[:20]),
        "index media type wrong": rewrite(oci, is_index, entry(lambda e: {**e, "mediaType": "text/plain"})),
        "index media type a number": rewrite(oci, is_index, entry(lambda e: {**e, "mediaType": 5})),
        "index digest of nothing": rewrite(oci, is_index, entry(lambda e: {**e, "digest": "sha256:" + "0" * 64})),
        "index digest a number": rewrite(oci, is_index, entry(lambda e: {**e, "digest": 7})),
        "index annotations a string": rewrite(oci, is_index, entry(lambda e: {**e, "annotations": "x"})),
        "index name a number": rewrite(oci, is_index, entry(
            lambda e: {**e, "annotations": {"io.containerd.image.name": 5}})),
        "manifest blob missing": rewrite(oci, lambda n: n == blobs["manifest"], lambda d: None),
        "config blob missing": rewrite(oci, lambda n: n == blobs["config"], lambda d: None),
        "layer blob missing": rewrite(oci, lambda n: n == blobs["layer"], lambda d: None),
        "manifest does not match its digest": rewrite(oci, lambda n: n == blobs["manifest"], lambda d: d + b" "),
        "layer does not match its digest": rewrite(oci, lambda n: n == blobs["layer"], lambda d: flip(d, 7000)),
        "layer cut short": rewrite(oci, lambda n: n == blobs["layer"], lambda d: d[:len(d) // 2]),
    }


def oci_manifest_cases(oci: bytes) -> dict[str, bytes]:
    """OCI layouts whose manifest is changed (and the index re-pointed at it, so digests match)."""
    import hashlib

    blobs = oci_blobs(oci)
    by_name = {m.name: d for m, d in members(oci)}
    manifest = json.loads(by_name[blobs["manifest"]])  # type: ignore[arg-type]
    out = {}
    for name, new in {
        "manifest config a string": {**manifest, "config": "x"},
        "manifest config media type wrong": {**manifest, "config": {**manifest["config"], "mediaType": "text/x"}},
        "manifest layers a mapping": {**manifest, "layers": {"a": 1}},
        "manifest layer media type wrong": {**manifest, "layers": [{**manifest["layers"][0],
                                                                    "mediaType": "application/x-unknown"}]},
        "manifest layer digest malformed": {**manifest, "layers": [{**manifest["layers"][0], "digest": "md5:x"}]},
        "manifest media type wrong": {**manifest, "mediaType": "text/plain"},
    }.items():
        data = json.dumps(new).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with_blob = rewrite(oci, lambda n: n == blobs["manifest"], lambda d, data=data: data)  # type: ignore[misc]
        out[name] = _rename_blob(with_blob, blobs["manifest"], "blobs/sha256/" + digest[7:], digest, len(data))
    return out


def _rename_blob(archive: bytes, old: str, new: str, digest: str, size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for m, data in members(archive):
            if m.name == old:
                m.name = new
            if m.name == "index.json":
                index = json.loads(data)  # type: ignore[arg-type]
                index["manifests"][0].update(digest=digest, size=size)
                data = json.dumps(index).encode()
            if data is None:
                t.addfile(m)
            else:
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))
    return out.getvalue()


def import_cases(rootfs: bytes) -> dict[str, bytes]:
    """Damaged rootfs tars for `berth import`."""
    import bz2
    import lzma

    ms = members(rootfs)
    middle = ms[len(ms) // 2][0]
    last = [m for m, _ in ms if m.isreg() and m.size > 0][-1]
    return {
        "empty": b"",
        "garbage": bytes(range(256)) * 8,
        "truncated in the second header": rootfs[:1100],
        "truncated half-way": rootfs[:len(rootfs) // 2],
        "a header damaged half-way": flip(rootfs, middle.offset + 20),
        "last member claims more bytes than the file has": claim_size(rootfs, last.name, len(rootfs) * 2),
        "gzip that ends early": gzip.compress(rootfs)[: len(rootfs) // 8],
        "xz that ends early": lzma.compress(rootfs)[:20000],
        "bzip2 that ends early": bz2.compress(rootfs)[:20000],
    }
