"""Validate JSON that berth writes against the official OCI schemas that Debian ships."""

from __future__ import annotations

import json
import os

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

IMAGE_SPEC = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema"


def _registry(folder: str) -> Registry:
    resources = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                doc = json.load(f)
            res = Resource.from_contents(doc, default_specification=DRAFT4)
            resources.append((name, res))
            for base in ("https://opencontainers.org/schema/image/", "https://opencontainers.org/schema/"):
                resources.append((base + name, res))
            if "id" in doc:
                resources.append((doc["id"], res))
    return Registry().with_resources(resources)


def validate_image_json(kind: str, doc: object) -> None:
    """kind: config, image-manifest, image-index, image-layout."""
    path = os.path.join(IMAGE_SPEC, f"{kind}-schema.json")
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft4Validator(schema, registry=_registry(IMAGE_SPEC))
    validator.validate(doc)
