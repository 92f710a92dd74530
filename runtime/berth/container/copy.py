"""`berth cp`: files between a container and the host (or a tar stream), as docker cp does.

Every path on the container's side is resolved inside the container's root (pathres: a symlink
there, absolute or `..`-relative, never reaches the host), and every entry is read and written
through directory file descriptors with O_NOFOLLOW, never through a path checked first and used
later: a tree swapped for a symlink half-way cannot lead the copy out either. What is written is
extracted into one destination directory the same way, so an archive (or a container's symlinks)
cannot place anything outside the given destination.

A running container's side is its own view (/proc/PID/root: its volumes and bind mounts too);
a stopped one's is its file system mounted through the layer store.

Docker's rules: a source that ends in `/.` copies a directory's content rather than the
directory; a destination that exists and is a directory receives the source under its own
name; one that does not exist is created with the source's content (its parent must exist); a
destination ending in `/` must be a directory. A symlink given as the source is copied as a
link unless follow (-L). Modes and times are kept; ownership is kept with archive (-a), else
files become the receiving side's: root in the container, the caller on the host.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, BinaryIO

from berth import faults
from berth.container import pathres
from berth.errors import HostileInput, InvalidInput

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager

CHUNK = 1 << 20
FILE_TYPES = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
              stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}


def split_ref(arg: str) -> tuple[str | None, str]:
    """CONTAINER:PATH → (container, path); a host path → (None, path). As docker: a host path with
    a colon is written with a slash before it (./a:b or /a:b)."""
    if arg == "-" or arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ctr, _, path = arg.partition(":")
    if not ctr:
        raise InvalidInput(f"invalid copy argument {arg!r}: the container name is empty")
    return ctr, path or "/"


class Side:
    """One end of a copy: a root directory paths are resolved in ("/" on the host)."""

    def __init__(self, root: str, where: str) -> None:
        self.root = root
        self.where = where  # for messages: "container web" or "host"

    def open(self, path: str) -> int:
        """O_PATH fd of path resolved inside the root (every symlink followed, inside it)."""
        try:
            return pathres.open_in_root(self.root, path)
        except FileNotFoundError:
            raise InvalidInput(f"no such file or directory in the {self.where}: {path}") from None
        except NotADirectoryError:
            raise InvalidInput(f"not a directory in the {self.where}: {path}") from None

    def lookup(self, path: str) -> tuple[int, str] | None:
        """(fd of the parent directory, name) of path, the last component not followed; None when
        the parent exists but the name does not."""
        parent, name = posixpath.split(path.rstrip("/") or "/")
        pfd = self.open(parent or "/")
        if not stat.S_ISDIR(os.fstat(pfd).st_mode):
            os.close(pfd)
            raise InvalidInput(f"not a directory in the {self.where}: {parent}")
        if not name or name in (".", ".."):
            os.close(pfd)
            fd = self.open(path)
            return _dup_parent(fd)
        try:
            os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            os.close(pfd)
            return None
        return pfd, name


def _dup_parent(fd: int) -> tuple[int, str]:
    """A directory fd as (itself, "."): entries are addressed relative to a directory fd."""
    return fd, "."


# ---- reading a tree into a tar stream ------------------------------------------------------

def _info(name: str, st: os.stat_result, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = FILE_TYPES.get(stat.S_IFMT(st.st_mode), tarfile.REGTYPE)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = int(st.st_mtime)
    ti.linkname = link
    ti.size = st.st_size if ti.type == tarfile.REGTYPE else 0
    if ti.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return ti


class TreeReader:
    """Writes the tree at (dirfd, name) into a tar, entries named under arcname ("" = the
    directory's content at the top); hard links inside the tree stay hard links."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}

    def add(self, dirfd: int, name: str, arcname: str, follow: bool = False) -> None:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=follow)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return  # docker leaves sockets out too
        if kind == stat.S_IFDIR:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW),
                          dir_fd=dirfd)
            try:
                if arcname:
                    self.tar.addfile(_info(arcname, st))
                for child in sorted(os.listdir(sub)):
                    self.add(sub, child, f"{arcname}/{child}" if arcname else child)
            finally:
                os.close(sub)
            return
        if kind == stat.S_IFLNK:
            self.tar.addfile(_info(arcname, st, os.readlink(name, dir_fd=dirfd)))
            return
        key = (st.st_dev, st.st_ino)
        if kind != stat.S_IFDIR and st.st_nlink > 1 and key in self.links:
            ti = _info(arcname, st, self.links[key])
            ti.type, ti.size = tarfile.LNKTYPE, 0
            self.tar.addfile(ti)
            return
        if st.st_nlink > 1:
            self.links[key] = arcname
        if kind != stat.S_IFREG:
            self.tar.addfile(_info(arcname, st))
            return
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), dir_fd=dirfd)
        with os.fdopen(fd, "rb") as f:
            now = os.fstat(f.fileno())
            if (now.st_dev, now.st_ino) != key:
                raise InvalidInput(f"{arcname} changed while it was being copied")
            self.tar.addfile(_info(arcname, now), f)


