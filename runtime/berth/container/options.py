"""Every container option once: its kind, its parser, its name on each face (CLI flags, declaration
key and the other spellings a declaration accepts, Ansible option and aliases), whether a change
applies in place or needs a new container, and how a change is worded in a plan reason.

The CLI flags (`berth run/create`), the declaration schema (`berth plan/apply -f`, `berth_state`),
the arguments of `berth_container`, and the reconciler's compare all come from this table; the
module's literal argument_spec and DOCUMENTATION, and ContainerConfig's fields, are checked against
it by tests/unit/test_options.py.

Several options may feed one ContainerConfig field (`env` and `env_file`; `volumes` and `mounts`;
`restart_policy` and `restart_retries`); the field is what is recorded and compared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from berth.container.config import (
    HEALTH_ACTIONS,
    MOUNT_TYPES,
    ContainerConfig,
    Mount,
    OptionError,
    check_volume_name,
    parse_env,
    parse_volume,
)
from berth.errors import InvalidInput
from berth.record import Record
from berth.units import parse_duration, parse_size

# update rules: how a changed value reaches an existing container
IN_PLACE = "in place"
LIMIT = "limit"  # in place while a limit is set before and after; setting one first or dropping it recreates
RECREATE = "recreate"
IGNORE = "ignore"  # not compared here (the image is compared by ID; auto_remove only matters at exit)

# comparisons (berth_container's `comparisons`, after community.docker.docker_container's)
STRICT = "strict"
ALLOW_MORE = "allow_more_present"
COMPARISONS = (STRICT, "ignore", ALLOW_MORE)

# kinds: how a value is given and normalised
KINDS = ("str", "int", "float", "bool", "list", "argv", "map", "env", "env_file", "size", "volumes", "mounts",
         "restart", "retries", "dict", "duration")
MANAGED_LABEL = "berth.managed"  # set on containers a declaration created; never compared


class Option(Record):
    name: str
    kind: str
    field: str | None = ""  # the ContainerConfig field it sets ("" = its name; None = a property of the task)
    cli: tuple[str, ...] = ()  # flags, or one positional name; () = not on the CLI
    key: str | None = None  # declaration key; None = not declarable
    key_aliases: tuple[str, ...] = ()  # other spellings a declaration accepts
    ansible: str | None = None  # berth_container option; None = not on the module
    aliases: tuple[str, ...] = ()  # the module option's aliases
    update: str = RECREATE
    word: str = ""  # the subject of a change's reason ("" = the field with spaces)
    reason: str = "value"  # value: "a → b"; size: sizes; env / map: per key; set: per element
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    default: Any = None  # the field's value when no face sets it
    module_default: Any = None  # the module option's default (task properties only)
    needs_value: bool = False  # map on the CLI: KEY=VALUE where VALUE is required

    def target(self) -> str | None:
        return self.name if self.field == "" else self.field

    def subject(self) -> str:
        return self.word or (self.target() or self.name).replace("_", " ")


OPTIONS: tuple[Option, ...] = (
    Option("name", "str", field=None, cli=("--name",), key="name", ansible="name",
           help="container name (default: generated)"),
    Option("image", "str", cli=("image",), key="image", ansible="image", update=IGNORE),
    Option("command", "argv", cli=("command",), key="command", ansible="command"),
    Option("entrypoint", "argv", cli=("--entrypoint",), key="entrypoint", ansible="entrypoint",
           help="override the image's entrypoint"),
    Option("env", "env", cli=("-e", "--env"), key="env", ansible="env", reason="env", metavar="K=V",
           help="set an environment variable"),
    Option("env_file", "env_file", field="env", cli=("--env-file",), key="env_file", ansible="env_file",
           help="read KEY=VALUE lines from a file"),
    Option("workdir", "str", cli=("-w", "--workdir"), key="workdir", key_aliases=("working_dir",),
           ansible="working_dir", aliases=("workdir",), word="working dir",
           help="working directory inside the container"),
    Option("user", "str", cli=("-u", "--user"), key="user", ansible="user", help="user[:group] (name or id) to run as"),
    Option("group_add", "list", cli=("--group-add",), key="group_add", ansible="groups", word="group",
           reason="set", metavar="GROUP", help="add a supplementary group (name or gid)"),
    Option("hostname", "str", cli=("--hostname",), key="hostname", ansible="hostname",
           help="container host name (default: the short ID)"),
    Option("volumes", "volumes", cli=("-v", "--volume"), key="volumes", ansible="volumes", word="mount",
           reason="set", metavar="SRC:DST[:ro]",
           help="bind mount a host path (absolute) or mount a named volume (created on first use)"),
    Option("mounts", "mounts", field="volumes", cli=("--mount",), key="mounts", ansible="mounts",
           metavar="type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]",
           help="a mount given as fields, as docker's --mount (tmpfs: tmpfs-size=, tmpfs-mode=)"),
    Option("tmpfs", "list", cli=("--tmpfs",), key="tmpfs", ansible="tmpfs", metavar="DST[:OPTS]",
           help="mount a tmpfs"),
    Option("read_only", "bool", cli=("--read-only",), key="read_only", ansible="read_only", default=False,
           help="mount the root file system read-only"),
    Option("tty", "bool", cli=("-t", "--tty"), key="tty", ansible="tty", default=False,
           help="give the container a pseudo-terminal (docker's -t: also without one on berth's stdin)"),
    Option("labels", "map", cli=("-l", "--label"), key="labels", ansible="labels", word="label", reason="map",
           metavar="K=V"),
    Option("network", "str", cli=("--network", "--net"), key="network", key_aliases=("network_mode",),
           ansible="network_mode", aliases=("network",), default="bridge",
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
    Option("pid", "str", cli=("--pid",), key="pid_mode", ansible="pid_mode", choices=("host",), metavar="host",
           help="host: the container shares the host's PID namespace (sees and signals the host's processes)"),
    Option("runtime", "str", cli=("--runtime",), key="runtime", ansible="runtime", choices=("crun", "runc"),
           help="OCI runtime (default: crun where it works, else runc)"),
    Option("storage_opts", "map", cli=("--storage-opt",), key="storage_opts", ansible="storage_opts",
           metavar="size=N", needs_value=True,
           help="limit the writable layer (overlay on xfs mounted with prjquota, or btrfs qgroups)"),
    Option("auto_remove", "bool", cli=("--rm",), ansible="auto_remove", update=IGNORE, default=False,
           help="remove the container when it exits"),
    Option("restart_policy", "restart", field="restart", cli=("--restart",), key="restart",
           key_aliases=("restart_policy",), ansible="restart_policy", update=IN_PLACE, word="restart",
           default="no", metavar="POLICY",
           help="no (default), always, unless-stopped or on-failure[:N] (berth restarts it on exit)"),
    Option("restart_retries", "retries", field="restart", key="restart_retries", ansible="restart_retries"),
    Option("ports", "list", cli=("-p", "--publish"), key="ports", key_aliases=("published_ports",),
           ansible="published_ports", aliases=("ports",), metavar="[IP:]HOST:CTR[/proto]",
           help="publish a container port on the host (bridge networks)"),
    Option("ip", "str", cli=("--ip",), key="ip", ansible="ip", help="fixed IPv4 address on the network"),
    Option("health_cmd", "str", cli=("--health-cmd",), key="health_cmd", ansible="health_cmd", metavar="CMD",
           help="command to run to check health (through /bin/sh -c in the container)"),
    Option("health_interval", "duration", cli=("--health-interval",), key="health_interval",
           ansible="health_interval", metavar="DURATION", help="time between running the check (default 30s)"),
    Option("health_timeout", "duration", cli=("--health-timeout",), key="health_timeout", ansible="health_timeout",
           metavar="DURATION", help="maximum time to allow one check to run (default 30s)"),
    Option("health_retries", "int", cli=("--health-retries",), key="health_retries", ansible="health_retries",
           help="consecutive failures needed to report unhealthy (default 3)"),
    Option("health_start_period", "duration", cli=("--health-start-period",), key="health_start_period",
           ansible="health_start_period", metavar="DURATION",
           help="start period for the container to initialize before failures count (default 0s)"),
    Option("no_healthcheck", "bool", cli=("--no-healthcheck",), key="no_healthcheck", ansible="no_healthcheck",
           default=False, help="disable any container-specified HEALTHCHECK"),
    Option("health_on_failure", "str", cli=("--health-on-failure",), key="health_on_failure",
           ansible="health_on_failure", default="none", choices=HEALTH_ACTIONS,
           help="action when the container turns unhealthy: none (default), kill, restart or stop"),
    # properties of the declaration / task rather than of the container's spec
    Option("snapshots", "list", field=None, key="snapshots", ansible="snapshots"),
    Option("state", "str", field=None, key="state", ansible="state", default="running", module_default="started",
           choices=("started", "running", "healthy", "stopped", "present", "absent")),
    Option("healthy_timeout", "float", field=None, key="healthy_timeout", ansible="healthy_timeout"),
    Option("recreate", "bool", field=None, ansible="recreate", module_default=False),
    Option("restart", "bool", field=None, ansible="restart", module_default=False),
    Option("pull", "str", field=None, ansible="pull", module_default="missing", choices=("missing", "always", "never")),
    Option("comparisons", "dict", field=None, ansible="comparisons"),
)

BY_NAME = {o.name: o for o in OPTIONS}
FIELDS = tuple(dict.fromkeys(o.target() for o in OPTIONS if o.target()))  # in ContainerConfig's order
PRIMARY = {f: next(o for o in OPTIONS if o.target() == f) for f in FIELDS}  # its update rule and wording
DECLARATION_KEYS = frozenset(n for o in OPTIONS if o.key for n in (o.key, *o.key_aliases))
STATES = ("running", "healthy", "stopped", "present", "absent")  # "started" is read as "running"
HEALTHY_TIMEOUT = 300.0  # seconds state: healthy waits by default


def field_option(field: str, face: str) -> Option:
    """The option of a face ("cli", "key", "ansible") that sets a field, for error messages."""
    return next((o for o in OPTIONS if o.target() == field and getattr(o, face)), PRIMARY[field])


# ---- parsing one option's value (shared by the faces)

def str_list(value: object, fail: Callable[[str], InvalidInput], what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) for x in value):
        raise fail(f"{what} must be a list of strings")
    return [str(x) for x in value]


MOUNT_KEYS = {"src": "source", "dst": "target", "destination": "target", "ro": "read_only",
              "readonly": "read_only"}
MOUNT_FIELDS = ("type", "source", "target", "read_only", "tmpfs_size", "tmpfs_mode")


def parse_mount(spec: object, what: str) -> Mount:
    """A mount given as fields, docker's --mount: a mapping (type, source, target, read_only,
    tmpfs_size, tmpfs_mode) or the CLI's type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]
    [,tmpfs-size=64m][,tmpfs-mode=1770]. A bind's source is a host path, a volume's its name."""
    if isinstance(spec, str):
        fields: dict[str, object] = {}
        for part in spec.split(","):
            k, sep, v = part.partition("=")
            fields[k.strip()] = v if sep else True
        spec = fields
    if not isinstance(spec, dict):
        raise InvalidInput(f"{what} must be a mapping with type, source, target and read_only")
    d = {MOUNT_KEYS.get(str(k), str(k).replace("-", "_")): v for k, v in spec.items() if v is not None}
    unknown = set(d) - set(MOUNT_FIELDS)
    if unknown:
        raise InvalidInput(f"{what}: unknown field {sorted(unknown)[0]!r}; use {', '.join(MOUNT_FIELDS)}")
    kind = str(d.get("type", "bind"))
    if kind not in MOUNT_TYPES:
        raise InvalidInput(f"{what}: type {kind!r} is not supported; use bind, volume or tmpfs")
    ro = d.get("read_only", False)
    readonly = ro if isinstance(ro, bool) else str(ro).lower() in ("1", "true", "yes")
    target = str(d.get("target") or "")
    if not target.startswith("/"):
        raise InvalidInput(f"{what} needs target, an absolute path in the container")
    if kind == "tmpfs":
        if d.get("source"):
            raise InvalidInput(f"{what}: a tmpfs has no source")
        opts = []
        if d.get("tmpfs_size") is not None:
            opts.append(f"size={d['tmpfs_size']}")
        if d.get("tmpfs_mode") is not None:
            opts.append(f"mode={d['tmpfs_mode']}")
        why = _check_tmpfs([f"{target}:{','.join(opts)}"]) if opts else None
        if why:
            raise InvalidInput(f"{what}: {why}")
        return Mount("", target, readonly, "tmpfs", ",".join(opts))
    if d.get("tmpfs_size") is not None or d.get("tmpfs_mode") is not None:
        raise InvalidInput(f"{what}: tmpfs-size and tmpfs-mode are for type=tmpfs")
    source = str(d.get("source") or "")
    if not source:
        raise InvalidInput(f"{what} needs source and target" + (" (the volume's name)" if kind == "volume" else ""))
    if kind == "bind" and not source.startswith("/"):
        raise InvalidInput(f"{what}: a bind mount's source must be an absolute host path")
    if kind == "volume":
        check_volume_name(source, f"{what}: volume name")
    return Mount(source, target, readonly, kind)


def _restart(policy: str | None, retries: int | None) -> str | None:
    if retries is None:
        return policy
    name = (policy or "on-failure").partition(":")[0]
    if name != "on-failure":
        raise OptionError("restart", f"restart retries need the on-failure restart policy, not {name!r}")
    return f"on-failure:{retries}"


def _combine(field: str, parts: dict[str, Any]) -> Any:
    """A field's value from the options that set it."""
    if field == "env":
        files = parts.get("env_file") or []
        return (parse_env([], files) if files else []) + (parts.get("env") or [])
    if field == "volumes":
        return (parts.get("volumes") or []) + (parts.get("mounts") or [])
    if field == "restart":
        return _restart(parts.get("restart_policy"), parts.get("restart_retries"))
    return next(iter(parts.values()))


