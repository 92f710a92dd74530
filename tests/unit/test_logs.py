"""k8s-file log records: parsing and --tail counting (no root needed)."""

from __future__ import annotations

import os

from berth.container import logs


def _write(path: str, records: list[tuple[str, str, str]]) -> None:
    with open(path, "wb") as f:
        for stream, flag, text in records:
            f.write(f"2026-12-01T00:00:00.000000000Z {stream} {flag} {text}\n".encode())


def _stdout(lines: list[logs.LogLine]) -> bytes:
    return b"".join(data for stream, data in logs.render(lines) if stream == "stdout")


def test_tail_counts_an_unterminated_last_line(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "log")
    _write(path, [("stderr", "F", "warn"), ("stdout", "F", "got hello"), ("stdout", "P", "tail")])
    assert _stdout(logs.read(path, tail=1)) == b"tail"
    assert _stdout(logs.read(path, tail=2)) == b"got hello\ntail"
    assert logs.read(path, tail=0) == []
    assert len(logs.read(path, tail=10)) == 3


def test_tail_joins_partial_records_of_one_line(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "log")
    _write(path, [("stdout", "F", "one"), ("stdout", "P", "tw"), ("stdout", "F", "o"), ("stdout", "F", "three")])
    assert _stdout(logs.read(path, tail=2)) == b"two\nthree\n"
    assert _stdout(logs.read(path)) == b"one\ntwo\nthree\n"
