"""Every container option once: its kind, its parser, its name on each face (CLI flags, declaration
key, Ansible option and aliases), whether a change applies in place or needs a new container, and
how a change is worded in a plan reason.

The CLI flags (`berth run/create`), the declaration schema (`berth plan/apply -f`, `berth_state`),
the reconciler's compare and the `berth_container` module all come from this table; the module's
literal argument_spec and DOCUMENTATION, and ContainerConfig's fields, are checked against it by
tests/unit/test_options.py.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from berth.container.config import ContainerConfig, parse_env, parse_size, parse_volume
from berth.errors import InvalidInput
from berth.record import Record

# update rules: how a changed value reaches an existing container
IN_PLACE = "in place"
LIMIT = "limit"  # in place while a limit is set before and after; setting one first or dropping it recreates
RECREATE = "recreate"
IGNORE = "ignore"  # not compared here (the image is compared by ID; auto_remove is the CLI's alone)

# kinds: how a value is given and normalised
KINDS = ("str", "int", "float", "bool", "list", "argv", "map", "env", "size", "volumes")


class Option(Record):
    name: str  # the ContainerConfig field (or, with config=False, a property of the container record)
    kind: str
    config: bool = True
    cli: tuple[str, ...] = ()  # flags, or one positional name; () = not on the CLI
    key: str | None = None  # declaration key; None = not declarable
    ansible: str | None = None  # berth_container option; None = not on the module
    aliases: tuple[str, ...] = ()  # the module's aliases
    update: str = RECREATE
    word: str = ""  # the subject of a change's reason ("" = the name with spaces)
    reason: str = "value"  # value: "a → b"; size: sizes; env / map: per key; set: per element
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    needs_value: bool = False  # map on the CLI: KEY=VALUE where VALUE is required

    def subject(self) -> str:
        return self.word or self.name.replace("_", " ")


OPTIONS: tuple[Option, ...] = (
    Option("name", "str", config=False, cli=("--name",), key="name", ansible="name",
           help="container name (default: generated)"),
    Option("image", "str", cli=("image",), key="image", ansible="image", update=IGNORE),
    Option("command", "argv", cli=("command",), key="command", ansible="command"),
    Option("entrypoint", "argv", cli=("--entrypoint",), key="entrypoint", ansible="entrypoint",
           help="override the image's entrypoint"),
    Option("env", "env", cli=("-e", "--env"), key="env", ansible="env", reason="env", metavar="K=V",
           help="set an environment variable"),
    Option("workdir", "str", cli=("-w", "--workdir"), key="workdir", ansible="workdir",
           help="working directory inside the container"),
    Option("user", "str", cli=("-u", "--user"), key="user", ansible="user", help="user[:group] (name or id) to run as"),
    Option("hostname", "str", cli=("--hostname",), key="hostname", ansible="hostname",
           help="container host name (default: the short ID)"),
    Option("volumes", "volumes", cli=("-v", "--volume"), key="mounts", ansible="mounts", word="mount", reason="set",
           metavar="SRC:DST[:ro]", help="bind mount"),
    Option("tmpfs", "list", cli=("--tmpfs",), key="tmpfs", ansible="tmpfs", metavar="DST[:OPTS]",
           help="mount a tmpfs"),
    Option("read_only", "bool", cli=("--read-only",), key="read_only", ansible="read_only", default=False,
           help="mount the root file system read-only"),
    Option("labels", "map", cli=("-l", "--label"), key="labels", ansible="labels", word="label", reason="map",
           metavar="K=V"),
    Option("network", "str", cli=("--network", "--net"), key="network", ansible="network", default="bridge",
           help="bridge (default: the berth network), none, host, or a network's name"),
    Option("memory", "size", cli=("-m", "--memory"), key="memory", ansible="memory", update=LIMIT, reason="size",
           help="memory limit (e.g. 64m)"),
    Option("cpus", "float", cli=("--cpus",), key="cpus", ansible="cpus", update=LIMIT,
           help="CPU quota in CPUs (e.g. 0.5)"),
    Option("pids_limit", "int", cli=("--pids-limit",), key="pids_limit", ansible="pids_limit", update=LIMIT,
           help="maximum number of processes (-1: unlimited)"),
    Option("blkio_weight", "int", cli=("--blkio-weight",), key="blkio_weight", ansible="blkio_weight",
           help="block IO weight, 10 to 1000"),
    Option("cap_add", "list", cli=("--cap-add",), key="cap_add", ansible="cap_add"),
    Option("cap_drop", "list", cli=("--cap-drop",), key="cap_drop", ansible="cap_drop"),
    Option("privileged", "bool", cli=("--privileged",), key="privileged", ansible="privileged", default=False,
           help="all capabilities, all devices, no masked paths"),
    Option("runtime", "str", cli=("--runtime",), key="runtime", ansible="runtime", choices=("crun", "runc"),
           help="OCI runtime (default: crun where it works, else runc)"),
    Option("storage_opts", "map", cli=("--storage-opt",), key="storage_opts", ansible="storage_opts",
           metavar="size=N", needs_value=True,
           help="limit the writable layer (overlay on xfs mounted with prjquota, or btrfs qgroups)"),
    Option("auto_remove", "bool", cli=("--rm",), update=IGNORE, default=False,
           help="remove the container when it exits"),
    Option("restart", "str", cli=("--restart",), key="restart", ansible="restart", update=IN_PLACE, default="no",
           metavar="POLICY", help="no (default), always, unless-stopped or on-failure[:N] (berth restarts it on exit)"),
    Option("ports", "list", cli=("-p", "--publish"), key="ports", ansible="ports", metavar="[IP:]HOST:CTR[/proto]",
           help="publish a container port on the host (bridge networks)"),
    Option("ip", "str", cli=("--ip",), key="ip", ansible="ip", help="fixed IPv4 address on the network"),
    Option("snapshots", "list", config=False, key="snapshots", ansible="snapshots"),
    Option("state", "str", config=False, key="state", ansible="state", default="running",
           choices=("running", "stopped", "present", "absent")),
)

BY_NAME = {o.name: o for o in OPTIONS}
CONFIG = tuple(o for o in OPTIONS if o.config)
DECLARATION_KEYS = frozenset(o.key for o in OPTIONS if o.key)


# ---- the CLI face

def add_cli_flags(sp: argparse.ArgumentParser) -> None:
    """`berth run/create`'s container flags (the positionals IMAGE and COMMAND last)."""
    positional = []
    for o in OPTIONS:
        if not o.cli:
            continue
        if not o.cli[0].startswith("-"):
            positional.append(o)
            continue
        kw: dict[str, Any] = {"dest": "ctr_" + o.name}
        if o.kind == "bool":
            kw["action"] = "store_true"
        elif o.kind in ("list", "map", "env", "volumes"):
            kw.update(action="append", default=[])
        elif o.default is not None:  # numbers are parsed in _cli_value: a bad one is exit 125, not argparse's 2
            kw["default"] = o.default
        if o.choices:
            kw["choices"] = list(o.choices)
        if o.metavar:
            kw["metavar"] = o.metavar
        if o.help:
            kw["help"] = o.help
        sp.add_argument(*o.cli, **kw)
        if o.name == "env":
            sp.add_argument("--env-file", dest="ctr_env_file", action="append", default=[],
                            help="read KEY=VALUE lines from a file")
    for o in positional:
        if o.kind == "argv":
            sp.add_argument(o.cli[0], nargs=argparse.REMAINDER)
        else:
            sp.add_argument(o.cli[0])