def build(values: dict[str, Any]) -> tuple[ContainerConfig, frozenset[str]]:
    """A ContainerConfig from parsed option values (by option name; only the given ones, the other
    fields keep their defaults), and the fields they set."""
    parts: dict[str, dict[str, Any]] = {}
    for name, v in values.items():
        f = BY_NAME[name].target()
        if f:
            parts.setdefault(f, {})[name] = v
    out: dict[str, Any] = {"image": ""}
    for f, p in parts.items():
        v = _combine(f, p)
        out[f] = PRIMARY[f].default if v is None else v
    return ContainerConfig(**out), frozenset(parts)


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
        n = float(v) if o.kind == "float" else int(v)
    except (TypeError, ValueError):
        raise fail(f"invalid {label} {v!r}: use {'a number' if o.kind == 'float' else 'an integer'}") from None
    if n != n or n in (float("inf"), float("-inf")):
        raise fail(f"invalid {label} {v!r}: use a finite number")
    return n


def _digits(text: str) -> bool:
    """Only ASCII digits (str.isdigit also takes '²', which int() refuses)."""
    return text.isascii() and text.isdigit()


def _check_memory(v: int) -> str | None:
    return f"more than the largest limit ({MAX_BYTES} bytes)" if v > MAX_BYTES else None


