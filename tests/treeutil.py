"""Helpers for tests: build trees, describe trees exactly, make tars with berth's own writer."""

from __future__ import annotations

import hashlib
import io
import os
import stat

from berth.storage import differ
from berth.storage.fsutil import layer_xattrs

T_BASE = 1_600_000_000
T_NEW = 1_700_000_000


def write(path: str, data: bytes, mode: int = 0o644, mtime: int = T_BASE) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def describe(root: str) -> dict[str, tuple[object, ...]]:
    """Every path below root (not root itself) with type, mode, owner, size, mtime, content hash,
    link target, rdev and layer xattrs; hard links are recorded as the group they belong to."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            mtime = None if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if not stat.S_ISDIR(st.st_mode) else 0, mtime, content, st.st_rdev,
                        tuple(sorted(layer_xattrs(p).items())))
    for group in inodes.values():
        if len(group) > 1:
            for rel in group:
                out[rel] = out[rel] + (tuple(sorted(group)),)
    return out


def tree_tar(root: str) -> bytes:
    """A canonical tar of a whole tree, made by berth's differ and writer."""
    items = differ.Differ(root, None).plan()
    buf = io.BytesIO()
    differ.write_tar(items, root, buf)
    return buf.getvalue()


def build_base(root: str) -> None:
    """The parent tree the change matrix works on."""
    os.makedirs(root, exist_ok=True)
    write(f"{root}/etc/config", b"key=value\n")
    write(f"{root}/f_mod", b"old content\n")
    write(f"{root}/f_chmod", b"chmod me\n")
    write(f"{root}/f_chown", b"chown me\n")
    write(f"{root}/f_del", b"delete me\n")
    write(f"{root}/d_del/a", b"a\n")
    write(f"{root}/d_del/sub/b", b"b\n")
    write(f"{root}/d_opaque/a", b"a\n")
    write(f"{root}/d_opaque/b", b"b\n")
    write(f"{root}/dir_to_file/child", b"child\n")
    write(f"{root}/file_to_dir", b"i am a file\n")
    write(f"{root}/keep/untouched", b"same\n")
    write(f"{root}/usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)
    os.symlink("usr/bin/tool", f"{root}/tool-link")
    os.utime(f"{root}/tool-link", (T_BASE, T_BASE), follow_symlinks=False)
    for d in ("etc", "d_del/sub", "d_del", "d_opaque", "dir_to_file", "keep", "usr/bin", "usr"):
        os.utime(f"{root}/{d}", (T_BASE, T_BASE))


def make_changes(root: str) -> None:
    """Every kind of change the issue lists, with fixed mtimes so all drivers agree."""
    write(f"{root}/new.txt", b"new file\n", mtime=T_NEW)
    write(f"{root}/f_mod", b"modified content, longer\n", mtime=T_NEW)
    os.chmod(f"{root}/f_chmod", 0o600)
    os.chown(f"{root}/f_chown", 1000, 1000)
    os.unlink(f"{root}/f_del")
    import shutil

    shutil.rmtree(f"{root}/d_del")
    shutil.rmtree(f"{root}/dir_to_file")
    write(f"{root}/dir_to_file", b"now a file\n", mtime=T_NEW)
    os.unlink(f"{root}/file_to_dir")
    write(f"{root}/file_to_dir/child", b"now a dir\n", mtime=T_NEW)
    shutil.rmtree(f"{root}/d_opaque")
    write(f"{root}/d_opaque/fresh", b"fresh\n", mtime=T_NEW)
    write(f"{root}/hl_a", b"linked\n", mtime=T_NEW)
    os.link(f"{root}/hl_a", f"{root}/hl_b")
    os.symlink("new.txt", f"{root}/new-link")
    os.utime(f"{root}/new-link", (T_NEW, T_NEW), follow_symlinks=False)
    write(f"{root}/xattr-file", b"x\n", mtime=T_NEW)
    os.setxattr(f"{root}/xattr-file", "user.berth.test", b"value")
    write(f"{root}/cap-file", b"cap\n", mode=0o755, mtime=T_NEW)
    # security.capability v2 for cap_net_bind_service (bit 10), effective
    cap = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")
    os.setxattr(f"{root}/cap-file", "security.capability", cap)
    write(f"{root}/setgid-file", b"sg\n", mode=0o2755, mtime=T_NEW)
    for d in ("d_opaque", "file_to_dir"):
        os.utime(f"{root}/{d}", (T_NEW, T_NEW))
