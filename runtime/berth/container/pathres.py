"""Resolve paths inside a container's rootfs the way the kernel would after pivot_root: symlinks
are followed, but never out of the rootfs (an absolute target starts at the rootfs)."""

from __future__ import annotations

import os
import posixpath
import stat

from berth.errors import BerthError

MAX_LINKS = 40


class ExecError(BerthError):
    """The command cannot be started; exit_code as docker: 127 not found, 126 not executable."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def resolve_in_root(root: str, path: str) -> str | None:
    """Host path of `path` inside root with every symlink resolved inside root; None if missing."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def check_executable(root: str, cmd: str, env: list[str], cwd: str) -> None:
    """Fail like docker before the runtime is even started when the command cannot run."""
    if "/" in cmd:
        candidates = [cmd if cmd.startswith("/") else posixpath.join(cwd, cmd)]
    else:
        path_var = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
        candidates = [posixpath.join(d or ".", cmd) for d in path_var.split(":")]
    found_not_exec = None
    for cand in candidates:
        host = resolve_in_root(root, cand)
        if host is None:
            continue
        st = os.stat(host)
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return
        found_not_exec = cand
        if "/" in cmd:
            break
    if found_not_exec is not None:
        raise ExecError(f'exec: "{cmd}": permission denied', 126)
    if "/" in cmd:
        raise ExecError(f'exec: "{cmd}": no such file or directory', 127)
    raise ExecError(f'exec: "{cmd}": executable file not found in $PATH', 127)