def _check_pids(v: int) -> str | None:
    return None if v in (-1, 0) or 1 <= v <= MAX_PIDS else f"use -1 (unlimited) or 1 to {MAX_PIDS}"


def _check_user(v: str) -> str | None:
    user, _, group = v.partition(":")
    if not user or not v.isprintable() or any(ch.isspace() for ch in v):
        return "use NAME or ID, optionally :GROUP or :GID"
    if any(_digits(part) and int(part) > MAX_ID for part in (user, group)):
        return f"ids are 0 to {MAX_ID}"
    return None


def _check_groups(v: list[str]) -> str | None:
    for g in v:
        if not g or not g.isprintable() or any(ch.isspace() or ch == ":" for ch in g):
            return f"{g!r}: use a group name or gid"
        if _digits(g) and int(g) > MAX_ID:
            return f"{g!r}: gids are 0 to {MAX_ID}"
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
        if val.endswith("%") and _digits(val[:-1]):
            return None
        try:
            parse_size(val, "size")
        except InvalidInput:
            return f"size={val} is no size (e.g. 64m or 50%)"
        return None
    if key == "mode":
        return None if len(val) <= 5 and all(ch in "01234567" for ch in val) and val else f"mode={val} is not octal"
    if key in ("uid", "gid"):
        return None if _digits(val) and int(val) <= MAX_ID else f"{key}={val} is not an id"
    if key in ("nr_inodes", "nr_blocks"):
        return None if _digits(val[:-1]) and val[-1] in "kmgKMG" or _digits(val) else f"{key}={val} is no number"
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
    "memory": _check_memory, "pids_limit": _check_pids, "user": _check_user, "group_add": _check_groups,
    "hostname": _check_hostname,
    "tmpfs": _check_tmpfs,
}


