"""Where a container's cgroups live (v1 per controller, or the v2 unified tree) and what they say."""

from __future__ import annotations

import contextlib
import os
import signal
import time

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "net_cls",
                  "net_prio", "perf_event", "hugetlb", "systemd", "rdma", "misc")


def is_v2() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def dirs(path: str) -> list[str]:
    """Existing cgroup directories for a cgroupsPath like /berth/<id>."""
    rel = path.lstrip("/")
    if is_v2():
        candidates = [os.path.join(CGROUP_ROOT, rel)]
    else:
        candidates = [os.path.join(CGROUP_ROOT, c, rel) for c in V1_CONTROLLERS]
    return [d for d in candidates if os.path.isdir(d)]


def controller_file(path: str, controller: str, name: str) -> str:
    rel = path.lstrip("/")
    if is_v2():
        return os.path.join(CGROUP_ROOT, rel, name)
    return os.path.join(CGROUP_ROOT, controller, rel, name)


def blkio_weight_supported() -> bool:
    """cgroup v1 blkio has a weight only with the CFQ/BFQ schedulers; v2 has io.weight."""
    if is_v2():
        return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.subtree_control"))
    d = os.path.join(CGROUP_ROOT, "blkio")
    return os.path.exists(os.path.join(d, "blkio.weight")) or os.path.exists(os.path.join(d, "blkio.bfq.weight"))


def oom_killed(path: str) -> bool:
    """Whether the kernel OOM-killed a process of this cgroup (v1 oom_control, v2 memory.events)."""
    f = controller_file(path, "memory", "memory.events" if is_v2() else "memory.oom_control")
    try:
        with open(f, encoding="ascii") as fh:
            for line in fh:
                k, _, v = line.partition(" ")
                if k == "oom_kill" and v.strip().isdigit() and int(v) > 0:
                    return True
    except OSError:
        return False
    return False


def pids(path: str) -> set[int]:
    """Processes in the container's cgroups (any controller, nested groups included)."""
    out: set[int] = set()
    for d in dirs(path):
        for root, _subdirs, files in os.walk(d):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(root, "cgroup.procs"), encoding="ascii") as f:
                    out.update(int(x) for x in f.read().split() if x.isdigit())
    return out


def kill_all(path: str, timeout: float = 10) -> None:
    """SIGKILL every process left in the container's cgroups and wait until they are gone (a
    container whose runtime state is lost can still be found by its cgroup)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while (left := pids(path)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def remove(path: str) -> None:
    """Remove the container's cgroup directories (they must be empty of processes)."""
    for d in sorted(dirs(path), key=len, reverse=True):
        for root, subdirs, _ in os.walk(d, topdown=False):
            for s in subdirs:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, s))
        with contextlib.suppress(OSError):
            os.rmdir(d)
