"""Compare two trees and render the difference as a canonical OCI layer tar.

Every driver goes through this module. A native differ (overlay's upper dir, btrfs send) only
narrows *where* to look (`Candidates`); what counts as a change and how it is written is decided
here, once. That is why a native diff and the naive walk give byte-identical tars.

Canonical order, per directory: the directory's own entry, then an opaque marker (when no entry
of the old directory survives), else one whiteout per deleted name, then the surviving and new
children sorted by their byte names, each followed by its own subtree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from berth.storage.fsutil import layer_xattrs, rel_join
from berth.storage.tarwriter import LNKTYPE, REGTYPE, Sink, TarEntry, TarWriter, entry_from_stat

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass
class Candidates:
    """Where changes may be: exact paths, and subtrees to compare in full ('' = everything)."""

    paths: set[str] = field(default_factory=set)
    subtrees: set[str] = field(default_factory=set)

    def ancestors(self) -> set[str]:
        out: set[str] = set()
        for p in self.paths | self.subtrees:
            while p:
                p = os.path.dirname(p)
                if p in out:
                    break
                out.add(p)
        return out


EVERYTHING = Candidates(subtrees={""})


@dataclass(frozen=True)
class Item:
    """One step of a diff: kind is 'A', 'C' (an entry of the new tree), 'W' (whiteout), 'O' (opaque)."""

    kind: str
    path: str
    removed: tuple[str, ...] = ()


def _names(path: str) -> dict[str, os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return {e.name: e for e in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _bkey(name: str) -> bytes:
    return os.fsencode(name)


def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == nb or na == 0 or nb == 0)


def stat_changed(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's rule (mode, owner, rdev; size and mtime for non-dirs) plus the link count."""
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid
            or old.st_rdev != new.st_rdev):
        return True
    if stat.S_ISDIR(new.st_mode):
        return False
    if old.st_size != new.st_size or not _same_time(old, new):
        return True
    return not stat.S_ISDIR(new.st_mode) and old.st_nlink != new.st_nlink


class Differ:
    """Plans the difference of new_root against old_root (None: no parent, all added)."""

    def __init__(self, new_root: str, old_root: str | None, candidates: Candidates = EVERYTHING) -> None:
        self.new_root = new_root
        self.old_root = old_root
        self.cand = candidates
        self.interesting = candidates.ancestors()

    def plan(self) -> list[Item]:
        return list(self._visit("", "" in self.cand.subtrees))

    def _added(self, rel: str) -> Iterator[Item]:
        entries = _names(os.path.join(self.new_root, rel))
        for name in sorted(entries, key=_bkey):
            p = rel_join(rel, name)
            yield Item("A", p)
            if entries[name].is_dir(follow_symlinks=False):  # the directory entry's type: no stat
                yield from self._added(p)

    def _changed(self, p: str, ost: os.stat_result, nst: os.stat_result) -> bool:
        if stat_changed(ost, nst):
            return True
        assert self.old_root is not None
        return layer_xattrs(os.path.join(self.old_root, p)) != layer_xattrs(os.path.join(self.new_root, p))

    def _visit(self, rel: str, full: bool) -> Iterator[Item]:
        new = _names(os.path.join(self.new_root, rel))
        old = _names(os.path.join(self.old_root, rel)) if self.old_root is not None else {}
        if old and not (old.keys() & new.keys()):
            yield Item("O", rel, tuple(sorted(old, key=_bkey)))
        else:
            for name in sorted(old.keys() - new.keys(), key=_bkey):
                p = rel_join(rel, name)
                if full or p in self.cand.paths or p in self.cand.subtrees:
                    yield Item("W", p)
        for name in sorted(new, key=_bkey):
            p = rel_join(rel, name)
            sub_full = full or p in self.cand.subtrees
            if not (sub_full or p in self.cand.paths or p in self.interesting):
                continue
            nst = new[name].stat(follow_symlinks=False)
            ost = old[name].stat(follow_symlinks=False) if name in old else None
            if stat.S_ISDIR(nst.st_mode):
                if ost is None or not stat.S_ISDIR(ost.st_mode):
                    yield Item("A" if ost is None else "C", p)
                    yield from self._added(p)
                    continue
                child = list(self._visit(p, sub_full))
                if child or self._changed(p, ost, nst):
                    yield Item("C", p)
                yield from child
            elif ost is None:
                yield Item("A", p)
            elif (not stat.S_ISDIR(ost.st_mode) and not self._changed(p, ost, nst)):
                continue
            else:
                yield Item("C", p)


def changes(items: list[Item]) -> list[tuple[str, str]]:
    """docker-style (path, A|C|D) lines for a planned diff."""
    out: list[tuple[str, str]] = []
    for it in items:
        if it.kind == "O":
            out.extend((rel_join(it.path, n), "D") for n in it.removed)
        elif it.kind == "W":
            out.append((it.path, "D"))
        else:
            out.append((it.path, it.kind))
    return out


def write_tar(items: list[Item], new_root: str, sink: Sink) -> int:
    """Render a planned diff as a layer tar into sink; returns the bytes of regular files in it."""
    w = TarWriter(sink)
    links: dict[tuple[int, int], str] = {}
    file_bytes = 0
    for it in items:
        if it.kind == "W":
            d, b = os.path.split(it.path)
            w.add(TarEntry(rel_join(d, WHITEOUT_PREFIX + b), REGTYPE))
            continue
        if it.kind == "O":
            w.add(TarEntry(rel_join(it.path, OPAQUE_MARKER), REGTYPE))
            continue
        full = os.path.join(new_root, it.path)
        st = os.lstat(full)
        linkname = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
        entry = entry_from_stat(it.path, st, linkname, layer_xattrs(full))
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = links.get(key)
            if first is not None:
                entry.type, entry.size, entry.linkname = LNKTYPE, 0, first
            else:
                links[key] = it.path
        if entry.type == REGTYPE:
            file_bytes += entry.size
        w.add(entry, full)
    w.close()
    return file_bytes


def diff_size(items: list[Item], new_root: str) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for it in items:
        if it.kind in ("A", "C"):
            st = os.lstat(os.path.join(new_root, it.path))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