def checked(o: Option, value: Any, label: str, fail: Callable[[str], InvalidInput]) -> Any:
    """value, or the one-line error saying why the runtime or the kernel would refuse it."""
    check = _CHECKS.get(o.name)
    why = check(value) if check is not None and value not in (None, "", []) else None
    if o.choices and value is not None and value not in o.choices:
        why = f"use one of {', '.join(o.choices)}"
    if why:
        raise fail(f"invalid {label} {why}" if o.kind == "list" else f"invalid {label} {value!r}: {why}")
    return value


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
        elif o.kind in ("list", "map", "env", "env_file", "volumes", "mounts"):
            kw.update(action="append", default=[])
        elif o.default is not None:  # numbers are parsed in _cli_value: a bad one is exit 125, not argparse's 2
            kw["default"] = o.default
        if o.metavar or o.choices:  # choices are checked with the other values: a bad one is 125, not 2
            kw["metavar"] = o.metavar or "{" + ",".join(o.choices) + "}"
        if o.help:
            kw["help"] = o.help
        sp.add_argument(*o.cli, **kw)
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
    try:
        return checked(o, _cli_raw(o, a), o.cli[-1], InvalidInput)
    except OptionError:
        raise
    except InvalidInput as e:  # a flag's value: an OptionError, which create and run refuse with 125
        raise OptionError(str(o.target()), str(e)) from None


