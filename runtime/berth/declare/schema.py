"""The desired-state document: parsing with line numbers, validation, normalisation.

    images:
      - name: busybox:latest
        import: /path/rootfs.tar        # or pull: REF, load: FILE, build: {context: DIR, dockerfile: F}
        changes: ['CMD ["sh"]']         # with import
      - name: 127.0.0.1:5000/team/app:v1
        pull: 127.0.0.1:5000/team/app:v1
        tls_verify: false
    containers:
      - name: web
        image: busybox:latest
        command: [httpd, -f, -p, "8080"]
        env: {GREETING: hello}
        mounts: ["/srv/www:/www:ro"]
        memory: 64m
        cpus: 0.5
        pids_limit: 100
        network: host
        restart: always
        state: running                  # running | stopped | present | absent
        snapshots: [before-upgrade]
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from berth.container import options
from berth.container.config import ContainerConfig
from berth.errors import InvalidInput

STATES = ("running", "stopped", "present", "absent")
IMAGE_SOURCES = ("import", "pull", "load", "build")
IMAGE_KEYS = {"name", "changes", "tls_verify", "ca_file", "authfile", "require_signature", *IMAGE_SOURCES}
CONTAINER_KEYS = set(options.DECLARATION_KEYS)
MANAGED_LABEL = "berth.managed"


class Node(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key (for error messages)."""

    lines: dict[str, int]
    line: int


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    out = Node()
    out.lines = {}
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]


class Desired:
    def __init__(self, path: str, images: list[dict[str, Any]], containers: list[tuple[ContainerConfig, str, str,
                 list[str]]]) -> None:
        self.path = path
        self.images = images
        self.containers = containers  # (config, name, state, snapshots)


def _check_item(path: str, doc: Node, section: str, what: str, item: object, allowed: set[str]) -> None:
    """An entry of images/containers is a mapping of known keys (the error names the line)."""
    if not isinstance(item, Node):
        raise _err(path, doc.lines.get(section, 1), f"each {what} must be a mapping")
    bad = set(item) - allowed
    if bad:
        k = sorted(bad)[0]
        raise _err(path, item.lines[k], f"unknown {what} key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _err(path: str, line: int, msg: str) -> InvalidInput:
    return InvalidInput(f"{path} line {line}: {msg}")


def _str_list(path: str, node: Node, key: str) -> list[str]:
    return options.str_list(node.get(key), lambda msg: _err(path, node.lines[key], msg), key)


def from_dict(doc: dict[str, Any], source: str, base_dir: str | None = None) -> Desired:
    """A desired state given as data (Ansible module arguments); errors name `source`."""
    return _parse(yaml.safe_dump(doc, sort_keys=False), source, base_dir or os.getcwd())


def load(path: str) -> Desired:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from None
    return _parse(text, path, os.path.dirname(os.path.abspath(path)))


def _parse(text: str, path: str, base_dir: str) -> Desired:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InvalidInput(f"{path} line {mark.line + 1 if mark else '?'}: not valid YAML "
                           f"({getattr(e, 'problem', e)})") from None
    if doc is None:
        doc = Node()
        doc.lines, doc.line = {}, 1
    if not isinstance(doc, Node):
        raise InvalidInput(f"{path}: expected a mapping with images and containers")
    unknown = set(doc) - {"images", "containers"}
    if unknown:
        k = sorted(unknown)[0]
        raise _err(path, doc.lines[k], f"unknown key {k!r}; allowed: images, containers")
    images = []
    for item in doc.get("images") or []:
        _check_item(path, doc, "images", "image", item, IMAGE_KEYS)
        if "name" not in item:
            raise _err(path, item.line, "an image needs a name")
        sources = [s for s in IMAGE_SOURCES if s in item]
        if len(sources) != 1:
            raise _err(path, item.line, f"image {item['name']} needs exactly one of {', '.join(IMAGE_SOURCES)}")
        src = sources[0]
        if src in ("import", "load") and not os.path.isabs(str(item[src])):
            item[src] = os.path.join(base_dir, str(item[src]))
        images.append(dict(item))
    containers = []
    seen: set[str] = set()
    for item in doc.get("containers") or []:
        _check_item(path, doc, "containers", "container", item, CONTAINER_KEYS)
        for req in ("name", "image"):
            if req not in item:
                raise _err(path, item.line, f"a container needs {req}")
        name = str(item["name"])
        if name in seen:
            raise _err(path, item.lines["name"], f"container {name} is declared twice")
        seen.add(name)
        state = str(item.get("state", "running"))
        if state not in STATES:
            raise _err(path, item.lines.get("state", item.line), f"state must be one of {', '.join(STATES)}")
        try:
            cfg = to_config(path, item)
            cfg.validate()
        except InvalidInput as e:
            if str(e).startswith(path):
                raise
            raise _err(path, item.line, f"container {name}: {e}") from None
        containers.append((cfg, name, state, _str_list(path, item, "snapshots")))
    return Desired(path, images, containers)


def to_config(path: str, item: Node) -> ContainerConfig:
    """The normalised ContainerConfig a declared container is created from (and compared by)."""
    cfg = options.config_from_declaration(item, lambda key, msg: _err(path, item.lines.get(key, item.line), msg))
    cfg.labels[MANAGED_LABEL] = "true"
    return cfg