def _cli_map(o: Option, items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k or (o.needs_value and not sep):
            raise InvalidInput(f"invalid {o.cli[-1]} {item!r}: use {o.metavar if o.needs_value else 'KEY=VALUE'}")
        out[k] = v
    return out


def _cli_value(o: Option, a: argparse.Namespace) -> Any:
    return checked(o, _cli_raw(o, a), o.cli[-1], InvalidInput)


def _cli_raw(o: Option, a: argparse.Namespace) -> Any:
    if not o.cli[0].startswith("-"):
        v = getattr(a, o.cli[0])
        return (list(v) if v else None) if o.kind == "argv" else v
    v = getattr(a, "ctr_" + o.name)
    if o.kind == "argv":
        return None if v is None else ([v] if v else [])
    if o.kind == "env":
        return parse_env(v, a.ctr_env_file)
    if o.kind == "volumes":
        return [parse_volume(x) for x in v]
    if o.kind == "map":
        return _cli_map(o, v)
    if o.kind == "size":
        return parse_size(v, f"{o.subject()} limit") if v else None
    if o.kind == "list":
        return list(v)
    if o.kind in ("int", "float"):
        return _number(o, v, o.cli[-1], InvalidInput)
    return v


def config_from_cli(a: argparse.Namespace) -> ContainerConfig:
    return ContainerConfig(**{o.name: _cli_value(o, a) for o in CONFIG})


def cli_name(a: argparse.Namespace) -> str | None:
    return a.ctr_name  # type: ignore[no-any-return]


# ---- values checked on every face, before the runtime sees them

MAX_BYTES = (1 << 63) - 1  # what the runtimes (int64) and the kernel's page counters take
MAX_PIDS = 4194304  # PID_MAX_LIMIT: pids.max refuses more
MAX_ID = 4294967294  # (uid_t)-1 is "no id"
MAX_HOSTNAME = 64  # HOST_NAME_MAX: sethostname refuses more
TMPFS_FLAGS = frozenset(("rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
                         "relatime", "strictatime", "nodiratime", "diratime", "sync", "async"))
TMPFS_HUGE = frozenset(("never", "always", "within_size", "advise", "deny", "force"))


def _number(o: Option, v: Any, label: str, fail: Callable[[str], InvalidInput]) -> int | float | None:
    if v is None:
        return None
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v) if o.kind == "int" else float(v)
    except (TypeError, ValueError):
        raise fail(f"invalid {label} {v!r}: use {'an integer' if o.kind == 'int' else 'a number'}") from None
    if n != n or n in (float("inf"), float("-inf")):
        raise fail(f"invalid {label} {v!r}: use a finite number")
    return n


