"""berth's own tar reader (storage/tarstream.py) reads members as Python's tarfile does, across
the formats real layers come in; applying keeps exact reassembly (tar-split, both record
versions); damaged and oversized input is refused in one InvalidInput."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile

import pytest

from berth.errors import InvalidInput
from berth.storage import tarstream
from berth.storage.tarapply import apply_tar, tar_identity
from berth.storage.tarsplit import Recorder, TarSplit

LONG = "a" * 120 + "/" + "b" * 130


def _tar(fmt: int, entries: list[tuple[tarfile.TarInfo, bytes | None]], **kw: object) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tf:  # type: ignore[call-overload]
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **fields: object
          ) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode, ti.mtime = 0o644, 1_600_000_000
    for k, v in fields.items():
        setattr(ti, k, v)
    if data is not None:
        ti.size = len(data)
    return ti, data


def _entries(fmt: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = [_info("d", tarfile.DIRTYPE, mode=0o2775), _info("d/f", data=b"x" * 700, uid=1000, gid=50, mode=0o4755),
           _info("p/" + "q" * 90 + "/" + "r" * 90, data=b"prefix field"),
           _info("fifo", tarfile.FIFOTYPE), _info("s", tarfile.SYMTYPE, linkname="d/f"),
           _info("h", tarfile.LNKTYPE, linkname="d/f"), _info("d/.wh.gone", data=b""),
           _info("big", data=b"y" * (3 << 20))]
    if fmt != tarfile.USTAR_FORMAT:
        out += [_info(LONG, tarfile.DIRTYPE), _info(LONG + "/file", data=b"long"),
                _info("l" * 200, tarfile.SYMTYPE, linkname="t" * 300), _info("uni\u00e9/\u00f1", data=b"u"),
                _info("huge-ids", data=b"", uid=3_000_000, gid=3_000_001, mtime=10**12)]
    if fmt == tarfile.PAX_FORMAT:
        x, _ = _info("xa", data=b"abc")
        x.pax_headers = {"SCHILY.xattr.user.foo": "bar"}
        out.append((x, b"abc"))
    return out


def _read(data: bytes) -> list[tarstream.Member]:
    feed = tarstream.ChunkFeed(io.BytesIO(data))
    try:
        return list(tarstream.TarReader(feed))
    finally:
        feed.close()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_read_as_tarfile_reads_them(fmt: int) -> None:
    data = _tar(fmt, _entries(fmt), pax_headers={"comment": "global"} if fmt == tarfile.PAX_FORMAT else None)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = [(m.name, m.type, m.mode, m.uid, m.gid, m.size, int(m.mtime), m.linkname, m.offset,
                     m.offset_data, m.pax_headers) for m in tf.getmembers()]
    got = [(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.mtime, m.linkname, m.offset, m.offset_data, m.pax)
           for m in _read(data)]
    assert got == expected


def test_v7_directory_and_base256_numbers() -> None:
    hdr = bytearray(512)
    hdr[0:4] = b"dir/"
    hdr[100:108] = b"0000755\0"
    hdr[108:116] = b"\x80" + (5_000_000).to_bytes(7, "big")  # base-256 uid
    hdr[116:124] = b"     0 \0"
    hdr[124:136] = b"00000000000\0"
    hdr[136:148] = b"\xff" * 12  # base-256 -1
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    (m,) = _read(bytes(hdr) + bytes(1024))
    assert (m.name, m.type, m.uid, m.gid, m.mtime) == ("dir", b"5", 5_000_000, 0, -1)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_apply_reassembles_the_exact_bytes(tmp_path, fmt: int) -> None:  # type: ignore[no-untyped-def]
    data = _tar(fmt, _entries(fmt)) + b"trailing bytes after the end blocks"
    rec = Recorder()
    res = apply_tar(io.BytesIO(gzip.compress(data)), str(tmp_path), "overlay", rec)
    rec.finish()
    assert res.diff_id == tar_identity(io.BytesIO(data))[0]
    assert res.tar_bytes == len(data)
    split = TarSplit(rec.dump())
    assert split.size == len(data)
    assert b"".join(split.assemble(str(tmp_path))) == data
    assert os.stat(tmp_path / "d" / "f").st_mode & 0o7777 == 0o4755
    assert (tmp_path / "big").read_bytes() == b"y" * (3 << 20)


def test_version_1_records_still_assemble(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Layers stored before the binary record keep their JSON + base64 one."""
    data = _tar(tarfile.PAX_FORMAT, [_info("f", data=b"content"), _info("e", data=b"")])
    apply_tar(io.BytesIO(data), str(tmp_path), "overlay")
    first = 512  # the header (plain ASCII: no PAX header)
    doc = {"version": 1, "exact": True, "size": len(data), "entries": [
        {"t": "s", "d": base64.b64encode(data[:first]).decode()}, {"t": "f", "n": "f", "s": 7},
        {"t": "s", "d": base64.b64encode(data[first + 7:]).decode()}]}
    split = TarSplit(gzip.compress(json.dumps(doc).encode()))
    assert b"".join(split.assemble(str(tmp_path))) == data


def _header(name: bytes, kind: bytes, size: int) -> bytes:
    hdr = bytearray(512)
    hdr[0:len(name)] = name
    hdr[100:108] = b"0000644\0"
    hdr[124:136] = b"%011o\0" % size
    hdr[156:157] = kind
    hdr[257:263] = b"ustar\0"
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return bytes(hdr)


@pytest.mark.parametrize("case", ["oversized PAX", "sparse", "cut in content", "cut in padding", "bad checksum",
                                  "extension without member", "negative size"])
def test_bad_input_is_refused(tmp_path, case: str) -> None:  # type: ignore[no-untyped-def]
    good = _tar(tarfile.USTAR_FORMAT, [_info("f", data=b"z" * 1000)])
    data = {
        "oversized PAX": _header(b"x", b"x", tarstream.MAX_EXTENSION + 1) + bytes(tarstream.MAX_EXTENSION + 512),
        "sparse": _header(b"s", b"S", 0) + bytes(1024),
        "cut in content": good[:900],
        "cut in padding": good[:1512],
        "bad checksum": good[:148] + b"0000000\0" + good[156:],
        "extension without member": _tar(tarfile.GNU_FORMAT, [_info(LONG, data=b"")])[:1024] + bytes(1024),
        "negative size": _header(b"n", b"0", 0)[:124] + b"\xff" * 12 + _header(b"n", b"0", 0)[136:] + bytes(1024),
    }[case]
    if case == "negative size":  # fix the checksum of the patched header
        hdr = bytearray(data[:512])
        hdr[148:156] = b" " * 8
        hdr[148:156] = b"%06o\0 " % sum(hdr)
        data = bytes(hdr) + data[512:]
    with pytest.raises(InvalidInput):
        apply_tar(io.BytesIO(data), str(tmp_path), "overlay", Recorder())
