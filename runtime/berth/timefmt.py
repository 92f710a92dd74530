"""Timestamps as berth writes them (UTC, RFC 3339): in image configs and history to the second,
in container state to the microsecond, as docker does."""

from __future__ import annotations

import datetime as dt

ZERO = "0001-01-01T00:00:00Z"


def iso_seconds(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_precise(ts: float | None) -> str:
    """To the microsecond; a time never set (None, 0) is docker's zero time."""
    if not ts:
        return ZERO
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
