"""Per-object advisory locks (flock).

flock is released by the kernel when a process dies, so a lock that can be taken proves that
its previous holder is gone: that is how cleanup tells a crashed operation from a running one.
"""

from __future__ import annotations

import fcntl
import os
from types import TracebackType

from berth import trace


class FileLock:
    def __init__(self, path: str, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self.fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        flags = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            with trace.span("lock", os.path.basename(self.path)):
                fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
