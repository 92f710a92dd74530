"""Image configs berth writes validate against the OCI image-spec schema."""

from __future__ import annotations

import os

import jsonschema
import pytest

from tests.oci_schema import IMAGE_SPEC, validate_image_json


@pytest.mark.skipif(not os.path.isdir(IMAGE_SPEC),
                    reason="golang-github-opencontainers-image-spec-dev is not installed")
def test_imported_config_validates(make_engine, busybox_tar: str) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("vfs")
    with open(busybox_tar, "rb") as f:
        img = e.import_image(f, "busybox", message="from busybox-static")
    cfg = e.images.config(img.id)
    validate_image_json("config", cfg)
    bad = dict(cfg, architecture=64)
    with pytest.raises(jsonschema.ValidationError):
        validate_image_json("config", bad)
