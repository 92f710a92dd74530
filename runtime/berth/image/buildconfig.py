"""The image-config side of Dockerfile instructions, as docker records them: Env replaced in place,
docker's default PATH on every stage, ExposedPorts with ranges, Healthcheck durations in
nanoseconds (Go's time.Duration), StopSignal checked, the shell form through SHELL."""

from __future__ import annotations

import re
import signal

from berth.errors import InvalidInput

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def env_dict(icfg: dict[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in icfg.get("Env") or []:  # type: ignore[attr-defined]
        k, _, v = str(e).partition("=")
        out.setdefault(k, v)
    return out


def set_env(icfg: dict[str, object], key: str, value: str) -> None:
    """Replace KEY in place (docker keeps the position) or append it."""
    env = [str(e) for e in icfg.get("Env") or []]  # type: ignore[attr-defined]
    for i, e in enumerate(env):
        if e.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    icfg["Env"] = env


def ensure_path(icfg: dict[str, object]) -> None:
    """docker adds its default PATH to a stage whose base has none (an imported image, scratch)."""
    if "PATH" not in env_dict(icfg):
        set_env(icfg, "PATH", DEFAULT_PATH)


def shell_form(icfg: dict[str, object], text: str) -> list[str]:
    shell = icfg.get("Shell") or DEFAULT_SHELL
    return [*shell, text]  # type: ignore[misc]


def parse_duration(value: str, what: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms", "0") in nanoseconds."""
    if value == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(value):
        m = _DURATION.match(value, pos)
        if not m:
            raise InvalidInput(f"{what}: invalid duration {value!r} (use e.g. 30s, 1m30s, 500ms)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not value:
        raise InvalidInput(f"{what}: invalid duration ''")
    return int(total)


def healthcheck(test: list[str], flags: dict[str, str], parent: object = None) -> dict[str, object]:
    """docker's HealthConfig: Test, and Interval, Timeout, StartPeriod (ns) and Retries when set.
    A setting left out keeps the parent image's (docker 20.10 merges the two configs when it
    commits a step, so even HEALTHCHECK NONE keeps them; observed, not documented)."""
    hc: dict[str, object] = {"Test": test}
    if isinstance(parent, dict):
        hc.update({k: v for k, v in parent.items() if k in ("Interval", "Timeout", "StartPeriod", "Retries") and v})
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
        if flag in flags:
            ns = parse_duration(flags[flag], f"HEALTHCHECK --{flag}")
            if 0 < ns < 1_000_000:
                raise InvalidInput(f"HEALTHCHECK --{flag} {flags[flag]!r} cannot be less than 1ms")
            if ns:
                hc[key] = ns
    if "retries" in flags:
        if not flags["retries"].lstrip("-").isdigit():
            raise InvalidInput(f"HEALTHCHECK --retries {flags['retries']!r} is not a number")
        retries = int(flags["retries"])
        if retries < 0:
            raise InvalidInput("HEALTHCHECK --retries cannot be negative")
        if retries:
            hc["Retries"] = retries
    return hc


def check_signal(value: str) -> str:
    if value.isdigit():
        if not 0 < int(value) < 65:
            raise InvalidInput(f"STOPSIGNAL {value}: invalid signal number")
        return value
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if not hasattr(signal.Signals, name) and not re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
        raise InvalidInput(f"STOPSIGNAL {value}: invalid signal")
    return value


def exposed(words: list[str]) -> list[str]:
    """Port specs as docker records them: PORT/PROTO, ranges expanded."""
    out = []
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidInput(f"EXPOSE {w}: invalid protocol {proto!r}")
        lo, sep, hi = port.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise InvalidInput(f"EXPOSE {w}: invalid port")
        first, last = int(lo), int(hi) if sep else int(lo)
        if not 0 < first <= last <= 65535:
            raise InvalidInput(f"EXPOSE {w}: invalid port range")
        out.extend(f"{p}/{proto}" for p in range(first, last + 1))
    return out
