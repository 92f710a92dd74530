"""Dockerfile-style changes applied to an image config (`import -c`, `commit -c`)."""

from __future__ import annotations

import json
import shlex

from berth.errors import InvalidInput

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "LABEL", "EXPOSE", "STOPSIGNAL")


def _command(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise InvalidInput(f"invalid JSON array {value!r}") from None
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise InvalidInput(f"expected a JSON array of strings, got {value!r}")
        return parsed
    return ["/bin/sh", "-c", value]


def _pairs(value: str, what: str) -> list[tuple[str, str]]:
    out = []
    for tok in shlex.split(value):
        k, sep, v = tok.partition("=")
        if not sep or not k:
            raise InvalidInput(f"{what} needs KEY=VALUE, got {tok!r}")
        out.append((k, v))
    return out


def apply(config: dict[str, object], changes: list[str]) -> dict[str, object]:
    cfg = dict(config)
    for change in changes:
        instr, _, value = change.strip().partition(" ")
        instr = instr.upper()
        if instr not in SUPPORTED:
            raise InvalidInput(f"unsupported change {change!r}: use one of {', '.join(SUPPORTED)}")
        if not value.strip():
            raise InvalidInput(f"change {change!r} needs a value")
        if instr == "CMD":
            cfg["Cmd"] = _command(value)
        elif instr == "ENTRYPOINT":
            cfg["Entrypoint"] = _command(value)
        elif instr == "ENV":
            env = [e for e in cfg.get("Env") or []]  # type: ignore[union-attr]
            for k, v in _pairs(value, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = value.strip()
        elif instr == "USER":
            cfg["User"] = value.strip()
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})  # type: ignore[call-overload]
            labels.update(_pairs(value, "LABEL"))
            cfg["Labels"] = labels
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})  # type: ignore[call-overload]
            for p in value.split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = value.strip()
    return cfg
