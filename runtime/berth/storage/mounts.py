"""Mount table queries and the mount/umount calls the drivers make.

The calls are the mount(2)/umount2(2) system calls, not mount(8): a container start and stop
each mount and unmount a layer, and a fork+exec of mount(8) costs 10-30 ms where the call costs
well under one. mount(8)'s generic options (ro, nosuid, bind, ...) become mount flags here; every
other option is handed to the file system as its data string, as mount(8) does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

from berth import trace
from berth.errors import BerthError
from berth.proc import run

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 1, 2, 4, 8, 16
MS_DIRSYNC, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 128, 1024, 2048, 4096, 16384
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MNT_DETACH = 2
# mount(8)'s generic options: (flags to set, flags to clear)
FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "noatime": (MS_NOATIME, 0), "atime": (0, MS_NOATIME), "nodiratime": (MS_NODIRATIME, 0),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME), "strictatime": (MS_STRICTATIME, 0),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "defaults": (0, 0),
}
# options only mount(8) understands (it sets up a loop device first): those mounts go through it
MOUNT8_OPTIONS = ("loop", "offset=", "sizelimit=")
# the working directory is process-wide: mounts that need one (overlay's relative lower dirs)
# take it one at a time
_cwd_lock = threading.Lock()


def split_options(options: str) -> tuple[int, str]:
    """mount(8)-style options as the mount flags and the file system's data string."""
    flags, data = 0, []
    for opt in (o for o in options.split(",") if o):
        if opt in FLAG_OPTIONS:
            on, off = FLAG_OPTIONS[opt]
            flags = (flags | on) & ~off
        else:
            data.append(opt)
    return flags, ",".join(data)


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
    """Mount source on target; relative paths in options and source are relative to cwd."""
    if any(o == "loop" or o.startswith(MOUNT8_OPTIONS) for o in options.split(",")):
        argv = ["mount", "-t", fstype, "-o", options, source, target]
        run(argv, cwd=cwd, what=f"mounting {fstype} on {target}")
        return
    flags, data = split_options(options)
    if fstype == "bind":
        flags |= MS_BIND
    with trace.span("mount", f"{fstype} {target}"):
        if cwd is None:
            err = _mount(fstype, source, os.path.abspath(target), flags, data)
        else:
            target = os.path.abspath(target)
            with _cwd_lock:
                here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.chdir(cwd)
                    err = _mount(fstype, source, target, flags, data)
                finally:
                    os.fchdir(here)
                    os.close(here)
    if err:
        hint = " (the kernel log, dmesg, may say why)" if err == errno.EINVAL else ""
        raise BerthError(f"mounting {fstype} on {target}: {os.strerror(err)}{hint}")


def _mount(fstype: str, source: str, target: str, flags: int, data: str) -> int:
    """mount(2); the errno on failure, else 0."""
    if _libc.mount(os.fsencode(source), os.fsencode(target), fstype.encode(), flags,
                   data.encode() if data else None) == 0:
        return 0
    return ctypes.get_errno()


def umount(target: str, lazy: bool = False) -> None:
    with trace.span("mount", f"umount {target}"):
        if _libc.umount2(os.fsencode(target), MNT_DETACH if lazy else 0) == 0:
            return
        err = ctypes.get_errno()
    raise BerthError(f"unmounting {target}: {os.strerror(err)}")
