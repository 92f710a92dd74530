"""Apply a layer tar to a directory, refusing or containing hostile entries.

Nothing is ever written outside the target: names are normalised and may not climb out, every
parent directory of an entry must be a real directory inside the target (never a symlink, so a
link planted by an earlier entry cannot redirect a later write), files are opened with
O_NOFOLLOW|O_EXCL, and hard links may only point at files inside the target. Device nodes are not
created (the runtime provides /dev); overlay's private xattrs are dropped.

Two whiteout styles: 'delete' (vfs, btrfs: the layer starts as a copy of its parent, so a
whiteout removes the path) and 'overlay' (the layer is an empty upper dir: a whiteout becomes a
0:0 character device, an opaque marker the trusted.overlay.opaque xattr).
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from berth.errors import HostileInput, InvalidInput
from berth.storage.differ import OPAQUE_MARKER, WHITEOUT_PREFIX
from berth.storage.fsutil import OPAQUE_XATTR, OVERLAY_XATTR_PREFIXES, rel_join, remove_path
from berth.storage.tarstream import BLK, CHR, DIR, FIFO, HARDLINK, SYMLINK, ChunkFeed, Member, TarReader

if TYPE_CHECKING:
    from berth.storage.tarsplit import Recorder

CHUNK = 1 << 20
WRITE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
T = TypeVar("T")


def open_uncompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap a possibly compressed stream so that reads return the uncompressed tar."""
    buf = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, CHUNK)  # type: ignore[arg-type]
    magic = buf.peek(6)[:6]
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=buf, mode="rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(buf)  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buf)  # type: ignore[return-value]
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError:
            raise InvalidInput("this layer is zstd-compressed and the zstandard module is missing "
                               "(pip install zstandard)") from None
        return zstandard.ZstdDecompressor().stream_reader(buf, read_size=CHUNK)  # type: ignore[no-any-return]
    return buf  # type: ignore[return-value]


