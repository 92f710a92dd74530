"""The event journal: one JSON line per event, filters as docker's, rotation past its bound."""

from __future__ import annotations

import pytest

from berth.container.events import Journal, matches, parse_filters, parse_time
from berth.errors import InvalidInput


def test_journal_appends_filters_and_rotates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(str(tmp_path), max_bytes=2000)
    for i in range(30):
        extra = {"exitCode": "0"} if i % 2 == 0 else {}
        j.emit("start" if i % 2 else "die", f"{i:02d}" + "a" * 62, f"c{i}", "busybox", **extra)
    kept = list(j.read())
    assert (tmp_path / "events.log.1").exists() and (tmp_path / "events.log").stat().st_size < 2000 + 400
    assert [e["Actor"]["Attributes"]["name"] for e in kept] == [f"c{i}" for i in range(30 - len(kept), 30)]
    assert all(a["timeNano"] <= b["timeNano"] for a, b in zip(kept, kept[1:], strict=False))
    f = parse_filters(["event=die", "container=c28", "container=c29"])
    assert [e["Actor"]["Attributes"]["name"] for e in kept if matches(e, f)] == ["c28"]
    assert [e["Action"] for e in kept if matches(e, parse_filters(["container=29aaaa"]))] == ["start"]
    with pytest.raises(InvalidInput, match="invalid filter"):
        parse_filters(["colour=red"])


def test_times() -> None:
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time("2023-11-14T22:13:20Z") == 1700000000
    assert parse_time("10m", now=1000.0) == 400.0
    with pytest.raises(InvalidInput, match="invalid time"):
        parse_time("yesterday")