def _check_memory(v: int) -> str | None:
    return f"more than the largest limit ({MAX_BYTES} bytes)" if v > MAX_BYTES else None


def _check_pids(v: int) -> str | None:
    return None if v in (-1, 0) or 1 <= v <= MAX_PIDS else f"use -1 (unlimited) or 1 to {MAX_PIDS}"


def _check_user(v: str) -> str | None:
    user, _, group = v.partition(":")
    if not user or not v.isprintable() or any(ch.isspace() for ch in v):
        return "use NAME or ID, optionally :GROUP or :GID"
    if any(part.isdigit() and int(part) > MAX_ID for part in (user, group)):
        return f"ids are 0 to {MAX_ID}"
    return None


def _check_hostname(v: str) -> str | None:
    if len(v) > MAX_HOSTNAME:
        return f"at most {MAX_HOSTNAME} characters"
    if not v.isprintable() or any(ch.isspace() or ch == "/" for ch in v):
        return "letters, digits, '.', '-' and '_' only"
    return None


def _tmpfs_option(opt: str) -> str | None:
    key, eq, val = opt.partition("=")
    if not eq:
        return None if key in TMPFS_FLAGS else f"unknown option {key!r}"
    if key == "size":
        if val.endswith("%") and val[:-1].isdigit():
            return None
        try:
            parse_size(val, "size")
        except InvalidInput:
            return f"size={val} is no size (e.g. 64m or 50%)"
        return None
    if key == "mode":
        return None if len(val) <= 5 and all(ch in "01234567" for ch in val) and val else f"mode={val} is not octal"
    if key in ("uid", "gid"):
        return None if val.isdigit() and int(val) <= MAX_ID else f"{key}={val} is not an id"
    if key in ("nr_inodes", "nr_blocks"):
        return None if val[:-1].isdigit() and val[-1] in "kmgKMG" or val.isdigit() else f"{key}={val} is no number"
    if key == "huge":
        return None if val in TMPFS_HUGE else f"huge={val}: use one of {', '.join(sorted(TMPFS_HUGE))}"
    return f"unknown option {key!r}"


def _check_tmpfs(v: list[str]) -> str | None:
    for t in v:
        _dest, _, opts = t.partition(":")
        for opt in opts.split(",") if opts else []:
            why = _tmpfs_option(opt)
            if why:
                return f"{t!r}: {why}"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "memory": _check_memory, "pids_limit": _check_pids, "user": _check_user, "hostname": _check_hostname,
    "tmpfs": _check_tmpfs,
}


def checked(o: Option, value: Any, label: str, fail: Callable[[str], InvalidInput]) -> Any:
    """value, or the one-line error saying why the runtime or the kernel would refuse it."""
    check = _CHECKS.get(o.name)
    why = check(value) if check is not None and value not in (None, "", []) else None
    if why:
        raise fail(f"invalid {label} {why}" if o.kind == "list" else f"invalid {label} {value!r}: {why}")
    return value


# ---- the declaration face (and the module, which hands its arguments over as a declaration)

def str_list(value: object, fail: Callable[[str], InvalidInput], key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) for x in value):
        raise fail(f"{key} must be a list of strings")
    return [str(x) for x in value]


