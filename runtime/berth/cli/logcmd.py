"""`berth logs` with docker's flags: -f, --tail N|all, -t/--timestamps, --since, --until."""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_time(value: str, now: float, flag: str) -> float:
    """docker's --since/--until values: a Go duration before now ("10m", "1h30m"), a Unix time
    ("1700000000[.5]"), or an RFC 3339 date/time ("2024-01-02", "2024-01-02T15:04:05[.9][Z|+01:00]",
    local time without a zone)."""
    import datetime as dt

    v = value.strip()
    if re.fullmatch(f"(?:{_DURATION.pattern})+", v):
        return now - sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(v))
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return float(v)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", v)
    if m:
        text = m.group(1) + "T" + (m.group(2) or "00:00:00") + (m.group(3) or "")[:7]
        zone = m.group(4)
        try:
            t = dt.datetime.fromisoformat(text + ("+00:00" if zone == "Z" else (zone or "")))
        except ValueError:
            t = None
        if t is not None:
            return t.timestamp() if t.tzinfo else time.mktime(t.timetuple()) + t.microsecond / 1e6
    raise InvalidInput(f"invalid value for {flag}: {value!r} (use a duration like 10m or 1h30m, a Unix time, "
                       "or an RFC 3339 date/time like 2024-01-02T15:04:05Z)")


def _tail(value: str) -> int | None:
    if value == "all":
        return None
    if re.fullmatch(r"-?\d+", value):
        n = int(value)
        return None if n < 0 else n
    raise argparse.ArgumentTypeError("use a number of lines or all")


def add_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the container exits")
    sp.add_argument("-n", "--tail", type=_tail, default=None, metavar="N|all",
                    help="only the last N lines (default all)")
    sp.add_argument("-t", "--timestamps", action="store_true", help="start each line with its time (RFC 3339, ns)")
    sp.add_argument("--since", metavar="TIME",
                    help="only output from this time on: a duration before now (10m, 1h30m), a Unix time or "
                         "an RFC 3339 date/time")
    sp.add_argument("--until", metavar="TIME", help="only output before this time (same forms as --since); "
                                                     "with --until, --follow does not wait for more")
    sp.add_argument("container")


def cmd_logs(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.cli.listing import iso_ts
    from berth.container import logs

    now = time.time()
    since = parse_time(a.since, now, "--since") if a.since else None
    until = parse_time(a.until, now, "--until") if a.until else None
    with open_engine(a) as e:
        c = e.containers.get(a.container)
        path = e.containers.log_path(c.id)
        lines = logs.read(path, a.tail)
        if since is not None or until is not None:
            def inside(ln: logs.LogLine) -> bool:
                t = iso_ts(ln.time)
                return t is None or ((since is None or t >= since) and (until is None or t <= until))

            lines = [ln for ln in lines if inside(ln)]
        for stream, data in logs.render(lines, a.timestamps):
            logs.write_out(stream, data)
        if a.follow and until is None and c.state == "running":
            exit_file = os.path.join(e.containers.exit_dir, c.id)
            logs.follow(path, lambda: os.path.exists(exit_file) or e.containers.get(c.id).state != "running",
                        logs.size(path), timestamps=a.timestamps)
    return 0