class HashingSink:
    """A write-only sink that hashes a layer tar and counts its bytes."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@dataclass
class ApplyResult:
    diff_id: str
    size: int
    tar_bytes: int
    newest_mtime: int = 0
    skipped: list[str] = field(default_factory=list)


def clean_name(name: str, what: str = "entry") -> str:
    """Normalise a member name to a relative path inside the target ('' is the root)."""
    if "\0" in name:
        raise HostileInput(f"archive {what} {name!r} contains a NUL byte")
    n = name.lstrip("/")
    n = posixpath.normpath(n) if n else "."
    if n == ".." or n.startswith("../"):
        raise HostileInput(f"archive {what} {name!r} points outside the target; refusing the archive")
    return "" if n == "." else n


class Applier:
    def __init__(self, root: str, whiteouts: str) -> None:
        if whiteouts not in ("delete", "overlay", "aufs"):
            raise ValueError(whiteouts)
        self.root = os.path.realpath(root)
        self.overlay = whiteouts == "overlay"
        self.aufs = whiteouts == "aufs"  # aufs branches keep whiteouts as .wh. files, like the tar
        self.real_dirs: set[str] = {""}
        self.created: set[str] = set()
        self.dir_times: list[tuple[str, int]] = []  # (rel, mtime) of the directory entries
        self.size = 0
        self.newest_mtime = 0
        self.skipped: list[str] = []

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _ensure_parents(self, rel: str) -> None:
        """Every ancestor of rel must be a real directory in the target; missing ones are made."""
        parent = posixpath.dirname(rel)
        if parent in self.real_dirs:
            return
        parts = parent.split("/")
        cur = ""
        for part in parts:
            cur = rel_join(cur, part)
            if cur in self.real_dirs:
                continue
            p = self._abs(cur)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                os.mkdir(p, 0o755)
                self.created.add(cur)
                self.real_dirs.add(cur)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise HostileInput(f"archive entry {rel!r} would be written through the symlink {cur!r}; "
                                   "refusing the archive")
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"archive entry {rel!r}: its parent {cur!r} is not a directory")
            self.real_dirs.add(cur)

    def _forget(self, rel: str) -> None:
        if rel in self.real_dirs or any(d.startswith(rel + "/") for d in self.real_dirs):
            self.real_dirs = {d for d in self.real_dirs if d != rel and not d.startswith(rel + "/")}

    def _clear(self, rel: str, keep_dir: bool) -> None:
        """Make room for a new entry at rel (an existing directory is kept when keep_dir)."""
        if not rel and not keep_dir:
            raise HostileInput("archive entry would replace the layer's root directory; refusing the archive")
        p = self._abs(rel)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return
        self._forget(rel)
        remove_path(p)

    def _marker(self, rel: str) -> None:
        fd = os.open(self._abs(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o444)
        os.close(fd)

    def whiteout(self, rel: str) -> None:
        self._ensure_parents(rel)
        p = self._abs(rel)
        self._forget(rel)
        remove_path(p)
        if self.aufs:
            d, b = posixpath.split(rel)
            self._marker(rel_join(d, WHITEOUT_PREFIX + b))
        elif self.overlay:
            os.mknod(p, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def opaque(self, rel_dir: str) -> None:
        if rel_dir:
            self._ensure_parents(rel_join(rel_dir, "x"))
        d = self._abs(rel_dir)
        if self.aufs:
            self._marker(rel_join(rel_dir, OPAQUE_MARKER))
            return
        if self.overlay:
            os.setxattr(d, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        for name in os.listdir(d):
            child = rel_join(rel_dir, name)
            if child not in self.created:
                self._forget(child)
                remove_path(os.path.join(d, name))

    def _create(self, rel: str, make: Callable[[], T]) -> T:
        """make() a new entry at rel; where something is in the way, it goes first. Creating
        never follows a symlink at rel (O_EXCL, mkdir, symlink, link, mkfifo), so trying first
        and clearing only on EEXIST is as safe as clearing first, and saves a stat per entry."""
        try:
            return make()
        except FileExistsError:
            self._clear(rel, keep_dir=False)
            return make()

    def entry(self, m: Member, reader: TarReader) -> None:
        rel = clean_name(m.name)
        if m.mtime > self.newest_mtime:
            self.newest_mtime = m.mtime
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT_PREFIX):
            parent = posixpath.dirname(rel)
            if base == OPAQUE_MARKER:
                self.opaque(parent)
            elif base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                self.skipped.append(rel)
            else:
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", ".."):
                    raise HostileInput(f"archive whiteout {m.name!r} names no file; refusing the archive")
                self.whiteout(rel_join(parent, target))
            return
        kind = m.type
        if kind in (CHR, BLK):
            self.skipped.append(rel)
            return
        _check_fields(m)
        if not rel and kind != DIR:
            raise HostileInput(f"archive entry {m.name!r} names the root but is no directory; refusing the archive")
        if rel:
            self._ensure_parents(rel)
        p = self._abs(rel)
        if m.isreg():
            fd = self._create(rel, lambda: os.open(p, WRITE_NEW, 0o600))
            try:
                for view in reader.content(m):
                    while view:
                        view = view[os.write(fd, view):]
                self.size += m.size
                self._meta(fd, m, is_link=False)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
        elif kind == DIR:
            try:
                os.mkdir(p, 0o700)
            except FileExistsError:
                self._clear(rel, keep_dir=True)
                if not os.path.lexists(p):
                    os.mkdir(p, 0o700)
            self.real_dirs.add(rel)
            self._meta(p, m, is_link=False)
            self.dir_times.append((rel, m.mtime))
        elif kind == SYMLINK:
            self._create(rel, lambda: os.symlink(m.linkname, p))
            self._meta(p, m, is_link=True)
            os.utime(p, (m.mtime, m.mtime), follow_symlinks=False)
        elif kind == HARDLINK:
            target = clean_name(m.linkname, "hard link target")
            if not target:
                raise HostileInput(f"archive hard link {m.name!r} points at the root; refusing the archive")
            self._ensure_parents(target)
            tp = self._abs(target)
            try:
                tst = os.lstat(tp)
            except FileNotFoundError:
                raise InvalidInput(f"archive hard link {m.name!r} points at {m.linkname!r}, "
                                   "which the archive did not create") from None
            if stat.S_ISDIR(tst.st_mode):
                raise HostileInput(f"archive hard link {m.name!r} points at a directory; refusing the archive")
            if tp == p:
                return
            self._create(rel, lambda: os.link(tp, p, follow_symlinks=False))
        elif kind == FIFO:
            self._create(rel, lambda: os.mkfifo(p, 0o600))
            self._meta(p, m, is_link=False)
            os.utime(p, (m.mtime, m.mtime))
        else:
            raise InvalidInput(f"archive entry {m.name!r} has an unsupported type {kind!r}")
        self.created.add(rel)

    def _meta(self, target: str | int, m: Member, is_link: bool) -> None:
        """Owner first (chown clears setuid bits and file capabilities), then mode, then xattrs."""
        follow = not is_link
        os.chown(target, m.uid, m.gid, follow_symlinks=follow) if isinstance(target, str) \
            else os.fchown(target, m.uid, m.gid)
        if not is_link:
            os.chmod(target, m.mode & 0o7777)
        for key, value in m.pax.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith(OVERLAY_XATTR_PREFIXES) or name == "security.selinux":
                self.skipped.append(f"{m.name} xattr {name}")
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=follow)
            except OSError as e:
                if e.errno in (errno.ERANGE, errno.E2BIG, errno.EINVAL):
                    raise InvalidInput(f"archive entry {m.name!r}: extended attribute {name!r} cannot be set "
                                       f"({e.strerror}); refusing the archive") from None
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.skipped.append(f"{m.name} xattr {name}")

    def finish(self) -> None:
        """Directory times last (entries made inside change them). Only for directories that are
        still the ones the archive made: a later entry may have replaced one, or a parent, with a
        symlink (real_dirs forgets those), and a time must never be set through a link."""
        for rel, t in reversed(self.dir_times):
            if rel in self.real_dirs:
                os.utime(self._abs(rel), (t, t), follow_symlinks=False)


MAX_ID = 2**32 - 2  # uid/gid: (uid_t)-1 means "leave unchanged" to chown
MAX_TIME = 2**62  # seconds either way: what time_t (and utimensat) can hold, with room


def _check_fields(m: Member) -> None:
    """Refuse, in one line naming the entry, values the system calls would fail on with an
    OverflowError or ValueError (the header parser takes any number PAX or base-256 can write)."""
    if not (0 <= m.uid <= MAX_ID and 0 <= m.gid <= MAX_ID):
        raise InvalidInput(f"archive entry {m.name!r} has an owner out of range ({m.uid}:{m.gid}); "
                           "refusing the archive")
    if not -MAX_TIME <= m.mtime <= MAX_TIME:
        raise InvalidInput(f"archive entry {m.name!r} has a modification time out of range; refusing the archive")
    if "\0" in m.linkname:
        raise HostileInput(f"archive entry {m.name!r} has a link target with a NUL byte; refusing the archive")
    for key in m.pax:
        if key.startswith("SCHILY.xattr.") and ("\0" in key or not key[len("SCHILY.xattr."):]):
            raise InvalidInput(f"archive entry {m.name!r} has an invalid extended attribute name {key!r}; "
                               "refusing the archive")


def _kept(m: Member) -> bool:
    """Whether a member's content is left out of the tar-split record (read back from the layer)."""
    return m.isreg() and not posixpath.basename(m.name).startswith(WHITEOUT_PREFIX)


