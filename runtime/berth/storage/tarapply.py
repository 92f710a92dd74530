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
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from berth.errors import HostileInput, InvalidInput
from berth.storage.differ import OPAQUE_MARKER, WHITEOUT_PREFIX
from berth.storage.fsutil import OPAQUE_XATTR, OVERLAY_XATTR_PREFIXES, rel_join, remove_path
from berth.storage.tarsplit import Recorder

CHUNK = 1 << 20
TAIL = 2 * CHUNK + (64 << 10)  # bytes HashingReader keeps: more than tarfile and its buffer read ahead


class HashingReader(io.RawIOBase):
    """Reads through to `inner`, hashing and counting every byte that passes."""

    def __init__(self, inner: BinaryIO, recorder: Recorder | None = None) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.count = 0
        self.recorder = recorder
        self.tail = bytearray()  # the last TAIL bytes read (the tar's end is checked in them)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.hash.update(data)
        self.count += n
        if self.recorder is not None:
            self.recorder.feed(data)
        self.tail += data
        if len(self.tail) > TAIL:
            del self.tail[: len(self.tail) - TAIL]
        return n

    def block(self, offset: int) -> bytes:
        """The bytes read so far of the 512-byte block at offset (fewer where the stream ended)."""
        start = offset - (self.count - len(self.tail))
        return bytes(self.tail[max(start, 0): max(start + tarfile.BLOCKSIZE, 0)])


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
    """A write-only sink that hashes a layer tar and counts the bytes of its regular files."""

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
        self.dir_times: list[tuple[str, int]] = []
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

    def entry(self, m: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        rel = clean_name(m.name)
        self.newest_mtime = max(self.newest_mtime, int(m.mtime))
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
        if m.ischr() or m.isblk():
            self.skipped.append(rel)
            return
        if rel:
            self._ensure_parents(rel)
        p = self._abs(rel)
        if m.isdir():
            self._clear(rel, keep_dir=True)
            if not os.path.lexists(p):
                os.mkdir(p, 0o700)
            self.real_dirs.add(rel)
            self._meta(p, m, is_link=False)
            self.dir_times.append((p, int(m.mtime)))
        elif m.isreg():
            self._clear(rel, keep_dir=False)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                src = tf.extractfile(m)
                assert src is not None
                remaining = m.size
                while remaining:
                    chunk = src.read(min(CHUNK, remaining))
                    if not chunk:
                        raise InvalidInput(f"archive is truncated inside {m.name!r}")
                    os.write(fd, chunk)
                    remaining -= len(chunk)
                self.size += m.size
                self._meta(fd, m, is_link=False)
                os.utime(fd, (int(m.mtime), int(m.mtime)))
            finally:
                os.close(fd)
        elif m.issym():
            self._clear(rel, keep_dir=False)
            os.symlink(m.linkname, p)
            self._meta(p, m, is_link=True)
            os.utime(p, (int(m.mtime), int(m.mtime)), follow_symlinks=False)
        elif m.islnk():
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
            self._clear(rel, keep_dir=False)
            os.link(tp, p, follow_symlinks=False)
        elif m.isfifo():
            self._clear(rel, keep_dir=False)
            os.mkfifo(p, 0o600)
            self._meta(p, m, is_link=False)
            os.utime(p, (int(m.mtime), int(m.mtime)))
        else:
            raise InvalidInput(f"archive entry {m.name!r} has an unsupported type {m.type!r}")
        self.created.add(rel)

    def _meta(self, target: str | int, m: tarfile.TarInfo, is_link: bool) -> None:
        """Owner first (chown clears setuid bits and file capabilities), then mode, then xattrs."""
        follow = not is_link
        os.chown(target, m.uid, m.gid, follow_symlinks=follow) if isinstance(target, str) \
            else os.fchown(target, m.uid, m.gid)
        if not is_link:
            os.chmod(target, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
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
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.skipped.append(f"{m.name} xattr {name}")

    def finish(self) -> None:
        for p, t in reversed(self.dir_times):
            os.utime(p, (t, t))


def _check_end(reader: HashingReader, offset: int) -> None:
    """tarfile stops quietly at a cut or damaged header after the first entry; a tar ends with a
    zero block, or (as Go's archive/tar accepts) exactly at an entry's end."""
    blk = reader.block(offset)
    if 0 < len(blk) < tarfile.BLOCKSIZE:
        raise InvalidInput(f"archive is truncated: it ends inside the header at byte {offset}")
    if blk.count(0) != len(blk):
        raise InvalidInput(f"archive is corrupt: the header at byte {offset} is not a valid tar header")


def apply_tar(stream: BinaryIO, root: str, whiteouts: str, recorder: Recorder | None = None) -> ApplyResult:
    """Apply a (possibly compressed) layer tar to root; returns its DiffID and unpacked size.
    With a recorder, everything but file contents is kept for exact reassembly."""
    reader = HashingReader(open_uncompressed(stream), recorder)
    applier = Applier(root, whiteouts)
    try:
        buffered = io.BufferedReader(reader, CHUNK)
        tf = tarfile.open(fileobj=buffered, mode="r|", errorlevel=2)  # noqa: SIM115 - streamed below
        for m in tf:
            if m.issparse():
                raise InvalidInput(f"archive entry {m.name!r} is a sparse file, which berth cannot apply")
            if recorder is not None:
                kept = m.isreg() and not posixpath.basename(m.name).startswith(WHITEOUT_PREFIX)
                recorder.member(m.name, m.offset_data, m.size, kept)
            applier.entry(m, tf)
        _check_end(reader, tf.offset)
        applier.finish()
        # the tar stream may carry padding after the end-of-archive blocks: it is part of the DiffID
        while buffered.read(CHUNK):
            pass
        if recorder is not None:
            recorder.finish()
    except tarfile.TarError as e:
        raise InvalidInput(f"not a valid tar archive: {e}") from None
    except (EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidInput(f"archive is truncated or corrupt: {e}") from None
    except Exception as e:
        if type(e).__module__.startswith("zstandard"):
            raise InvalidInput(f"archive is truncated or corrupt: {e}") from None
        raise
    return ApplyResult(diff_id="sha256:" + reader.hash.hexdigest(), size=applier.size,
                       tar_bytes=reader.count, newest_mtime=applier.newest_mtime,
                       skipped=applier.skipped)


def tar_identity(stream: BinaryIO) -> tuple[str, int]:
    """(DiffID, newest member mtime) apply_tar finds for a (possibly compressed) tar, read without
    writing anything: what an import of it would be called."""
    reader = HashingReader(open_uncompressed(stream))
    newest = 0
    try:
        buffered = io.BufferedReader(reader, CHUNK)
        with tarfile.open(fileobj=buffered, mode="r|", errorlevel=2) as tf:
            for m in tf:
                newest = max(newest, int(m.mtime))
            while buffered.read(CHUNK):
                pass
    except tarfile.TarError as e:
        raise InvalidInput(f"not a valid tar archive: {e}") from None
    except (EOFError, gzip.BadGzipFile, lzma.LZMAError) as e:
        raise InvalidInput(f"archive is truncated or corrupt: {e}") from None
    return "sha256:" + reader.hash.hexdigest(), newest
