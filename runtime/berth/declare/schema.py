"""The desired-state document: parsing with line numbers, validation, normalisation. The container
keys and their other spellings (working_dir, network_mode, published_ports, restart_policy) come
from the option table (berth.container.options). A declaration is compared as a whole: a key it
leaves out means berth's default; berth_container's tasks (from_task) compare only what they set.

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
        volumes: ["/srv/www:/www:ro"]    # or mounts: [{source: /srv/www, target: /www, read_only: true}]
        memory: 64m
        cpus: 0.5
        pids_limit: 100
        network: host
        restart: always                 # or restart_policy: on-failure with restart_retries: 3
        state: running                  # running (or started) | healthy | stopped | present | absent
        health_cmd: wget -qO- 127.0.0.1:8080/ || exit 1
        health_interval: 2s             # with state: healthy, apply waits (healthy_timeout: seconds)
        snapshots: [before-upgrade]
        mounts: [{type: volume, source: web-data, target: /data}]
    volumes:                            # named volumes (also made on first use by a container)
      - name: web-data
        labels: {team: web}
        state: present                  # present (default) | absent (removed once no container uses it)
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from berth.container import options
from berth.container.config import ContainerConfig, OptionError, check_volume_name
from berth.declare import entries
from berth.errors import InvalidInput
from berth.record import Factory, Record

STATES = options.STATES
IMAGE_SOURCES = ("import", "pull", "load", "build")
IMAGE_KEYS = {"name", "changes", "tls_verify", "ca_file", "authfile", "require_signature", *IMAGE_SOURCES}
CONTAINER_KEYS = set(options.DECLARATION_KEYS)
VOLUME_KEYS = {"name", "labels", "state"}
VOLUME_STATES = ("present", "absent")
SECTIONS = ("images", "containers", "volumes")
MANAGED_LABEL = options.MANAGED_LABEL
MAX_FILE = 16 << 20  # a desired-state file larger than this is not one


class Node(dict):  # type: ignore[type-arg]
    """A mapping that remembers where it and each of its keys came from (for error messages):
    a line of a file, or a path into data such as containers[1].memory."""

    here: str
    at: dict[str, str]

    def where(self, key: str | None = None) -> str:
        return self.at.get(key, self.here) if key is not None else self.here


def _node(d: dict[Any, Any], here: str, at: dict[str, str]) -> Node:
    out = Node(d)
    out.here, out.at = here, at
    return out


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    values = {}
    at = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value, not a list or "
                                                    "mapping", key_node.start_mark)
        values[key] = loader.construct_object(value_node, deep=True)
        at[str(key)] = f"line {key_node.start_mark.line + 1}"
    return _node(values, f"line {node.start_mark.line + 1}", at)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]


class Declared(Record):
    """One declared container: its spec and what to do with it."""

    name: str
    config: ContainerConfig
    state: str = "running"  # running | stopped | present | absent
    snapshots: list[str] = Factory(list)
    given: frozenset[str] | None = None  # the fields a task set (None: a whole declaration, every field)
    comparisons: dict[str, str] = Factory(dict)  # field (or "*") -> strict | ignore | allow_more_present
    recreate: bool = False  # recreate even when nothing differs
    restart: bool = False  # restart a running container even when nothing differs
    pull: str = "never"  # when the image is missing: pull it (missing, always) or fail (never)
    healthy_timeout: float = options.HEALTHY_TIMEOUT  # state healthy: how long to wait for the health check


class DeclaredVolume(Record):
    name: str
    labels: dict[str, str] = Factory(dict)
    state: str = "present"  # present | absent


class Desired:
    def __init__(self, path: str, images: list[dict[str, Any]], containers: list[Declared],
                 volumes: list[DeclaredVolume] | None = None) -> None:
        self.path = path
        self.images = images
        self.containers = containers
        self.volumes = volumes or []


def _check_item(path: str, doc: Node, section: str, what: str, item: object, allowed: set[str]) -> None:
    """An entry of images/containers is a mapping of known keys (the error names where)."""
    if not isinstance(item, Node):
        raise _err(path, doc.where(section), f"each {what} must be a mapping")
    bad = set(item) - allowed
    if bad:
        k = sorted(bad, key=str)[0]
        raise _err(path, item.where(str(k)), f"unknown {what} key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _err(path: str, where: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{path} {where}: {msg}")


def from_dict(doc: dict[str, Any], source: str, base_dir: str | None = None) -> Desired:
    """A desired state given as data (Ansible module arguments); errors name `source` and the entry
    and key, e.g. `berth_state arguments containers[1].memory`."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}: expected a mapping with images, containers and volumes")
    top = _node(doc, "", {k: str(k) for k in doc})
    for section in SECTIONS:
        entries = top.get(section)
        if isinstance(entries, list):
            top[section] = [_node(e, f"{section}[{i}]", {str(k): f"{section}[{i}].{k}" for k in e})
                            if isinstance(e, dict) else e for i, e in enumerate(entries)]
    return _parse_doc(top, source, base_dir or os.getcwd())


