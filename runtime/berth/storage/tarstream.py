"""A streaming tar reader for layer tars, built for speed: it parses headers itself (ustar, GNU
long names, PAX extended and global headers, as Python's tarfile reads them) and hands file
contents out as views of the chunks it read, never copying them.

The stream is read in big chunks on a helper thread that also hashes them (sha256 and the reads
release the GIL, so on two cores the DiffID costs the applier nothing). Every byte that is not the
content of a kept regular file goes to a tar-split Recorder, when one is given, so the exact tar
can be rebuilt later.

Errors are InvalidInput with one line: a tar that is cut short, a damaged header, an extension
header bigger than MAX_EXTENSION, a sparse file.
"""

from __future__ import annotations

import hashlib
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.storage.tarsplit import Recorder

BLOCK = 512
CHUNK = 1 << 20
QUEUED = 8  # chunks read ahead of the applier
MAX_EXTENSION = 1 << 20  # PAX and GNU long-name data accepted per member (Go's archive/tar limit)

REGULAR = (b"0", b"\0", b"7")  # regular, old regular, contiguous
DIR, SYMLINK, HARDLINK, CHR, BLK, FIFO = b"5", b"2", b"1", b"3", b"4", b"6"
LONGNAME, LONGLINK, SPARSE = b"L", b"K", b"S"
PAX_LOCAL, PAX_GLOBAL, PAX_SOLARIS = b"x", b"g", b"X"
EXTENSIONS = (LONGNAME, LONGLINK, PAX_LOCAL, PAX_GLOBAL, PAX_SOLARIS)
# types that are a header only: whatever their size field says, no data follows (tarfile, Go)
HEADER_ONLY = (HARDLINK, SYMLINK, CHR, BLK, DIR, FIFO)
_FIELDS = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


