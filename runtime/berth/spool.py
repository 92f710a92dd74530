"""Spool and temporary files inside a root, named so that recovery can tell whose they are.

Every temporary file or directory berth makes in a root (a `load` from stdin spooled to disk, a
layer tar spooled for push or save, a blob being written) is named <prefix><pid>-<random>. A
command killed with it still there leaves a name whose process is gone: `sweep` (run at every
start, and by `berth storage check`) removes those, and never one whose process still runs.
"""

from __future__ import annotations

import os
import shutil

# the temporary names berth gives inside a root: a stdin load, a save's spool dir, a layer tar
# spooled for push, a blob or file being written (atomic_write, BlobStore.put_stream)
PREFIXES = (".load-", "berth-save-", ".layer-", ".tmp-")


def name(prefix: str) -> str:
    """A fresh spool name of this process."""
    return f"{prefix}{os.getpid()}-{os.urandom(6).hex()}"


def make_file(dir: str, prefix: str) -> tuple[int, str]:
    """Create a spool file in dir; returns (fd, path)."""
    os.makedirs(dir, exist_ok=True)
    path = os.path.join(dir, name(prefix))
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path


def make_dir(dir: str, prefix: str) -> str:
    path = os.path.join(dir, name(prefix))
    os.makedirs(path, mode=0o700)
    return path


def owner(n: str) -> int | None:
    """The pid a spool name belongs to (None if n is no spool name)."""
    for p in PREFIXES:
        if n.startswith(p):
            pid = n[len(p):].split("-", 1)[0]
            return int(pid) if pid.isdigit() else None
    return None


def leftovers(dir: str) -> list[str]:
    """Spool entries in dir whose process is gone."""
    try:
        names = os.listdir(dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for n in names:
        pid = owner(n)
        if pid is not None and not os.path.exists(f"/proc/{pid}"):
            out.append(os.path.join(dir, n))
    return out


def sweep(dirs: list[str]) -> list[str]:
    """Remove the dead processes' spool entries in dirs; returns what was removed."""
    removed = []
    for d in dirs:
        for p in leftovers(d):
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    continue
            removed.append(os.path.relpath(p, os.path.dirname(d)))
    return removed
