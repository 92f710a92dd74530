"""Where one berth command's time goes: `BERTH_TRACE=1 berth run ...` prints a breakdown to stderr.

Spans are recorded around the things that cost time in a short command: external processes,
database transactions, lock waits, mounts and fsyncs. At exit the trace prints the interpreter's
start (process start to the first berth import), the imports up to the command's start, each span
with its duration, the total per kind, and the rest (Python work between spans).
`BERTH_TRACE=<path>.json` appends the same as one JSON line to that file instead.

When the variable is unset, `span` is a no-op context manager and nothing is recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
from collections.abc import Iterator

_SETTING = os.environ.get("BERTH_TRACE", "")
ENABLED = bool(_SETTING) and _SETTING != "0"
# the first berth import: everything before it is the interpreter's start
_IMPORTED = time.perf_counter()
_marks: dict[str, float] = {}
_spans: list[tuple[str, str, float, float]] = []  # kind, name, start, duration
_depth = 0


def _process_age() -> float | None:
    """Seconds since this process started (clock-tick resolution), from /proc."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


_STARTUP = _process_age() if ENABLED else None


def mark(name: str) -> None:
    """Record a point in time (for example the command's start after parsing)."""
    if ENABLED:
        _marks.setdefault(name, time.perf_counter())


@contextlib.contextmanager
def span(kind: str, name: str) -> Iterator[None]:
    """Time the enclosed work as one span of `kind` (exec, db, lock, mount, fsync, ...).

    Nested spans are recorded too; only outermost spans count toward the per-kind totals'
    "rest" computation, so time is never counted twice there."""
    if not ENABLED:
        yield
        return
    global _depth
    start = time.perf_counter()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        _spans.append((kind if _depth == 0 else f"{kind}*", name, start, time.perf_counter() - start))


def summary() -> dict[str, object]:
    end = time.perf_counter()
    command_start = _marks.get("command", end)
    outer = [s for s in _spans if not s[0].endswith("*")]
    totals: dict[str, float] = {}
    for kind, _name, _start, dur in outer:
        totals[kind] = totals.get(kind, 0.0) + dur
    command = end - command_start
    return {
        "argv": sys.argv[1:],
        "interpreter_start_ms": None if _STARTUP is None else round(_STARTUP * 1000, 2),
        "imports_ms": round((command_start - _IMPORTED) * 1000, 2),
        "command_ms": round(command * 1000, 2),
        "totals_ms": {k: round(v * 1000, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
        "python_rest_ms": round((command - sum(totals.values())) * 1000, 2),
        "spans": [
            {"kind": kind, "name": name, "at_ms": round((start - command_start) * 1000, 2),
             "ms": round(dur * 1000, 2)}
            for kind, name, start, dur in sorted(_spans, key=lambda s: s[2])
        ],
    }


def _print_report() -> None:
    data = summary()
    if _SETTING.endswith(".json"):
        import json

        with open(_SETTING, "a", encoding="utf-8") as f:
            f.write(json.dumps(data) + "\n")
        return
    out = sys.stderr
    print(f"berth trace: {' '.join(data['argv'])}", file=out)  # type: ignore[arg-type]
    if data["interpreter_start_ms"] is not None:
        print(f"  interpreter start   {data['interpreter_start_ms']:9.2f} ms  (process start to first berth import)",
              file=out)
    print(f"  imports + parsing   {data['imports_ms']:9.2f} ms", file=out)
    print(f"  command             {data['command_ms']:9.2f} ms", file=out)
    for kind, ms in data["totals_ms"].items():  # type: ignore[union-attr]
        print(f"    {kind:<17} {ms:9.2f} ms", file=out)
    print(f"    {'python (rest)':<17} {data['python_rest_ms']:9.2f} ms", file=out)
    for s in data["spans"]:  # type: ignore[union-attr]
        print(f"  {s['at_ms']:9.2f} +{s['ms']:8.2f} ms  {s['kind']:<7} {s['name']}", file=out)


if ENABLED:
    atexit.register(_print_report)