class Member:
    """One archive member, its fields as tarfile would report them."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "devmajor", "devminor",
                 "pax", "offset", "offset_data")

    def __init__(self) -> None:
        self.name = ""
        self.type = b"0"
        self.mode = self.uid = self.gid = self.size = self.mtime = self.devmajor = self.devminor = 0
        self.linkname = ""
        self.pax: dict[str, str] = {}
        self.offset = 0  # the first header block (extension headers included)
        self.offset_data = 0

    def isreg(self) -> bool:
        return self.type in REGULAR

    def isdir(self) -> bool:
        return self.type == DIR

    def has_data(self) -> bool:
        return self.type not in HEADER_ONLY


def _text(raw: bytes) -> str:
    p = raw.find(b"\0")
    return (raw if p < 0 else raw[:p]).decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    """A numeric header field: NUL/space-terminated octal, or base-256 (first byte 0x80 or 0xff)."""
    try:
        return int(raw.rstrip(b"\0"), 8)  # the usual field; int() ignores surrounding whitespace
    except ValueError:
        pass
    first = raw[0]
    if first == 0o200 or first == 0o377:
        n = int.from_bytes(raw[1:], "big")
        return n - 256 ** (len(raw) - 1) if first == 0o377 else n
    p = raw.find(b"\0")
    if p >= 0:
        raw = raw[:p]
    try:
        return int(raw, 8)
    except ValueError:
        if raw.strip():
            raise ValueError("invalid number") from None
        return 0


def _checksum_ok(hdr: bytes, stored: int) -> bool:
    unsigned = sum(hdr) - sum(hdr[148:156]) + 256
    if stored == unsigned:
        return True
    # the old signed-char checksum (some tars of the 1990s)
    high = sum(1 for b in hdr[:148] if b > 127) + sum(1 for b in hdr[156:] if b > 127)
    return stored == unsigned - 256 * high


def parse_pax(data: bytes, into: dict[str, str]) -> None:
    """PAX records ("<len> <key>=<value>\\n") into a dict, read as tarfile reads them."""
    pos = 0
    while True:
        match = _PAX_RECORD.match(data, pos)
        if not match:
            return
        length = int(match.group(1))
        if length == 0:
            raise InvalidInput("archive is corrupt: a PAX record has length 0")
        key = match.group(2).decode("utf-8", "surrogateescape")
        into[key] = data[match.end(2) + 1: match.start(1) + length - 1].decode("utf-8", "surrogateescape")
        pos += length


def _pax_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


class ChunkFeed:
    """Reads a stream in CHUNK pieces on a helper thread, hashing and counting them there."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()
        self.count = 0
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(QUEUED)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="berth-tar-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                data = self.stream.read(CHUNK)
                if not data:
                    break
                self.hash.update(data)
                self.count += len(data)
                self._queue.put(data)
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._queue.put(e)
            return
        self._queue.put(b"")

    def get(self) -> bytes:
        """The next chunk; b"" at the end of the stream."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._thread.join()
            raise item
        return item

    def close(self) -> None:
        """Stop reading ahead and wait for the helper thread (it may be in a read or a put)."""
        self._stop = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class TarReader:
    """Members of a tar stream, in order. After a member is yielded, `content(m)` gives its data
    (views, valid until the next member); what the caller does not read is skipped.

    With a recorder, every byte but the content of members for which kept(m) is true is recorded;
    kept members are recorded as references (name, size)."""

    def __init__(self, feed: ChunkFeed, recorder: Recorder | None = None,
                 kept: Callable[[Member], bool] | None = None) -> None:
        self.feed = feed
        self.recorder = recorder
        self.kept = kept
        self.buf = b""
        self.pos = 0
        self.base = 0  # stream offset of buf[0]
        self.eof = False
        self.globals: dict[str, str] = {}
        self._left = 0  # content bytes of the current member not read yet
        self._pad = 0
        self._record_left = False
        self._current: Member | None = None

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.feed.get()
        self.base += len(self.buf)
        self.buf, self.pos = data, 0
        if not data:
            self.eof = True
            return False
        return True

    def _read(self, n: int) -> bytes:
        """n bytes, fewer only where the stream ends."""
        buf, pos = self.buf, self.pos
        if pos + n <= len(buf):
            self.pos = pos + n
            return buf[pos: pos + n]
        parts = [buf[pos:]]
        got = len(parts[0])
        self.pos = len(buf)
        while got < n and self._fill():
            take = min(n - got, len(self.buf))
            parts.append(self.buf[:take])
            self.pos = take
            got += take
        return b"".join(parts)

    def _views(self, n: int) -> Iterator[memoryview]:
        while n:
            if self.pos >= len(self.buf) and not self._fill():
                return
            take = min(n, len(self.buf) - self.pos)
            yield memoryview(self.buf)[self.pos: self.pos + take]
            self.pos += take
            n -= take

    def _record(self, data: bytes | memoryview) -> None:
        if self.recorder is not None and data:
            self.recorder.segment(data)

    def content(self, m: Member) -> Iterator[memoryview]:
        """The current member's data (once); InvalidInput where the stream ends inside it."""
        if m is not self._current:
            raise ValueError("content() of a member that is not the current one")
        record = self._record_left
        while self._left:
            got = False
            for view in self._views(self._left):
                got = True
                self._left -= len(view)
                if record:
                    self._record(view)
                yield view
            if not got:
                raise InvalidInput(f"archive is truncated inside {m.name!r}")

    def _skip(self, m: Member) -> None:
        """Pass over the current member's unread data without looking at it."""
        while self._left:
            if self.pos >= len(self.buf) and not self._fill():
                raise InvalidInput(f"archive is truncated inside {m.name!r}")
            take = min(self._left, len(self.buf) - self.pos)
            self.pos += take
            self._left -= take

    def _skip_rest(self) -> None:
        m = self._current
        if m is None:
            return
        if self._left and not (self._record_left and self.recorder is not None):
            self._skip(m)
        for _view in self.content(m):
            pass
        if self._pad:
            pad = self._read(self._pad)
            if len(pad) < self._pad:
                raise InvalidInput(f"archive is truncated after {m.name!r}")
            self._record(pad)
            self._pad = 0
        self._current = None

    def __iter__(self) -> Iterator[Member]:
        while True:
            self._skip_rest()
            m = self._next()
            if m is None:
                return
            self._current = m
            yield m

    def _header(self, first: bool) -> tuple[bytes, int] | None:
        """The next header block and its offset; None at the end of the archive."""
        at = self.offset
        hdr = self._read(BLOCK)
        self._record(hdr)
        if len(hdr) < BLOCK:
            if not hdr and at > 0 and first:
                return None  # Go's archive/tar accepts a tar that ends right after a member
            if not hdr and at == 0:
                raise InvalidInput("not a valid tar archive: empty file")
            raise InvalidInput(f"archive is truncated: it ends inside the header at byte {at}")
        if first and hdr.count(0) == BLOCK:
            return None
        return hdr, at

    def _bad(self, at: int) -> InvalidInput:
        if at == 0:
            return InvalidInput("not a valid tar archive: the first header is damaged")
        return InvalidInput(f"archive is corrupt: the header at byte {at} is not a valid tar header")

    def _next(self) -> Member | None:
        got = self._header(first=True)
        if got is None:
            return None
        start = got[1]
        extensions: list[tuple[bytes, bytes]] = []
        while True:
            hdr, at = got
            try:
                f = _FIELDS.unpack_from(hdr)
                if not _checksum_ok(hdr, _number(f[6])):
                    raise ValueError("bad checksum")
                size = _number(f[4])
            except ValueError:
                raise self._bad(at) from None
            kind = f[7]
            if kind not in EXTENSIONS:
                break
            if not 0 <= size <= MAX_EXTENSION:
                raise InvalidInput(f"archive header at byte {at} has {size} bytes of extension data; "
                                   f"refusing more than {MAX_EXTENSION}")
            data = self._read(size + (-size % BLOCK))
            self._record(data)
            if len(data) < size + (-size % BLOCK):
                raise InvalidInput(f"archive is truncated inside the extension header at byte {at}")
            data = data[:size]
            nxt = self._header(first=False)
            assert nxt is not None
            if nxt[0].count(0) == BLOCK:
                raise InvalidInput(f"archive is corrupt: the extension header at byte {at} has no member")
            if kind == PAX_GLOBAL:
                parse_pax(data, self.globals)
                start = nxt[1]  # a global header is not part of the member (its offset is after it)
            else:
                extensions.append((kind, data))
            got = nxt
        try:
            m = self._member(f, kind, extensions)
        except ValueError:
            raise self._bad(got[1]) from None
        m.offset = start
        m.offset_data = self.offset
        if any(k.startswith("GNU.sparse.") for k in m.pax) or kind == SPARSE:
            raise InvalidInput(f"archive entry {m.name!r} is a sparse file, which berth cannot apply")
        if m.size < 0:
            raise InvalidInput(f"archive entry {m.name!r} has a negative size")
        data_size = m.size if m.has_data() else 0
        self._left = data_size
        self._pad = -data_size % BLOCK
        keep = self.kept is not None and self.kept(m) and data_size > 0
        if keep and self.recorder is not None:
            self.recorder.file(m.name, data_size)
        self._record_left = not keep
        return m

    def _member(self, f: tuple[bytes, ...], kind: bytes, extensions: list[tuple[bytes, bytes]]) -> Member:
        m = Member()
        name = _text(f[0])
        m.mode = _number(f[1])
        m.uid = _number(f[2])
        m.gid = _number(f[3])
        m.size = _number(f[4])
        m.mtime = _number(f[5])
        m.linkname = _text(f[8])
        if kind in (CHR, BLK):
            m.devmajor = _number(f[13])
            m.devminor = _number(f[14])
        prefix = _text(f[15])
        if kind == b"\0" and name.endswith("/"):
            kind = DIR
        if kind == DIR:
            name = name.rstrip("/")
        if prefix:
            name = prefix + "/" + name
        m.type = kind
        m.name = name
        # the first extension header wins where several set a field (as tarfile reads them)
        pax = dict(self.globals)
        local: dict[str, str] = {}
        for ext_kind, data in reversed(extensions):
            if ext_kind == LONGNAME:
                local.pop("path", None)
                m.name = _text(data)
            elif ext_kind == LONGLINK:
                local.pop("linkpath", None)
                m.linkname = _text(data)
            else:
                parse_pax(data, local)
        pax.update(local)
        for key, value in pax.items():
            if key == "path":
                m.name = value.rstrip("/")
            elif key == "linkpath":
                m.linkname = value
            elif key == "size":
                m.size = _pax_int(value)
            elif key == "uid":
                m.uid = _pax_int(value)
            elif key == "gid":
                m.gid = _pax_int(value)
            elif key == "mtime":
                try:
                    m.mtime = int(float(value))
                except (ValueError, OverflowError):
                    m.mtime = 0
        if m.type == DIR:
            m.name = m.name.rstrip("/")
        m.pax = pax
        return m

    def finish(self) -> None:
        """Read (and record) what follows the end of the archive: it is part of the DiffID."""
        self._skip_rest()
        self._record(self.buf[self.pos:])
        self.pos = len(self.buf)
        while self._fill():
            self._record(self.buf)
            self.pos = len(self.buf)
