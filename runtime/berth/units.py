"""Sizes as people write them, parsed in one place (a leaf: it imports nothing of berth but its
errors). One grammar for every size berth reads — memory limits, --storage-opt size=, dm.basesize,
dm.blocksize, loop file sizes: a number (a fraction allowed) with an optional unit b, k, m, g or
t, binary multiples, an optional trailing b, any case (64m, 1.5G, 10GB, 4096)."""

from __future__ import annotations

import re

from berth.errors import InvalidInput

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str, what: str = "size") -> int:
    """Bytes in value; what names the value in the one-line error."""
    m = _SIZE_RE.match(value.strip())
    if not m:
        raise InvalidInput(f"invalid {what} {value!r}: use a number with an optional unit b, k, m, g (e.g. 64m)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | int | float, what: str = "duration") -> float:
    """Seconds in a duration as docker's flags take them (Go's syntax: 30s, 500ms, 1m30s, 1h), or a
    plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or value != value or value == float("inf"):
            raise InvalidInput(f"invalid {what} {value!r}: use a duration such as 30s, 500ms or 1m30s")
        return float(value)
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise InvalidInput(f"invalid {what} {value!r}: use a duration such as 30s, 500ms or 1m30s") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidInput(f"invalid {what} {value!r}: use a duration such as 30s, 500ms or 1m30s")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as Go prints one (30s, 500ms, 1m30s)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "")
    return out + f"{s:g}s"