def load(path: str) -> Desired:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise InvalidInput(f"{path}: larger than {MAX_FILE >> 20} MiB, not a desired-state file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidInput(f"{path} line {line}: not UTF-8 text "
                           f"(byte {data[e.start]:#04x} at offset {e.start})") from None
    return _parse(text, path, os.path.dirname(os.path.abspath(path)))


def _parse(text: str, path: str, base_dir: str) -> Desired:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise InvalidInput(f"{path} line {_yaml_line(e, text)}: not valid YAML ({_yaml_problem(e)})") from None
    except RecursionError:
        raise InvalidInput(f"{path}: not valid YAML (nested too deeply)") from None
    if doc is None:
        doc = _node({}, "line 1", {})
    if not isinstance(doc, Node):
        raise InvalidInput(f"{path} line 1: expected a mapping with images, containers and volumes")
    return _parse_doc(doc, path, base_dir)


def _yaml_line(e: yaml.YAMLError, text: str) -> str:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        return str(mark.line + 1)
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow (control bytes)
        return str(text[: e.position].count("\n") + 1)
    return "?"


def _yaml_problem(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.reader.ReaderError):
        code = e.character if isinstance(e.character, int) else ord(e.character)
        return f"character U+{code:04X} is not allowed"
    return " ".join(str(getattr(e, "problem", None) or e).split())


def _sections(doc: Node, path: str) -> None:
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        k = sorted(unknown, key=str)[0]
        raise _err(path, doc.where(str(k)), f"unknown key {k!r}; allowed: {', '.join(SECTIONS)}")
    for section in ("images", "containers"):  # volumes may also be a mapping (see _volumes)
        if doc.get(section) is not None and not isinstance(doc[section], list):
            raise _err(path, doc.where(section), f"{section} must be a list of mappings")


def _parse_doc(doc: Node, path: str, base_dir: str) -> Desired:
    _sections(doc, path)
    images = []
    for item in doc.get("images") or []:
        _check_item(path, doc, "images", "image", item, IMAGE_KEYS)
        if "name" not in item:
            raise _err(path, item.where(), "an image needs a name")
        sources = [s for s in IMAGE_SOURCES if s in item]
        if len(sources) != 1:
            raise _err(path, item.where(), f"image {item['name']} needs exactly one of {', '.join(IMAGE_SOURCES)}")
        src = sources[0]
        entries.check_image(item, src, lambda k, m: _err(path, item.where(k), m))  # noqa: B023 - called at once
        if src in ("import", "load") and not os.path.isabs(str(item[src])):
            item[src] = os.path.join(base_dir, str(item[src]))
        images.append(dict(item))
    containers = []
    seen: set[str] = set()
    for item in doc.get("containers") or []:
        _check_item(path, doc, "containers", "container", item, CONTAINER_KEYS)
        if "name" not in item:
            raise _err(path, item.where(), "a container needs name")
        if not entries.scalar(item["name"]) or str(item["name"]) == "":
            raise _err(path, item.where("name"), "name must be a non-empty string")
        name = str(item["name"])
        if name in seen:
            raise _err(path, item.where("name"), f"container {name} is declared twice")
        seen.add(name)
        containers.append(_container(path, item, name, base_dir))
    return Desired(path, images, containers, _volumes(path, doc))


def _volumes(path: str, doc: Node) -> list[DeclaredVolume]:
    out = []
    seen: set[str] = set()
    raw = doc.get("volumes") or []
    if isinstance(raw, dict):  # compose's spelling: a mapping of name to settings
        raw = [_node({"name": k, **(v if isinstance(v, dict) else {})}, doc.where("volumes"),
                     getattr(v, "at", {})) for k, v in raw.items()]
    if not isinstance(raw, list):
        raise _err(path, doc.where("volumes"), "volumes must be a list (or a mapping of name to settings)")
    for item in raw:
        if isinstance(item, str):
            item = _node({"name": item}, doc.where("volumes"), {})
        _check_item(path, doc, "volumes", "volume", item, VOLUME_KEYS)
        if "name" not in item:
            raise _err(path, item.where(), "a volume needs a name")
        name = str(item["name"])
        try:
            check_volume_name(name)
        except InvalidInput as e:
            raise _err(path, item.where("name"), str(e)) from None
        if name in seen:
            raise _err(path, item.where("name"), f"volume {name} is declared twice")
        seen.add(name)
        labels = item.get("labels") or {}
        if not isinstance(labels, dict) or not all(v is None or entries.scalar(v) for v in labels.values()):
            raise _err(path, item.where("labels"), f"volume {name}: labels must be a mapping of names to strings")
        state = str(item.get("state", "present"))
        if state not in VOLUME_STATES:
            raise _err(path, item.where("state"), f"volume {name}: state must be present or absent")
        out.append(DeclaredVolume(name, {str(k): "" if v is None else str(v) for k, v in labels.items()}, state))
    return out


