"""The shapes of the JSON documents images arrive in (image configs, OCI manifests and indexes,
their descriptors, docker-archive's manifest.json), checked before anything is stored: a document
of the wrong shape is one InvalidInput naming the document and the field, never a KeyError or a
TypeError later. Pure functions: no store, no I/O."""

from __future__ import annotations

import json
import re
from typing import Any

from berth.errors import InvalidInput
from berth.image.formats import INDEXES, MANIFESTS, OCI_CONFIG

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
LAYERS = (
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
_LISTS_OF_STRINGS = ("Env", "Cmd", "Entrypoint", "Shell", "OnBuild")
_STRINGS = ("User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image")
_MAPS = ("ExposedPorts", "Volumes")


def parse(data: bytes, what: str) -> Any:
    """JSON text (what names it in errors)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{what} is not valid JSON") from None


def _obj(v: object, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return v


def _list(v: object, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise InvalidInput(f"{what} must be a JSON list")
    return v


def _str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise InvalidInput(f"{what} must be a string")
    return v


def digest(v: object, what: str) -> str:
    if not isinstance(v, str) or not DIGEST.fullmatch(v):
        raise InvalidInput(f"{what}: unsupported or malformed digest {v!r} (sha256:<64 hex digits>)")
    return v


def _string_map(v: object, what: str) -> dict[str, str]:
    d = _obj(v, what)
    if not all(isinstance(x, str) for x in d.values()):
        raise InvalidInput(f"{what} must map names to strings")
    return d


def descriptor(v: object, what: str, media_types: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A content descriptor: digest, size, optional mediaType (one of media_types) and annotations."""
    d = _obj(v, what)
    digest(d.get("digest"), f"{what} digest")
    size = d.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"{what} size must be a non-negative integer")
    mt = d.get("mediaType")
    if mt is not None:
        _str(mt, f"{what} mediaType")
        if media_types is not None and mt not in media_types:
            raise InvalidInput(f"{what} has media type {mt!r}; expected one of {', '.join(media_types)}")
    if d.get("annotations") is not None:
        _string_map(d["annotations"], f"{what} annotations")
    if d.get("platform") is not None:
        _string_fields(_obj(d["platform"], f"{what} platform"), ("os", "architecture", "variant"),
                       f"{what} platform")
    return d


def _string_fields(d: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    for k in keys:
        if d.get(k) is not None:
            _str(d[k], f"{what} {k}")


def index(data: bytes, what: str) -> list[dict[str, Any]]:
    """An OCI index (or docker manifest list): its manifest descriptors."""
    doc = _obj(parse(data, what), what)
    return [descriptor(d, f"{what} manifests[{i}]", MANIFESTS + INDEXES)
            for i, d in enumerate(_list(doc.get("manifests"), f"{what} manifests"))]


def manifest(data: bytes, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An image manifest: its config descriptor and its layer descriptors."""
    doc = _obj(parse(data, what), what)
    mt = doc.get("mediaType")
    if mt is not None and mt not in MANIFESTS:
        raise InvalidInput(f"{what} has media type {mt!r}; expected one of {', '.join(MANIFESTS)}")
    config = descriptor(doc.get("config"), f"{what} config", CONFIGS)
    layers = [descriptor(ly, f"{what} layers[{i}]", LAYERS)
              for i, ly in enumerate(_list(doc.get("layers", []), f"{what} layers"))]
    return config, layers


def image_config(data: bytes, what: str) -> dict[str, Any]:
    """An image config as berth reads it: rootfs.diff_ids and the run settings it uses."""
    doc = _obj(parse(data, what), what)
    rootfs = _obj(doc.get("rootfs"), f"{what} rootfs")
    for i, d in enumerate(_list(rootfs.get("diff_ids"), f"{what} rootfs.diff_ids")):
        digest(d, f"{what} rootfs.diff_ids[{i}]")
    _string_fields(doc, ("created", "architecture", "os", "author"), what)
    if doc.get("history") is not None:
        for i, h in enumerate(_list(doc["history"], f"{what} history")):
            _string_fields(_obj(h, f"{what} history[{i}]"), ("created", "created_by", "comment", "author"),
                           f"{what} history[{i}]")
    if doc.get("config") is not None:
        cfg = _obj(doc["config"], f"{what} config")
        for k in _LISTS_OF_STRINGS:
            if cfg.get(k) is not None and not all(isinstance(x, str) for x in _list(cfg[k], f"{what} config.{k}")):
                raise InvalidInput(f"{what} config.{k} must be a list of strings")
        _string_fields(cfg, _STRINGS, f"{what} config")
        for k in _MAPS:
            if cfg.get(k) is not None:
                _obj(cfg[k], f"{what} config.{k}")
        if cfg.get("Labels") is not None:
            _string_map(cfg["Labels"], f"{what} config.Labels")
    return doc


def docker_manifest(data: bytes, what: str) -> list[dict[str, Any]]:
    """docker-archive's manifest.json: a list of {Config, RepoTags, Layers}."""
    entries = _list(parse(data, what), what)
    for i, e in enumerate(entries):
        at = f"{what} [{i}]"
        _str(_obj(e, at).get("Config"), f"{at} Config")
        for j, ly in enumerate(_list(e.get("Layers"), f"{at} Layers")):
            _str(ly, f"{at} Layers[{j}]")
        for j, t in enumerate(_list(e.get("RepoTags") or [], f"{at} RepoTags")):
            _str(t, f"{at} RepoTags[{j}]")
    return entries
