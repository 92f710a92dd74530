"""A deterministic tar writer (ustar headers, PAX records only where a field does not fit).

The bytes depend only on the entries given: no atime/ctime, no user/group names, integer mtimes,
PAX records sorted by key. Two trees with the same content therefore give the same layer tar and
the same DiffID whichever driver produced them.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

BLOCK = 512
REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
PAXTYPE = b"x"
COPY_CHUNK = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass
class TarEntry:
    """One archive member. `name` is relative, without a leading './' or a trailing '/'."""

    name: str
    type: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def _octal(value: int, width: int) -> bytes | None:
    """The NUL-terminated octal field, or None when value does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        return None
    return b"%0*o" % (width - 1, value) + b"\0"


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fitting ustar's 155/100-byte fields, or None."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    for i in range(len(name) - 1, 0, -1):
        if name[i : i + 1] == b"/" and i <= 155 and len(name) - i - 1 <= 100 and i > 0:
            return name[:i], name[i + 1 :]
    return None


def _header(
    name: bytes, linkname: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
    devmajor: int = 0, devminor: int = 0, prefix: bytes = b"",
) -> bytes:
    def num(v: int, w: int) -> bytes:
        o = _octal(v, w)
        return o if o is not None else b"0" * (w - 1) + b"\0"

    buf = bytearray(BLOCK)
    buf[0:100] = name.ljust(100, b"\0")[:100]
    buf[100:108] = num(mode & 0o7777, 8)
    buf[108:116] = num(uid, 8)
    buf[116:124] = num(gid, 8)
    buf[124:136] = num(size, 12)
    buf[136:148] = num(mtime, 12)
    buf[148:156] = b" " * 8
    buf[156:157] = typeflag
    buf[157:257] = linkname.ljust(100, b"\0")[:100]
    buf[257:263] = b"ustar\0"
    buf[263:265] = b"00"
    buf[329:337] = num(devmajor, 8)
    buf[337:345] = num(devminor, 8)
    buf[345:500] = prefix.ljust(155, b"\0")[:155]
    chksum = sum(buf)
    buf[148:156] = b"%06o\0 " % chksum
    return bytes(buf)


def encode_header(e: TarEntry) -> bytes:
    """Header block(s) for an entry: an optional PAX header plus the ustar header."""
    suffix = b"/" if e.type == DIRTYPE else b""
    name = os.fsencode(e.name) + suffix
    linkname = os.fsencode(e.linkname)
    pax: dict[str, bytes] = {}
    split = _split_name(name) if name.isascii() else None
    if split is None:
        pax["path"] = name
        split = (b"", name[:100])
    if len(linkname) > 100 or not linkname.isascii():
        pax["linkpath"] = linkname
    for key, value, width in (("uid", e.uid, 8), ("gid", e.gid, 8), ("size", e.size, 12),
                              ("mtime", e.mtime, 12)):
        if _octal(value, width) is None:
            pax[key] = str(value).encode()
    for k, v in e.xattrs.items():
        pax["SCHILY.xattr." + k] = v
    out = b""
    if pax:
        records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        d, b = posixpath.split(name.rstrip(b"/"))
        paxname = posixpath.join(d, b"PaxHeaders.0", b)[:100]
        out += _header(paxname, b"", 0, 0, 0, len(records), 0, PAXTYPE)
        out += records + b"\0" * (-len(records) % BLOCK)
    out += _header(split[1], linkname[:100], e.mode, e.uid, e.gid, e.size, e.mtime, e.type,
                   e.devmajor, e.devminor, split[0])
    return out


def entry_from_stat(name: str, st: os.stat_result, linkname: str = "",
                    xattrs: dict[str, bytes] | None = None) -> TarEntry:
    """The archive entry describing a file with the given lstat result."""
    m = st.st_mode
    if stat.S_ISREG(m):
        t, size = REGTYPE, st.st_size
    elif stat.S_ISDIR(m):
        t, size = DIRTYPE, 0
    elif stat.S_ISLNK(m):
        t, size = SYMTYPE, 0
    elif stat.S_ISCHR(m):
        t, size = CHRTYPE, 0
    elif stat.S_ISBLK(m):
        t, size = BLKTYPE, 0
    elif stat.S_ISFIFO(m):
        t, size = FIFOTYPE, 0
    else:
        raise ValueError(f"cannot archive {name}: unsupported file type (socket?)")
    dev = st.st_rdev if t in (CHRTYPE, BLKTYPE) else 0
    return TarEntry(name=name, type=t, mode=stat.S_IMODE(m), uid=st.st_uid, gid=st.st_gid, size=size,
                    mtime=int(st.st_mtime), linkname=linkname, devmajor=os.major(dev),
                    devminor=os.minor(dev), xattrs=dict(xattrs or {}))


class TarWriter:
    """Streams entries to a binary sink; close() writes the two end-of-archive blocks."""

    def __init__(self, sink: Sink | BinaryIO) -> None:
        self.sink = sink

    def add(self, entry: TarEntry, source: str | None = None) -> None:
        self.sink.write(encode_header(entry))
        if entry.type != REGTYPE or entry.size == 0:
            return
        if source is None:
            raise ValueError(f"regular file {entry.name} needs a source")
        remaining = entry.size
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            while remaining:
                chunk = os.read(fd, min(COPY_CHUNK, remaining))
                if not chunk:
                    raise OSError(f"{entry.name} shrank while it was archived")
                self.sink.write(chunk)
                remaining -= len(chunk)
        finally:
            os.close(fd)
        pad = -entry.size % BLOCK
        if pad:
            self.sink.write(b"\0" * pad)

    def add_bytes(self, name: str, data: bytes, mtime: int = 0, mode: int = 0o644) -> None:
        self.add_chunks(TarEntry(name, REGTYPE, mode, size=len(data), mtime=mtime), [data])

    def add_dir(self, name: str, mtime: int = 0) -> None:
        self.add(TarEntry(name, DIRTYPE, 0o755, mtime=mtime))

    def add_chunks(self, entry: TarEntry, chunks: Iterable[bytes]) -> None:
        """A regular file whose content comes from an iterable; it must add up to entry.size."""
        self.sink.write(encode_header(entry))
        n = 0
        for chunk in chunks:
            n += len(chunk)
            if n > entry.size:
                raise OSError(f"{entry.name}: more data than the {entry.size} bytes announced")
            self.sink.write(chunk)
        if n != entry.size:
            raise OSError(f"{entry.name}: {n} bytes written, {entry.size} announced")
        pad = -entry.size % BLOCK
        if pad:
            self.sink.write(b"\0" * pad)

    def close(self) -> None:
        self.sink.write(b"\0" * (2 * BLOCK))
