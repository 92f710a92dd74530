"""The btrfs send-stream parser on a hand-made stream (the real one is exercised in the matrix)."""

from __future__ import annotations

import struct

import pytest

from berth.errors import BerthError
from berth.storage.btrfs import parse_send_stream


def _cmd(cmd: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in attrs)
    return struct.pack("<IHI", len(body), cmd, 0) + body


def test_parse() -> None:
    stream = b"btrfs-stream\0" + struct.pack("<I", 1)
    stream += _cmd(2, [(15, b"snapname")])
    stream += _cmd(11, [(15, b"gone file")])
    stream += _cmd(9, [(15, b"o257-7-0"), (16, b"newdir")])
    stream += _cmd(10, [(15, b"link"), (17, b"existing")])
    stream += _cmd(18, [(15, b"dir/chmodded"), (5, struct.pack("<Q", 0o600))])
    stream += _cmd(21, [])
    c = parse_send_stream(stream)
    assert c.paths == {"gone file", "o257-7-0", "link", "existing", "dir/chmodded"}
    assert c.subtrees == {"newdir"}


def test_not_a_stream() -> None:
    with pytest.raises(BerthError):
        parse_send_stream(b"garbage")