def _cli_raw(o: Option, a: argparse.Namespace) -> Any:
    if not o.cli[0].startswith("-"):
        v = getattr(a, o.cli[0])
        return (list(v) if v else None) if o.kind == "argv" else v
    v = getattr(a, "ctr_" + o.name)
    if o.kind == "argv":
        return None if v is None else ([v] if v else [])
    if o.kind == "env":
        return parse_env(v)
    if o.kind == "volumes":
        return [parse_volume(x) for x in v]
    if o.kind == "mounts":
        return [parse_mount(x, f"--mount {x!r}") for x in v]
    if o.kind == "map":
        return _cli_map(o, v)
    if o.kind == "size":
        return parse_size(v, f"{o.subject()} limit") if v else None
    if o.kind in ("list", "env_file"):
        return list(v)
    if o.kind in ("int", "float"):
        return _number(o, v, o.cli[-1], InvalidInput)
    if o.kind == "duration":
        return parse_duration(v, o.cli[-1]) if v is not None else None
    return v


def config_from_cli(a: argparse.Namespace) -> ContainerConfig:
    cfg, _given = build({o.name: _cli_value(o, a) for o in OPTIONS if o.cli and o.target()})
    return cfg


# ---- the declaration and module faces

def _declared_value(o: Option, v: Any, fail: Callable[[str], InvalidInput], what: str) -> Any:
    """One declared (or module) option's value, normalised; fail(message) makes the error."""
    why = _wrong_type(o, v)
    if why:
        raise fail(f"{what} must be {why}")
    if o.kind == "argv":
        return str_list(v, fail, what)
    if o.kind == "env":
        if isinstance(v, dict):
            return [f"{k}={'' if x is None else x}" for k, x in sorted(v.items())]
        return str_list(v, fail, what)
    if o.kind == "volumes":
        return [parse_volume(x) for x in str_list(v, fail, what)]
    if o.kind == "mounts":
        if not isinstance(v, list):
            raise fail(f"{what} must be a list")
        # a string is a volume (SRC:DST[:ro]), as mounts were written before volumes existed
        return [parse_volume(m) if isinstance(m, str) else parse_mount(m, f"{what}[{i}]") for i, m in enumerate(v)]
    if o.kind in ("list", "env_file"):
        return str_list(v, fail, what)
    if o.kind in ("map", "dict"):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise fail(f"{what} must be a mapping" + (", e.g. {size: 2g}" if o.needs_value else ""))
        return {str(k): str(x) for k, x in v.items()}
    if o.kind == "bool":
        return bool(v) if v is not None else o.default
    if o.kind == "size":
        return parse_size(str(v), f"{o.subject()} limit") if v is not None else None
    if o.kind in ("int", "float", "retries"):
        return _number(o, v, what, fail)
    if o.kind == "duration":
        return parse_duration(v, what) if v not in (None, "") else None
    if o.kind == "restart" or o.default is None:
        return str(v) if v not in (None, "") else None
    return str(v) if v not in (None, "") else o.default


def _plain(v: object) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _wrong_type(o: Option, v: Any) -> str | None:
    """What a declared value of the wrong type should have been (None: its type is right)."""
    if v is None:
        return None
    if o.kind == "bool" and not isinstance(v, bool):
        return "true or false"
    if o.kind in ("str", "restart", "size") and not _plain(v):
        return "a string"
    if o.kind in ("map", "env") and isinstance(v, dict) and not all(x is None or _plain(x) for x in v.values()):
        return "a mapping of names to strings"
    return None


