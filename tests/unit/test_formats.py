"""berth.image.formats: media types, platform matching, manifests, indexes and image configs
(pure functions: no root, no store)."""

from __future__ import annotations

import json
import os

import pytest

from berth.image import formats

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _validate(kind: str, doc: object) -> None:
    from tests.oci_schema import IMAGE_SPEC, validate_image_json

    if not os.path.isdir(IMAGE_SPEC):
        pytest.skip(f"the OCI image-spec schemas are not installed ({IMAGE_SPEC})")
    validate_image_json(kind, doc)


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"),
                                               ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64")])
def test_host_arch(machine: str, arch: str) -> None:
    assert formats.host_arch(machine) == arch


@pytest.mark.parametrize(("platform", "machine", "runs"), [
    (None, "armv7l", True),
    ({"os": "linux", "architecture": "arm"}, "armv7l", True),
    ({"os": "linux", "architecture": "amd64"}, "armv7l", False),
    ({"os": "linux", "architecture": "amd64"}, "x86_64", True),
    ({"os": "linux", "architecture": "arm64"}, "aarch64", True),
    ({"os": "windows", "architecture": "amd64"}, "x86_64", False),
    ({"architecture": "amd64"}, "x86_64", True),
])
def test_for_this_host(platform: dict[str, str] | None, machine: str, runs: bool) -> None:
    desc: dict[str, object] = {"mediaType": formats.OCI_MANIFEST, "digest": EMPTY, "size": 0}
    if platform is not None:
        desc["platform"] = platform
    assert formats.for_this_host(desc, machine) is runs


def test_media_types() -> None:
    assert formats.MANIFESTS == (formats.OCI_MANIFEST, formats.DOCKER_MANIFEST)
    assert formats.INDEXES == (formats.OCI_INDEX, formats.DOCKER_LIST)
    assert set(formats.ACCEPT.split(", ")) == set(formats.MANIFESTS + formats.INDEXES)
    assert formats.OCI_LAYER_GZIP == formats.OCI_LAYER + "+gzip"


def test_digest_and_compact_json() -> None:
    assert formats.digest(b"") == EMPTY
    assert formats.compact_json({"b": 1, "a": [1, 2]}) == b'{"b":1,"a":[1,2]}'


def test_manifest_names_its_config_and_layers() -> None:
    config = formats.compact_json(formats.image_config([EMPTY], "2024-01-01T00:00:00Z", {}, []))
    layer = formats.descriptor(formats.OCI_LAYER_GZIP, "sha256:" + "a" * 64, 123)
    data = formats.manifest(config, [layer])
    assert data == formats.manifest(config, [layer])  # deterministic: the digest is stable
    doc = json.loads(data)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert doc["mediaType"] == formats.OCI_MANIFEST and doc["schemaVersion"] == 2
    assert doc["config"] == {"mediaType": formats.OCI_CONFIG, "digest": formats.digest(config), "size": len(config)}
    assert doc["layers"] == [layer]
    assert b" " not in data
    _validate("image-manifest", doc)


def test_index_names_its_images() -> None:
    m = formats.descriptor(formats.OCI_MANIFEST, "sha256:" + "b" * 64, 400)
    doc = json.loads(formats.index([formats.named(m, "example.com/app:1.0"), formats.named(m, None)]))
    assert doc["mediaType"] == formats.OCI_INDEX
    first, second = doc["manifests"]
    assert first["annotations"] == {formats.REF_NAME: "1.0", formats.CONTAINERD_NAME: "example.com/app:1.0"}
    assert "annotations" not in second and second == m
    _validate("image-index", doc)


def test_image_config_is_for_this_host() -> None:
    cfg = formats.image_config([EMPTY], "2024-01-01T00:00:00Z", {"Cmd": ["sh"]},
                               [{"created": "2024-01-01T00:00:00Z", "created_by": "berth import"}])
    assert cfg["architecture"] == formats.host_arch() and cfg["os"] == "linux"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [EMPTY]}
    _validate("config", cfg)
