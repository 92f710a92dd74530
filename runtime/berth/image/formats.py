"""Image formats in one place: media types, digests, the platform this host runs, and the OCI
manifests, indexes and image configs berth writes. Pure functions: no store, no I/O."""

from __future__ import annotations

import hashlib
import json
import os

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
# uname machine -> the GOARCH name image platforms use
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact_json(obj: object) -> bytes:
    """JSON as berth writes manifests and indexes (no spaces, keys in the order given)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def host_arch(machine: str | None = None) -> str:
    """The platform architecture of this host (or of a uname machine name)."""
    m = machine or os.uname().machine
    return GOARCH.get(m, m)


def for_this_host(desc: dict[str, object], machine: str | None = None) -> bool:
    """Whether an index entry's platform runs here (an entry without a platform does)."""
    p = desc.get("platform") or {}
    return not p or (p.get("os") in (None, "linux")  # type: ignore[union-attr]
                     and p.get("architecture") in (None, host_arch(machine)))  # type: ignore[union-attr]


def descriptor(media_type: str, digest_: str, size: int) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_, "size": size}


def manifest(config: bytes, layers: list[dict[str, object]]) -> bytes:
    """An OCI image manifest for an image config (its bytes) and layer descriptors."""
    return compact_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": descriptor(OCI_CONFIG, digest(config), len(config)), "layers": layers})


def index(manifests: list[dict[str, object]]) -> bytes:
    return compact_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


def named(desc: dict[str, object], name: str | None) -> dict[str, object]:
    """An index entry for a manifest, annotated with an image name (as containerd and docker read it)."""
    if not name:
        return dict(desc)
    return dict(desc, annotations={REF_NAME: name.rpartition(":")[2], CONTAINERD_NAME: name})


def image_config(diff_ids: list[str], created: str, config: dict[str, object],
                 history: list[dict[str, object]]) -> dict[str, object]:
    """The image config of a linux image for this host."""
    return {"architecture": host_arch(), "os": "linux", "created": created, "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}, "history": history}
