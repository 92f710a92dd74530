"""The layer a COPY/ADD (or a WORKDIR that must be created) adds, written as a tar stream.

Decisions are made against a read-only view of the image being built on (`view`, its mounted
file system), as docker makes them against the build container: the destination is resolved with
its symlinks followed inside the image; a file copied onto an existing directory goes into it;
directories that exist keep their owner and mode, the ones created get 0755 and the --chown
owner; `--chown` names are looked up in the image's /etc/passwd and /etc/group. Every entry is
written under its resolved path, so applying the tar (storage/tarapply.py, the same hostile-tar
checks as `import`) never goes through a symlink.

Content streams: files are read in chunks into the tar, an ADDed archive is read member by
member, so memory stays bounded whatever the sizes.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from berth.container.pathres import read_in_root, resolve_components
from berth.errors import HostileInput, InvalidInput
from berth.image.buildsources import Source, walk_tree
from berth.storage.tarapply import clean_name
from berth.storage.tarwriter import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    TarWriter,
)

CHUNK = 1 << 20
Owner = tuple[int, int] | None  # None: keep the source's owner (COPY --from, archives)


def resolve(root: str, path: str) -> list[str]:
    """The components of path inside root with every existing symlink followed inside root;
    components that do not exist are kept as written."""
    return resolve_components(root, path, strict=True) or []


def _id_from(db: bytes | None, name: str, what: str, file: str) -> int:
    if name.isdigit():
        return int(name)
    for line in (db or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise InvalidInput(f"unable to find {what} {name}: no matching entries in {file} file")


def chown_owner(view: str, spec: str) -> tuple[int, int]:
    """docker's --chown=USER[:GROUP]: names from the image's own /etc/passwd and /etc/group (a
    user alone is looked up as the group too)."""
    parts = spec.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidInput(f"invalid --chown {spec!r}: use USER[:GROUP] (names or numbers)")
    user, group = parts[0], parts[-1]
    uid = _id_from(read_in_root(view, "/etc/passwd") if not user.isdigit() else None, user, "user", "passwd")
    gid = _id_from(read_in_root(view, "/etc/group") if not group.isdigit() else None, group, "group", "group")
    return uid, gid


@dataclass
class CopyRequest:
    sources: list[Source]
    dest: str  # as written (a trailing '/' means a directory), expanded
    workdir: str
    owner: Owner
    extract_archives: bool  # ADD
    ignored: Callable[[str], bool]
    context_rel: Callable[[Source], str]  # a source's path relative to the context, for .dockerignore


class LayerTar:
    """Writes the entries of one step's layer, each parent directory before its children."""

    def __init__(self, w: TarWriter, view: str) -> None:
        self.w, self.view = w, view
        self.done: set[str] = set()
        self.now = int(time.time())

    def ensure_dir(self, parts: list[str], owner: Owner) -> None:
        """Every directory of parts: the image's own (as it is) or a new one (0755, owner)."""
        for k in range(1, len(parts) + 1):
            rel = "/".join(parts[:k])
            if rel in self.done:
                continue
            self.done.add(rel)
            try:
                st = os.lstat(os.path.join(self.view, rel))
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                self.w.add(TarEntry(rel, DIRTYPE, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                    mtime=int(st.st_mtime)))
            elif st is not None and k < len(parts):
                raise InvalidInput(f"/{rel} is not a directory")
            else:
                uid, gid = owner or (0, 0)
                self.w.add(TarEntry(rel, DIRTYPE, 0o755, uid, gid, mtime=self.now))

    def entry(self, rel: str, path: str, st: os.stat_result, owner: Owner, links: dict[tuple[int, int], str]
              ) -> None:
        uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
        mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        self.done.add(rel)
        if stat.S_ISDIR(st.st_mode):
            self.w.add(TarEntry(rel, DIRTYPE, mode, uid, gid, mtime=mtime))
        elif stat.S_ISLNK(st.st_mode):
            self.w.add(TarEntry(rel, SYMTYPE, 0o777, uid, gid, mtime=mtime, linkname=os.readlink(path)))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                self.w.add(TarEntry(rel, LNKTYPE, mode, uid, gid, mtime=mtime, linkname=links[key]))
                return
            links[key] = rel
            self.w.add(TarEntry(rel, REGTYPE, mode, uid, gid, size=st.st_size, mtime=mtime), path)
        elif stat.S_ISFIFO(st.st_mode):
            self.w.add(TarEntry(rel, FIFOTYPE, mode, uid, gid, mtime=mtime))

    def tree(self, top: str, dest: list[str], owner: Owner, base_rel: str, ignored: Callable[[str], bool]) -> None:
        self.ensure_dir(dest, owner)
        links: dict[tuple[int, int], str] = {}
        prefix = "/".join(dest)
        for rel, path, st in walk_tree(top, base_rel, ignored):
            self.entry(f"{prefix}/{rel}" if prefix else rel, path, st, owner, links)

    def archive(self, path: str, dest: list[str], dir_owner: Owner) -> None:
        """An ADDed local archive unpacked at dest, streamed member by member; owners are the
        archive's (docker's), hard links and symlinks stay what they are."""
        self.ensure_dir(dest, dir_owner)
        prefix = "/".join(dest)

        def under(name: str, what: str) -> str:
            rel = clean_name(name, what)
            return f"{prefix}/{rel}" if prefix and rel else (rel or prefix)

        try:
            with tarfile.open(path, "r|*") as tf:
                for m in tf:
                    if m.issparse():
                        raise InvalidInput(f"archive entry {m.name!r} is a sparse file, which berth cannot apply")
                    rel = under(m.name, "entry")
                    if rel == prefix:
                        continue  # the archive's root: docker leaves the existing destination as it is
                    mtime, mode = int(m.mtime), m.mode & 0o7777
                    if m.isdir():
                        self.w.add(TarEntry(rel, DIRTYPE, mode, m.uid, m.gid, mtime=mtime))
                    elif m.isreg():
                        src = tf.extractfile(m)
                        assert src is not None
                        self.w.add_chunks(TarEntry(rel, REGTYPE, mode, m.uid, m.gid, size=m.size, mtime=mtime),
                                          iter(lambda src=src: src.read(CHUNK), b""))
                    elif m.issym():
                        self.w.add(TarEntry(rel, SYMTYPE, 0o777, m.uid, m.gid, mtime=mtime, linkname=m.linkname))
                    elif m.islnk():
                        target = under(m.linkname, "hard link target")
                        self.w.add(TarEntry(rel, LNKTYPE, mode, m.uid, m.gid, mtime=mtime, linkname=target))
                    elif m.isfifo():
                        self.w.add(TarEntry(rel, FIFOTYPE, mode, m.uid, m.gid, mtime=mtime))
                    elif m.ischr() or m.isblk():
                        self.w.add(TarEntry(rel, CHRTYPE if m.ischr() else BLKTYPE, mode, m.uid, m.gid, mtime=mtime,
                                            devmajor=m.devmajor, devminor=m.devminor))
                    else:
                        raise InvalidInput(f"archive entry {m.name!r} has an unsupported type {m.type!r}")
        except tarfile.TarError as e:
            raise InvalidInput(f"{os.path.basename(path)}: not a valid tar archive: {e}") from None
        except EOFError as e:
            raise InvalidInput(f"{os.path.basename(path)}: the archive is truncated or corrupt: {e}") from None


