"""Mount table queries and the mount/umount calls the drivers make."""

from __future__ import annotations

import os

from berth.proc import run


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mountpoints() -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return {_unescape(line.split()[4]) for line in f}


def is_mountpoint(path: str) -> bool:
    return os.path.realpath(path) in mountpoints()


def mount(fstype: str, source: str, target: str, options: str = "", cwd: str | None = None) -> None:
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", options]
    run(argv + [source, target], cwd=cwd, what=f"mounting {fstype} on {target}")


def umount(target: str, lazy: bool = False) -> None:
    run(["umount"] + (["-l"] if lazy else []) + [target], what=f"unmounting {target}")
