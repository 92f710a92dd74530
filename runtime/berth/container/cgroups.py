"""Where a container's cgroups live (v1 per controller, or the v2 unified tree) and what they say."""

from __future__ import annotations

import contextlib
import os

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


def remove(path: str) -> None:
    """Remove the container's cgroup directories (they must be empty of processes)."""
    for d in sorted(dirs(path), key=len, reverse=True):
        for root, subdirs, _ in os.walk(d, topdown=False):
            for s in subdirs:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, s))
        with contextlib.suppress(OSError):
            os.rmdir(d)
