"""The normalised description a container is created from (recorded with the container, so that
later comparisons are spec-to-spec) and the parsing of user-facing values (sizes, cpus, volumes)."""

from __future__ import annotations

import re

from berth.errors import InvalidInput
from berth.record import Factory, Record


class OptionError(InvalidInput):
    """A container option's value is wrong; `field` names the ContainerConfig field, so that each face
    (CLI flag, declaration key, module option) can say which of its options it was."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


MOUNT_TYPES = ("bind", "volume", "tmpfs")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # docker's rule: at least two characters


class Mount(Record):
    """A mount into the container: a host path (bind), a named volume (source is its name) or a
    tmpfs (no source; options such as size=64m,mode=1777)."""

    source: str
    destination: str
    readonly: bool = False
    type: str = "bind"
    options: str = ""

    def to_dict(self) -> dict[str, object]:
        """A bind mount is recorded as before volumes existed (source, destination, readonly)."""
        d = super().to_dict()
        if d["type"] == "bind":
            del d["type"]
        if not d["options"]:
            del d["options"]
        return d

    def describe(self) -> str:
        """SRC:DST[:ro] as -v spells it (tmpfs:DST[:OPTS] for a tmpfs)."""
        if self.type == "tmpfs":
            return f"tmpfs:{self.destination}" + (f":{self.options}" if self.options else "") + \
                (":ro" if self.readonly else "")
        return f"{self.source}:{self.destination}{':ro' if self.readonly else ''}"


def check_volume_name(name: str, what: str = "volume name") -> str:
    if not VOLUME_NAME_RE.match(name) or len(name) > 255:
        raise InvalidInput(f"invalid {what} {name!r}: use at least two letters, digits, '_', '.' or '-' "
                           "(starting with a letter or digit)")
    return name


def parse_volume(spec: str) -> Mount:
    """-v SRC:DST[:ro|rw]: SRC is a host path (absolute) or a named volume's name."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidInput(f"invalid volume {spec!r}: use /host/path:/container/path[:ro|rw] or "
                           "NAME:/container/path[:ro|rw]")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidInput(f"invalid volume mode {mode!r} in {spec!r}: use ro or rw")
    if not dst.startswith("/"):
        raise InvalidInput(f"invalid volume {spec!r}: the container path must be absolute")
    if src.startswith("/"):
        return Mount(src, dst, mode == "ro")
    if not VOLUME_NAME_RE.match(src):
        raise InvalidInput(f"invalid volume {spec!r}: the source must be an absolute host path or a volume "
                           "name (letters, digits, '_', '.', '-'; at least two characters)")
    return Mount(src, dst, mode == "ro", "volume")


def parse_env(items: list[str], env_files: list[str] | None = None) -> list[str]:
    """KEY=VALUE entries (env files first, the command line after, so it wins); a bare KEY takes
    the caller's value (docker's rule) or is dropped."""
    import os

    out: list[str] = []
    for path in env_files or []:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise InvalidInput(f"cannot read env file {path}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", line):
                raise InvalidInput(f"{path} line {n}: expected KEY=VALUE")
            out.append(line)
    for item in items:
        key = item.split("=", 1)[0]
        if not key:
            raise InvalidInput(f"invalid environment variable {item!r}: the name is empty")
        out.append(item)
    resolved: list[str] = []
    for item in out:
        if "=" in item:
            resolved.append(item)
        elif item in os.environ:
            resolved.append(f"{item}={os.environ[item]}")
    return resolved


def merge_env(base: list[str], override: list[str]) -> list[str]:
    """Image env overridden by the container's, keeping the image's order."""
    order: list[str] = []
    values: dict[str, str] = {}
    for item in base + override:
        k, _, v = item.partition("=")
        if k not in values:
            order.append(k)
        values[k] = v
    return [f"{k}={values[k]}" for k in order]


HEALTH_ACTIONS = ("none", "kill", "restart", "stop")