# ---- writing a tar stream into a directory -------------------------------------------------

def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise HostileInput(f"archive entry {name!r} points outside the destination")
    return "/".join(parts)


class Extractor:
    """Extracts tar entries into the directory `base` inside `root`: each entry's parent resolved
    inside root (a symlink never leads out of it), every entry created relative to its parent's fd
    without following a symlink; owner (uid, gid) replaces the archive's ownership when given."""

    def __init__(self, root: str, base: str, owner: tuple[int, int] | None) -> None:
        self.root = root
        self.base = base.strip("/")
        self.owner = owner
        self.dir_times: list[tuple[str, int]] = []

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if self.base else rel or "."

    def _parent(self, rel: str) -> int:
        parent = self._path(posixpath.dirname(rel))
        try:
            fd = pathres.open_in_root(self.root, parent)
        except FileNotFoundError:
            pathres.mkdirs_in_root(self.root, parent)
            fd = pathres.open_in_root(self.root, parent)
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidInput(f"cannot copy {rel}: {parent} is not a directory in the destination")
        return fd

    def entry(self, m: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        rel = _clean(m.name)
        if not rel:
            if m.isdir():
                self.dir_times.append(("", int(m.mtime)))
            return
        pfd = self._parent(rel)
        name = posixpath.basename(rel)
        try:
            self._create(pfd, name, rel, m, tf)
        finally:
            os.close(pfd)
        faults.point("cp: entry written")

    def _make_room(self, pfd: int, name: str, rel: str, m: tarfile.TarInfo) -> bool:
        """Clear the way for the entry; True when a directory of that name is there to reuse."""
        try:
            old = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(old.st_mode):
            if m.isdir():
                return True
            raise InvalidInput(f"cannot overwrite directory {rel} with a non-directory")
        if m.isdir():
            raise InvalidInput(f"cannot overwrite non-directory {rel} with a directory")
        os.unlink(name, dir_fd=pfd)
        return False

    def _create(self, pfd: int, name: str, rel: str, m: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        exists = self._make_room(pfd, name, rel, m)
        uid, gid = self.owner if self.owner is not None else (m.uid, m.gid)
        mode = m.mode & 0o7777
        if m.isdir():
            if not exists:
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            self.dir_times.append((rel, int(m.mtime)))
            return
        if m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            return
        if m.islnk():
            tfd = pathres.open_in_root(self.root, self._path(_clean(m.linkname)))
            try:
                if stat.S_ISDIR(os.fstat(tfd).st_mode):
                    raise HostileInput(f"archive entry {m.name!r} is a hard link to a directory")
                os.link(f"/proc/self/fd/{tfd}", name, dst_dir_fd=pfd, follow_symlinks=True)
            finally:
                os.close(tfd)
            return
        if m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            with os.fdopen(fd, "wb") as out:
                src = tf.extractfile(m)
                assert src is not None
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
                os.utime(fd, (m.mtime, m.mtime))
            return
        kinds = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
        if m.type not in kinds:
            raise InvalidInput(f"archive entry {m.name!r} has a type berth cannot copy ({m.type!r})")
        old_umask = os.umask(0)  # the mode as archived (mknod has no fd to fchmod afterwards)
        try:
            os.mknod(name, kinds[m.type] | mode, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        finally:
            os.umask(old_umask)
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: the entries written into them changed them."""
        for rel, mtime in reversed(self.dir_times):
            try:
                fd = pathres.open_in_root(self.root, self._path(rel))
            except OSError:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
            finally:
                os.close(fd)

    def extract(self, stream: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for m in tf:
                    self.entry(m, tf)
        except tarfile.TarError as e:
            raise InvalidInput(f"not a valid tar stream: {e}") from None
        self.finish()


# ---- the copy ------------------------------------------------------------------------------

class Copier:
    """berth cp for the containers of one root."""

    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers

    @contextlib.contextmanager
    def side(self, ref: str) -> Iterator[Side]:
        """The container's root: a running one's own view (volumes and bind mounts included), a
        stopped one's file system mounted through the layer store."""
        c = self.containers.get(ref)
        where = f"container {c.name}"
        if c.state == "running" and c.pid > 0 and _reachable(f"/proc/{c.pid}/root"):
            yield Side(f"/proc/{c.pid}/root", where)
            return
        with self.containers.layers.mounted(c.rw_layer) as rootfs:
            yield Side(rootfs, where)

    def copy(self, src: str, dst: str, archive: bool = False, follow: bool = False,
             stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        sc, spath = split_ref(src)
        dc, dpath = split_ref(dst)
        if sc is not None and dc is not None:
            raise InvalidInput("copying between containers is not supported: copy to the host first")
        if sc is None and dc is None:
            raise InvalidInput("one of SRC and DEST must be CONTAINER:PATH")
        if sc is not None:
            with self.side(sc) as side:
                if dpath == "-":
                    assert stdout is not None
                    self._to_stream(side, spath, follow, stdout)
                else:
                    owner = None if archive else (os.getuid(), os.getgid())
                    self._copy(side, spath, Side("/", "host"), _host(dpath), owner, follow)
            return
        assert dc is not None
        with self.side(dc) as side:
            owner = None if archive else (0, 0)
            if spath == "-":
                assert stdin is not None
                self._from_stream(stdin, side, dpath, owner)
            else:
                self._copy(Side("/", "host"), _host(spath), side, dpath, owner, follow)

    @staticmethod
    def _source(side: Side, path: str, follow: bool) -> tuple[int, str, bool, str]:
        """(dir fd, name, is a directory, name in the archive) of a source; arcname "" means the
        directory's content (a path ending in /.)."""
        contents = path == "." or path.endswith("/.")
        found = side.lookup(path)
        if found is None:
            raise InvalidInput(f"no such file or directory in the {side.where}: {path}")
        pfd, name = found
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode) and (follow or path.endswith("/")):
            os.close(pfd)
            pfd, name = _dup_parent(side.open(path))
            st = os.fstat(pfd)
        is_dir = stat.S_ISDIR(st.st_mode)
        if path.endswith("/") and not is_dir:
            os.close(pfd)
            raise InvalidInput(f"not a directory in the {side.where}: {path}")
        base = posixpath.basename(path.rstrip("/")) if name == "." else name
        return pfd, name, is_dir, "" if contents or base in ("", ".", "..") else base

    def _copy(self, src: Side, spath: str, dst: Side, dpath: str, owner: tuple[int, int] | None,
              follow: bool) -> None:
        pfd, name, is_dir, arcname = self._source(src, spath, follow)
        try:
            root, base, arcname = self._destination(dst, dpath, is_dir, arcname)
            keep: list[int] = []
            if root.startswith("fd:"):
                keep.append(int(root[3:]))
                root = f"/proc/self/fd/{root[3:]}"
            try:
                _pipe(lambda tar: TreeReader(tar).add(pfd, name, arcname),
                      lambda stream: Extractor(root, base, owner).extract(stream))
            finally:
                for fd in keep:
                    os.close(fd)
        finally:
            os.close(pfd)

    @staticmethod
    def _destination(dst: Side, dpath: str, src_is_dir: bool, arcname: str) -> tuple[str, str, str]:
        """(root, base inside it, name the source gets there) by docker's rules. On the host the
        root is the destination directory itself (fd:N), so nothing outside it can change."""
        host = dst.root == "/"
        try:
            fd = dst.open(dpath)
        except InvalidInput:
            fd = None
        if fd is not None:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                if host:
                    return f"fd:{fd}", "", arcname
                os.close(fd)
                return dst.root, dpath, arcname
            os.close(fd)
            if src_is_dir:
                raise InvalidInput(f"cannot copy a directory to a file: {dpath} exists in the {dst.where} "
                                   "and is not a directory")
        elif dpath.endswith("/") and not src_is_dir:
            raise InvalidInput(f"destination directory {dpath} does not exist in the {dst.where}")
        parent, last = posixpath.split(dpath.rstrip("/"))
        pfd = dst.open(parent or "/")
        if not stat.S_ISDIR(os.fstat(pfd).st_mode):
            os.close(pfd)
            raise InvalidInput(f"not a directory in the {dst.where}: {parent}")
        # the source takes the new name (a directory: created, with the source's content in it)
        if host:
            return f"fd:{pfd}", "", last
        os.close(pfd)
        return dst.root, parent or "/", last

    def _to_stream(self, side: Side, path: str, follow: bool, sink: BinaryIO) -> None:
        pfd, name, _is_dir, arcname = self._source(side, path, follow)
        try:
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                TreeReader(tar).add(pfd, name, arcname)
        finally:
            os.close(pfd)

    @staticmethod
    def _from_stream(stream: BinaryIO, side: Side, dpath: str, owner: tuple[int, int] | None) -> None:
        fd = side.open(dpath)
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise InvalidInput(f"a tar stream is extracted into a directory; {dpath} in the {side.where} "
                                   "is not one")
        finally:
            os.close(fd)
        Extractor(side.root, dpath, owner).extract(stream)


def _reachable(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def _host(path: str) -> str:
    keep_slash = "/" if path.endswith("/") and path != "/" else ""
    suffix = "/." if path == "." or path.endswith("/.") else ""
    return os.path.abspath(path) + (suffix or keep_slash)


def _pipe(produce: object, consume: object) -> None:
    """produce(tar) writes a tar into a pipe in a thread while consume(stream) reads it."""
    r, w = os.pipe()
    failed: list[BaseException] = []

    def writer() -> None:
        try:
            with os.fdopen(w, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                produce(tar)  # type: ignore[operator]
        except BrokenPipeError:
            pass  # the reader failed; its error is the one to report
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            failed.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        with os.fdopen(r, "rb") as f:
            consume(f)  # type: ignore[operator]
            while f.read(CHUNK):
                pass
    finally:
        t.join()
    if failed:
        raise failed[0]