def _read_tar(stream: BinaryIO, visit: Callable[[Member, TarReader], None],
              recorder: Recorder | None = None) -> ChunkFeed:
    """Run visit over every member of a (possibly compressed) tar; returns the feed that read it,
    with the hash and count of every uncompressed byte, what follows the archive's end included."""
    feed = ChunkFeed(open_uncompressed(stream))
    try:
        reader = TarReader(feed, recorder, _kept)
        for m in reader:
            visit(m, reader)
        reader.finish()
    except (EOFError, gzip.BadGzipFile, lzma.LZMAError, zlib.error, OSError) as e:
        feed.close()
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidInput(f"archive is truncated or corrupt: {e}") from None
    except Exception as e:
        feed.close()
        if type(e).__module__.startswith("zstandard"):
            raise InvalidInput(f"archive is truncated or corrupt: {e}") from None
        raise
    except BaseException:
        feed.close()
        raise
    feed.close()
    return feed


def apply_tar(stream: BinaryIO, root: str, whiteouts: str, recorder: Recorder | None = None) -> ApplyResult:
    """Apply a (possibly compressed) layer tar to root; returns its DiffID and unpacked size.
    With a recorder, everything but file contents is kept for exact reassembly."""
    applier = Applier(root, whiteouts)
    feed = _read_tar(stream, applier.entry, recorder)
    applier.finish()
    if recorder is not None:
        recorder.finish()
    return ApplyResult(diff_id=feed.digest(), size=applier.size, tar_bytes=feed.count,
                       newest_mtime=applier.newest_mtime, skipped=applier.skipped)


def tar_identity(stream: BinaryIO) -> tuple[str, int]:
    """(DiffID, newest member mtime) apply_tar finds for a (possibly compressed) tar, read without
    writing anything: what an import of it would be called."""
    newest = 0

    def visit(m: Member, _reader: TarReader) -> None:
        nonlocal newest
        newest = max(newest, m.mtime)

    feed = _read_tar(stream, visit)
    return feed.digest(), newest
