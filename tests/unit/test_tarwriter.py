"""The deterministic tar writer: readable by Python's tarfile and GNU tar, PAX only where needed."""

from __future__ import annotations

import io
import subprocess
import tarfile

from berth.storage.tarwriter import DIRTYPE, REGTYPE, SYMTYPE, TarEntry, TarWriter, encode_header


def _archive(entries: list[tuple[TarEntry, bytes]], tmp_path) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    w = TarWriter(buf)
    for i, (e, data) in enumerate(entries):
        src = None
        if e.type == REGTYPE and data:
            src = tmp_path / f"src{i}"
            src.write_bytes(data)
        w.add(e, str(src) if src else None)
    w.close()
    return buf.getvalue()


def test_roundtrip_with_tarfile_and_gnu_tar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    long_name = "deep/" + "x" * 90 + "/" + "y" * 90 + "/file"
    very_long = "z" * 300
    entries = [
        (TarEntry("deep", DIRTYPE, 0o755, mtime=5), b""),
        (TarEntry(long_name, REGTYPE, 0o4755, uid=1000, gid=1000, size=3, mtime=7), b"abc"),
        (TarEntry(very_long, REGTYPE, 0o600, size=1, mtime=9), b"q"),
        (TarEntry("big-ids", REGTYPE, 0o644, uid=3_000_000, gid=4_000_000, size=0), b""),
        (TarEntry("link", SYMTYPE, 0o777, linkname="t" * 150), b""),
        (TarEntry("caps", REGTYPE, 0o755, size=2, xattrs={"security.capability": b"\x01\x00\xff\x80",
                                                            "user.note": b"hi"}), b"hi"),
        (TarEntry("ünïcode", REGTYPE, 0o644, size=0), b""),
    ]
    data = _archive(entries, tmp_path)
    assert len(data) % 512 == 0
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(data))}
    assert members[long_name].mode == 0o4755 and members[long_name].uid == 1000
    assert members[very_long].size == 1
    assert members["big-ids"].uid == 3_000_000 and members["big-ids"].gid == 4_000_000
    assert members["link"].linkname == "t" * 150
    caps = members["caps"].pax_headers["SCHILY.xattr.security.capability"]
    assert caps.encode("utf-8", "surrogateescape") == b"\x01\x00\xff\x80"
    assert "ünïcode" in members
    listing = subprocess.run(["tar", "-tvf", "-"], input=data, capture_output=True, check=True,
                             timeout=300).stdout.decode()
    assert long_name in listing and very_long in listing
    assert _archive(entries, tmp_path) == data


def test_pax_only_where_needed() -> None:
    plain = encode_header(TarEntry("short/name", REGTYPE, 0o644, size=10, mtime=1))
    assert len(plain) == 512
    with_xattr = encode_header(TarEntry("f", REGTYPE, 0o644, xattrs={"user.a": b"1"}))
    assert len(with_xattr) > 512 and with_xattr[156:157] == b"x"


def test_header_checksum_matches_tarfile() -> None:
    hdr = encode_header(TarEntry("a", REGTYPE, 0o644, size=0, mtime=123))
    ti = tarfile.TarInfo.frombuf(hdr, "utf-8", "surrogateescape")
    assert ti.name == "a" and ti.mtime == 123