def _declared_value(o: Option, item: dict[str, Any], fail: Callable[[str, str], InvalidInput]) -> Any:
    key = o.key or ""

    def err(msg: str) -> InvalidInput:
        return fail(key, msg)

    return checked(o, _declared_raw(o, item, key, err), key, err)


def _declared_raw(o: Option, item: dict[str, Any], key: str, err: Callable[[str], InvalidInput]) -> Any:
    v = item.get(key)

    if o.kind == "argv":
        return str_list(v, err, key) if key in item else None
    if o.kind == "env":
        return [f"{k}={x}" for k, x in sorted((v or {}).items())] if isinstance(v, dict) else str_list(v, err, key)
    if o.kind == "volumes":
        return [parse_volume(x) for x in str_list(v, err, key)]
    if o.kind == "list":
        return str_list(v, err, key)
    if o.kind == "map":
        v = v or {}
        if not isinstance(v, dict):
            raise err(f"{key} must be a mapping" + (", e.g. {size: 2g}" if o.needs_value else ""))
        return {str(k): str(x) for k, x in v.items()}
    if o.kind == "bool":
        return bool(v if v is not None else o.default)
    if o.kind == "size":
        return parse_size(str(v), f"{o.subject()} limit") if v is not None else None
    if o.kind in ("int", "float"):
        return _number(o, v, key, err)
    if o.default is not None:
        return str(v if v is not None else o.default)
    return str(v) if v else None


def config_from_declaration(item: dict[str, Any], fail: Callable[[str, str], InvalidInput]) -> ContainerConfig:
    """The normalised ContainerConfig of a declared container; fail(key, message) makes the error."""
    return ContainerConfig(**{o.name: _declared_value(o, item, fail) if o.key else o.default for o in CONFIG})


def declaration_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """A declared container from berth_container's arguments (unset ones left out)."""
    return {o.key: params[o.ansible] for o in OPTIONS
            if o.key and o.ansible and params.get(o.ansible) not in (None, [], {})}


# ---- compare: what differs between two specs, and whether it can change in place

def _kv(items: list[str]) -> dict[str, str]:
    return dict(i.split("=", 1) if "=" in i else (i, "") for i in items)


def _size(n: object) -> str:
    if not isinstance(n, int):
        return str(n)
    for unit, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def _volume(v: dict[str, Any]) -> str:
    return f"{v['source']}:{v['destination']}{':ro' if v['readonly'] else ''}"


def reasons(o: Option, a: Any, b: Any) -> list[str]:
    """How a change of option o from a to b (plain values, as in to_dict) is worded."""
    w = o.subject()
    if o.reason == "env":
        ea, eb = _kv(a or []), _kv(b or [])
        return ([f"{w} {k} removed" for k in sorted(ea.keys() - eb.keys())]
                + [f"{w} {k} added" for k in sorted(eb.keys() - ea.keys())]
                + [f"{w} {k} changed" for k in sorted(ea.keys() & eb.keys()) if ea[k] != eb[k]])
    if o.reason == "map":
        ma, mb = a or {}, b or {}
        return [f"{w} {k} {'removed' if k not in mb else 'added' if k not in ma else 'changed'}"
                for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)]
    if o.reason == "set":
        sa = {_volume(x) if isinstance(x, dict) else str(x) for x in a or []}
        sb = {_volume(x) if isinstance(x, dict) else str(x) for x in b or []}
        return [f"{w} {m} removed" for m in sorted(sa - sb)] + [f"{w} {m} added" for m in sorted(sb - sa)]
    if o.reason == "size":
        return [f"{w} {_size(a) if a else 'unlimited'} → {_size(b) if b else 'unlimited'}"]
    return [f"{w} {json.dumps(a)} → {json.dumps(b)}"]


def in_place(o: Option, a: Any, b: Any) -> bool:
    """Whether changing o from a to b can be applied to the existing container."""
    return o.update == IN_PLACE or (o.update == LIMIT and a is not None and b is not None)


def compare(old: ContainerConfig, new: ContainerConfig) -> tuple[list[str], list[str]]:
    """(reasons that can be applied in place, reasons that need a new container)."""
    a, b = old.to_dict(), new.to_dict()
    same: list[str] = []
    recreate: list[str] = []
    for o in CONFIG:
        va, vb = a.get(o.name), b.get(o.name)
        if o.update == IGNORE or va == vb:
            continue
        (same if in_place(o, va, vb) else recreate).extend(reasons(o, va, vb))
    return same, recreate