def parse_values(given: dict[str, Any], names: dict[str, str],
                 fail: Callable[[str, str], InvalidInput]) -> dict[str, Any]:
    """Parsed values of the options given (by option name); `names` maps an option to the name the
    face knows it by, and fail(name, message) makes an error that points at it."""
    out: dict[str, Any] = {}
    for name, v in given.items():
        what = names[name]
        try:
            o = BY_NAME[name]
            out[name] = checked(o, _declared_value(o, v, InvalidInput, what), what, InvalidInput)
        except InvalidInput as e:
            raise fail(what, str(e)) from None
    return out


def declared_options(item: dict[str, Any], fail: Callable[[str, str], InvalidInput],
                     spelled: dict[str, str]) -> dict[str, Any]:
    """The options of a declared container by option name (each given once, under any of its
    spellings); `spelled` records the spelling used, for error messages."""
    out: dict[str, Any] = {}
    for o in OPTIONS:
        if not o.key:
            continue
        names = [n for n in (o.key, *o.key_aliases) if n in item]
        if len(names) > 1:
            raise fail(names[1], f"{names[0]} and {names[1]} are the same option; give one")
        if names:
            out[o.name] = item[names[0]]
            spelled[o.name] = names[0]
    return out


def module_options(params: dict[str, Any]) -> dict[str, Any]:
    """berth_container's arguments by option name: the ones the task set."""
    return {o.name: params[o.ansible] for o in OPTIONS if o.ansible and params.get(o.ansible) is not None}


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
    return Mount(**v).describe()


def reasons(o: Option, a: Any, b: Any) -> list[str]:
    """How a change of o's field from a to b (plain values, as in to_dict) is worded."""
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
    """Whether changing o's field from a to b can be applied to the existing container."""
    return o.update == IN_PLACE or (o.update == LIMIT and a is not None and b is not None)


def _unmanaged(field: str, v: Any) -> Any:
    if field == "labels" and isinstance(v, dict) and MANAGED_LABEL in v:
        return {k: x for k, x in v.items() if k != MANAGED_LABEL}
    return v


def _contains(field: str, have: Any, want: Any) -> bool:
    """allow_more_present: everything wanted is there (a list's elements, a mapping's items)."""
    if field == "env":
        have, want = _kv(have or []), _kv(want or [])
    if isinstance(want, dict):
        return all(k in (have or {}) and have[k] == x for k, x in want.items())
    if isinstance(want, list):
        return all(x in (have or []) for x in want)
    return bool(have == want)


def comparison(field: str, given: frozenset[str] | None, comparisons: dict[str, str]) -> str:
    """How a field is compared: as asked per field (or for "*"); else strict when the task sets it (or
    when a whole declaration is compared, given=None) and ignored when it does not."""
    if field in comparisons:
        return comparisons[field]
    if "*" in comparisons:
        return comparisons["*"]
    return STRICT if given is None or field in given else "ignore"


def differing(old: ContainerConfig, new: ContainerConfig, given: frozenset[str] | None = None,
              comparisons: dict[str, str] | None = None) -> list[str]:
    """The fields whose difference counts, in table order."""
    a, b = old.to_dict(), new.to_dict()
    out = []
    for f in FIELDS:
        o = PRIMARY[f]
        mode = comparison(f, given, comparisons or {})
        if o.update == IGNORE or mode == "ignore":
            continue
        va, vb = _unmanaged(f, a.get(f)), _unmanaged(f, b.get(f))
        if va == vb or (mode == ALLOW_MORE and _contains(f, va, vb)):
            continue
        out.append(f)
    return out


def compare(old: ContainerConfig, new: ContainerConfig, given: frozenset[str] | None = None,
            comparisons: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(reasons that can be applied in place, reasons that need a new container)."""
    a, b = old.to_dict(), new.to_dict()
    same: list[str] = []
    recreate: list[str] = []
    for f in differing(old, new, given, comparisons):
        o = PRIMARY[f]
        va, vb = _unmanaged(f, a.get(f)), _unmanaged(f, b.get(f))
        (same if in_place(o, va, vb) else recreate).extend(reasons(o, va, vb))
    return same, recreate


def merged(old: ContainerConfig, new: ContainerConfig, fields: list[str]) -> ContainerConfig:
    """The spec a container gets when the given fields change: the old one with those replaced."""
    return old.replace(**{f: getattr(new, f) for f in fields})