class ContainerConfig(Record):
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = Factory(list)
    workdir: str | None = None
    user: str | None = None
    group_add: list[str] = Factory(list)
    hostname: str | None = None
    volumes: list[Mount] = Factory(list)
    tmpfs: list[str] = Factory(list)
    read_only: bool = False
    tty: bool = False
    labels: dict[str, str] = Factory(dict)
    network: str = "bridge"
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    cap_add: list[str] = Factory(list)
    cap_drop: list[str] = Factory(list)
    privileged: bool = False
    pid: str | None = None
    runtime: str | None = None
    storage_opts: dict[str, str] = Factory(dict)
    auto_remove: bool = False
    restart: str = "no"
    ports: list[str] = Factory(list)
    ip: str | None = None
    health_cmd: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_retries: int | None = None
    health_start_period: float | None = None
    no_healthcheck: bool = False
    health_on_failure: str = "none"

    def bridge_network(self) -> str | None:
        """The CNI network the container joins (None for none/host)."""
        if self.network in ("none", "host"):
            return None
        return "berth" if self.network == "bridge" else self.network

    def restart_policy(self) -> tuple[str, int | None]:
        """("no" | "always" | "unless-stopped" | "on-failure", max retries or None)."""
        name, _, n = self.restart.partition(":")
        return name, int(n) if n else None

    def validate(self) -> None:
        if not re.fullmatch(r"no|always|unless-stopped|on-failure(:\d+)?", self.restart):
            raise OptionError("restart", f"invalid restart policy {self.restart!r}: use no, always, unless-stopped "
                              "or on-failure[:N]")
        if self.restart != "no" and self.auto_remove:
            raise OptionError("auto_remove", "a restart policy and auto-removal conflict: a removed container "
                              "cannot be restarted")
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,30}", self.network):
            raise OptionError("network", f"invalid network {self.network!r}: use none, host, bridge or a "
                              "network's name")
        if (self.ports or self.ip) and self.bridge_network() is None:
            raise OptionError("ports" if self.ports else "ip", "published ports and a fixed IP need a bridge "
                              f"network (bridge or a network's name), not {self.network!r}")
        for p in self.ports:
            from berth.container.network import parse_port

            try:
                parse_port(p)
            except InvalidInput as e:
                raise OptionError("ports", str(e)) from None
        if self.ip:
            import ipaddress

            try:
                ipaddress.IPv4Address(self.ip)
            except ValueError:
                raise OptionError("ip", f"invalid IP {self.ip!r}: use an IPv4 address of the network") from None
        if self.memory is not None and self.memory < 6 << 20:
            raise OptionError("memory", "memory limit must be at least 6m")
        if self.cpus is not None and not (0.01 <= self.cpus <= 1024):
            raise OptionError("cpus", f"invalid cpus {self.cpus}: use a number between 0.01 and the host's "
                              "CPU count")
        if self.pids_limit is not None and self.pids_limit == 0:
            raise OptionError("pids_limit", "a pids limit of 0 would forbid every process; use -1 for unlimited")
        if self.blkio_weight is not None and not (10 <= self.blkio_weight <= 1000):
            raise OptionError("blkio_weight", f"invalid blkio weight {self.blkio_weight}: use 10 to 1000")
        if self.workdir is not None and not self.workdir.startswith("/"):
            raise OptionError("workdir", f"working directory {self.workdir!r} must be absolute")
        seen: set[str] = set()
        for m in self.volumes:
            if m.destination in seen:
                raise OptionError("volumes", f"duplicate mount point {m.destination}")
            seen.add(m.destination)
        for t in self.tmpfs:
            if not t.split(":", 1)[0].startswith("/"):
                raise OptionError("tmpfs", f"tmpfs path {t!r} must be absolute")
        self._validate_health()

    def _validate_health(self) -> None:
        if self.no_healthcheck and (self.health_cmd or self.health_interval is not None or
                                    self.health_timeout is not None or self.health_retries is not None or
                                    self.health_start_period is not None):
            raise OptionError("no_healthcheck", "--no-healthcheck conflicts with the --health-* options")
        for f in ("health_interval", "health_timeout"):
            v = getattr(self, f)
            if v is not None and v < 0.001:
                raise OptionError(f, f"{f.replace('_', ' ')} must be at least 1ms")
        if self.health_retries is not None and self.health_retries < 1:
            raise OptionError("health_retries", "health retries must be at least 1")
        if self.health_on_failure not in HEALTH_ACTIONS:
            raise OptionError("health_on_failure", f"invalid health on-failure action {self.health_on_failure!r}: "
                              f"use {', '.join(HEALTH_ACTIONS)}")

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ContainerConfig:
        d = dict(d)
        d.setdefault("restart", "no")
        d.setdefault("ports", [])
        d.setdefault("ip", None)
        d["volumes"] = [Mount(**m) for m in d.get("volumes", [])]  # type: ignore[union-attr,arg-type]
        return cls(**d)  # type: ignore[arg-type]