def _container(path: str, item: Node, name: str, base_dir: str) -> Declared:
    spelled: dict[str, str] = {}

    def fail(key: str, msg: str) -> InvalidInput:
        return _err(path, item.where(key), msg)

    given = options.declared_options(item, fail, spelled)
    state = str(given.pop("state", "running"))
    state = "running" if state == "started" else state
    if state not in STATES:
        raise _err(path, item.where(spelled.get("state")), f"state must be one of {', '.join(STATES)} (or started)")
    if "image" not in given and state != "absent":
        raise _err(path, item.where(), "a container needs image")
    snapshots = options.str_list(given.pop("snapshots", None), lambda m: fail("snapshots", m), "snapshots")
    timeout = _healthy_timeout(given.pop("healthy_timeout", None), lambda m: fail("healthy_timeout", m))
    given.pop("name")
    if "env_file" in given:
        files = options.str_list(given["env_file"], lambda m: fail("env_file", m), "env_file")
        given["env_file"] = [f if os.path.isabs(f) else os.path.join(base_dir, f) for f in files]
    # a bad value is reported at its own key's line; what needs several options, at the entry's
    values = options.parse_values(
        given, spelled, lambda k, m: fail(k, f"container {name}: {m if m.startswith(k) else f'{k}: {m}'}"))
    try:
        cfg, _fields = options.build(values)
        cfg.labels[MANAGED_LABEL] = "true"
        if state != "absent":
            cfg.validate()
    except InvalidInput as e:
        raise _err(path, item.where(), f"container {name}: {e}") from None
    return Declared(name, cfg, state, snapshots, healthy_timeout=timeout)


def _healthy_timeout(v: Any, fail: Any) -> float:
    if v is None:
        return options.HEALTHY_TIMEOUT
    try:
        t = float(v)
    except (TypeError, ValueError):
        raise fail(f"healthy_timeout must be a number of seconds, not {v!r}") from None
    if not 0 < t < 1e9:
        raise fail(f"healthy_timeout must be a positive number of seconds, not {v!r}")
    return t


def from_task(params: dict[str, Any], source: str) -> Desired:
    """One container as berth_container's task gives it: only the options it sets are compared
    (unless `comparisons` says otherwise); start, stop or remove work by name alone. Errors name
    the module option and its value."""
    names = {o.name: o.ansible for o in options.OPTIONS if o.ansible}

    def fail(option: str, msg: str) -> InvalidInput:
        return InvalidInput(f"{source}: option {option}: {msg}")

    given = options.module_options(params)
    controls = {k: given.pop(k, None) for k in ("name", "state", "snapshots", "recreate", "restart", "pull",
                                                "comparisons", "healthy_timeout")}
    state = str(controls["state"] or "started")
    state = "running" if state == "started" else state
    comparisons = _comparisons(controls["comparisons"] or {}, fail)
    try:
        cfg, fields = options.build(options.parse_values(given, names, fail))
        # what the module creates is managed as a declared container is (never compared; see manager.start)
        cfg.labels[MANAGED_LABEL] = "true"
        if state != "absent":
            cfg.validate()
    except OptionError as e:
        option = options.field_option(e.field, "ansible").ansible
        raise fail(str(option), f"{e} (value {params.get(str(option))!r})") from None
    return Desired(source, [], [Declared(str(controls["name"]), cfg, state, list(controls["snapshots"] or []),
                                         fields, comparisons, bool(controls["recreate"]), bool(controls["restart"]),
                                         str(controls["pull"] or "missing"),
                                         _healthy_timeout(controls["healthy_timeout"],
                                                          lambda m: fail("healthy_timeout", m)))])


def _comparisons(raw: dict[str, Any], fail: Any) -> dict[str, str]:
    """comparisons by field: keys are module options (or their aliases, or *), values strict, ignore or
    allow_more_present (lists and mappings only)."""
    by_name = {n: o for o in options.OPTIONS if o.ansible for n in (o.ansible, *o.aliases)}
    out = {}
    for k, v in raw.items():
        if v not in options.COMPARISONS:
            raise fail("comparisons", f"{k}: {v!r} is not one of {', '.join(options.COMPARISONS)}")
        if k == "*":
            if v == options.ALLOW_MORE:
                raise fail("comparisons", "*: use strict or ignore")
            out["*"] = v
            continue
        o = by_name.get(k)
        if o is None or not o.target():
            known = sorted(n for n, x in by_name.items() if x.target())
            raise fail("comparisons", f"{k!r} is not a container option; use one of {', '.join(known)} or *")
        if v == options.ALLOW_MORE and options.PRIMARY[str(o.target())].kind not in (
                "list", "env", "map", "volumes"):
            raise fail("comparisons", f"{k}: allow_more_present is for lists and mappings")
        out[str(o.target())] = v
    return out
