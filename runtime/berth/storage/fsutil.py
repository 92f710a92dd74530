"""Small file-system helpers shared by the drivers, the differ and the tar applier."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat

from berth import faults, trace

OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
OPAQUE_XATTR = "trusted.overlay.opaque"


def rel_join(d: str, n: str) -> str:
    """A path inside a layer, relative to its root ("" is the root)."""
    return f"{d}/{n}" if d else n


def layer_xattrs(path: str) -> dict[str, bytes]:
    """The extended attributes that belong in a layer (not overlay's own, not ACL/system ones)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out: dict[str, bytes] = {}
    for n in sorted(names):
        if n.startswith(OVERLAY_XATTR_PREFIXES) or n.startswith("system.") or n == "security.selinux":
            continue
        with contextlib.suppress(OSError):
            out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def remove_path(path: str) -> None:
    """Remove a file, link or whole directory tree without following symlinks; absent is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with trace.span("fsync", path):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write a whole file crash-safely: temp name, fsync, rename, fsync of the directory. Files
    that are regenerated anyway (volatile state) skip the fsyncs: the rename alone keeps readers
    from ever seeing half a file."""
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            with trace.span("fsync", path):
                os.fsync(fd)
    finally:
        os.close(fd)
    faults.point("file: before rename")
    os.rename(tmp, path)
    if durable:
        fsync_dir(d)

