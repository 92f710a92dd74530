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
