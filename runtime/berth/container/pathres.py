"""Resolve paths inside a container's rootfs the way the kernel would after pivot_root: symlinks
are followed, but never out of the rootfs (an absolute target starts at the rootfs).

What berth reads or creates inside a rootfs goes through a file descriptor, never a path checked
first and opened later: openat2(RESOLVE_IN_ROOT) where the kernel has it, otherwise a walk that
opens one component at a time relative to its directory with O_NOFOLLOW and resolves each
symlink itself. Either way a component swapped for a symlink between two steps cannot lead out.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import stat

from berth.errors import BerthError, InvalidInput

MAX_LINKS = 40
READ_LIMIT = 16 << 20

_SYS_OPENAT2 = 437  # the unified syscall table: the same number on every architecture below
_OPENAT2_ARCHES = {"x86_64", "aarch64", "armv7l", "armv8l", "riscv64", "ppc64le", "s390x", "loongarch64"}
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_use_openat2 = os.uname().machine in _OPENAT2_ARCHES


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class ExecError(BerthError):
    """The command cannot be started; exit_code as docker: 127 not found, 126 not executable."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _openat2(rootfd: int, path: str) -> int | None:
    """O_PATH fd of path resolved in root by the kernel; None when the kernel cannot do it."""
    global _use_openat2
    how = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    raw = ("/".join(_parts(path)) or ".").encode()
    for _attempt in range(16):
        fd = _libc.syscall(_SYS_OPENAT2, ctypes.c_int(rootfd), ctypes.c_char_p(raw), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EAGAIN:
            continue  # a rename raced the lookup: the kernel asks for a retry
        if err in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM):
            _use_openat2 = False  # no openat2 (or seccomp hides it): the walk below
            return None
        raise OSError(err, os.strerror(err), path)
    return None


def _walk(rootfd: int, path: str) -> int:
    """O_PATH fd of path resolved in root, one no-follow step at a time."""
    parts = _parts(path)
    stack: list[int] = []  # directories below the root on the way; the root itself is rootfd
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if stack:
                    os.close(stack.pop())
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1] if stack else rootfd)
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                parts = _parts(target) + parts
                continue
            if parts and not stat.S_ISDIR(mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return stack.pop() if stack else os.dup(rootfd)
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(root: str, path: str) -> int:
    """An O_PATH file descriptor of `path` inside root with every symlink resolved inside root.
    Raises OSError (FileNotFoundError, NotADirectoryError, ELOOP) like open(2) would."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _use_openat2:
            fd = _openat2(rootfd, path)
            if fd is not None:
                return fd
        return _walk(rootfd, path)
    finally:
        os.close(rootfd)


def read_in_root(root: str, path: str, limit: int = READ_LIMIT) -> bytes | None:
    """The contents of a regular file inside root (symlinks resolved inside root); None when it is
    missing or not a regular file. Never opens a device or FIFO, never leaves the root."""
    try:
        fd = open_in_root(root, path)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # reopening the O_PATH descriptor through /proc opens exactly that inode
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidInput(f"{path} in the container is larger than {limit >> 20} MiB")
    return data


def mkdirs_in_root(root: str, path: str, mode: int = 0o755) -> None:
    """Create the missing directories of path inside root, stopping at a component that is a
    symlink, a file or '..' (the runtime resolves those inside the container)."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in _parts(path):
            if part == "..":
                return
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, mode, dir_fd=fd)
            try:
                nfd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except (NotADirectoryError, FileNotFoundError):
                return
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


def resolve_components(root: str, path: str, strict: bool) -> list[str] | None:
    """The components of path inside root with every existing symlink followed inside root.

    strict (a build's COPY destination): components that do not exist are kept as written, and a
    non-directory in the middle or a symlink loop is an InvalidInput. Not strict: None for any of
    these (the path does not resolve)."""
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
        except FileNotFoundError:
            if not strict:
                return None
            for rest in [part, *parts]:
                if rest != "..":
                    resolved.append(rest)
                elif resolved:
                    resolved.pop()
            return resolved
        except NotADirectoryError:
            if not strict:
                return None
            raise InvalidInput(f"{'/' + '/'.join(resolved)} is not a directory") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                if not strict:
                    return None
                raise InvalidInput(f"{path}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if strict and parts and not stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"{'/' + '/'.join([*resolved, part])} is not a directory")
        resolved.append(part)
    return resolved


def resolve_in_root(root: str, path: str) -> str | None:
    """Host path of `path` inside root with every symlink resolved inside root; None if missing.
    A path, so only for trees nothing else changes meanwhile (a build's source); anything inside a
    container's rootfs goes through open_in_root."""
    resolved = resolve_components(root, path, strict=False)
    return None if resolved is None else os.path.join(root, *resolved)


def check_executable(root: str, cmd: str, env: list[str], cwd: str) -> None:
    """Fail like docker before the runtime is even started when the command cannot run."""
    if "/" in cmd:
        candidates = [cmd if cmd.startswith("/") else posixpath.join(cwd, cmd)]
    else:
        path_var = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
        candidates = [posixpath.join(d or ".", cmd) for d in path_var.split(":")]
    found_not_exec = None
    for cand in candidates:
        try:
            fd = open_in_root(root, cand)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
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