def is_archive(path: str) -> bool:
    """docker's test: a (possibly gzip/bzip2/xz compressed) tar whose first header reads."""
    try:
        with tarfile.open(path, "r|*") as tf:
            return tf.next() is not None
    except (tarfile.TarError, EOFError, OSError):
        return False


def write_copy(w: TarWriter, view: str, req: CopyRequest) -> None:
    """The entries of a COPY/ADD: docker's destination rules, against the image in view."""
    ends_slash = req.dest.endswith("/")
    if len(req.sources) > 1 and not ends_slash:
        raise InvalidInput("with more than one source file, the destination must be a directory and end with a /")
    dest = req.dest if req.dest.startswith("/") else posixpath.join("/", req.workdir or "/", req.dest)
    dest_parts = resolve(view, dest)
    dest_host = os.path.join(view, *dest_parts)
    dest_is_dir = os.path.isdir(dest_host) and not os.path.islink(dest_host)
    out = LayerTar(w, view)
    for src in req.sources:
        if stat.S_ISDIR(src.st.st_mode):
            out.tree(src.path, dest_parts, req.owner, req.context_rel(src), req.ignored)
        elif req.extract_archives and stat.S_ISREG(src.st.st_mode) and is_archive(src.path):
            out.archive(src.path, dest_parts, req.owner)
        elif stat.S_ISREG(src.st.st_mode):
            parts = [*dest_parts, src.name] if ends_slash or dest_is_dir else dest_parts
            if not parts:
                raise InvalidInput(f"cannot copy the file {src.name} onto /")
            out.ensure_dir(parts[:-1], req.owner)
            out.entry("/".join(parts), src.path, src.st, req.owner, {})
        else:
            raise HostileInput(f"{src.name}: not a regular file or directory; refusing to copy it")
