"""The everyday verbs on a running container: pause/unpause (the freezer, through the runtime),
rename, port, update (limits and restart policy in place: the same path the reconciler's in-place
updates take), top (the host's ps over the container's processes), stats (cgroup v1 and v2
counters) and wait conditions."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from berth import proc
from berth.container import cgroups
from berth.container.runtime import select
from berth.errors import BerthError, InvalidInput

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager
    from berth.container.store import Container

WAIT_CONDITIONS = ("not-running", "next-exit", "removed", "healthy")


def _running(m: ContainerManager, ref: str) -> Container:
    c = m.get(ref)
    if c.state != "running":
        raise InvalidInput(f"container {c.name} is not running")
    return c


def pause(m: ContainerManager, ref: str) -> Container:
    c = _running(m, ref)
    if c.paused:
        raise InvalidInput(f"container {c.name} is already paused")
    if not select(m.runroot, c.runtime).pause(c.id):
        raise BerthError(f"could not pause container {c.name} (the {c.runtime} runtime refused; is the freezer "
                         "cgroup available?)")
    m.store.update(c.id, paused=1)
    m.events.emit("pause", c.id, c.name, c.config.image)
    return m.store.get(c.id)


def unpause(m: ContainerManager, ref: str) -> Container:
    c = _running(m, ref)
    if not c.paused:
        raise InvalidInput(f"container {c.name} is not paused")
    select(m.runroot, c.runtime).resume(c.id)
    m.store.update(c.id, paused=0)
    m.events.emit("unpause", c.id, c.name, c.config.image)
    return m.store.get(c.id)


def rename(m: ContainerManager, ref: str, new: str) -> Container:
    c = m.get(ref)
    if new == c.name:
        raise InvalidInput(f"container {c.name} is already called {new}")
    m.store.rename(c.id, new)
    m.events.emit("rename", c.id, new, c.config.image, oldName=c.name)
    network = c.config.bridge_network()
    if network and c.state == "running":
        m.networks().refresh_hosts(network)  # the other members find it by its new name
    return m.store.get(c.id)


def ports(m: ContainerManager, ref: str, private: str | None = None) -> list[tuple[str, str]]:
    """(container port/proto, host ip:port) of the published ports, as `docker port` lists them;
    private (PORT[/PROTO]) selects one."""
    from berth.container.network import parse_port

    c = m.get(ref)
    want_port, want_proto = None, None
    if private:
        p, _, proto = private.partition("/")
        if not p.isdigit() or proto not in ("", "tcp", "udp"):
            raise InvalidInput(f"invalid port {private!r}: use PORT[/tcp|udp]")
        want_port, want_proto = int(p), proto or "tcp"
    out = []
    for spec in c.config.ports:
        p = parse_port(spec)
        if want_port is not None and (p["containerPort"] != want_port or p["protocol"] != want_proto):
            continue
        out.append((f"{p['containerPort']}/{p['protocol']}", f"{p.get('hostIP') or '0.0.0.0'}:{p['hostPort']}"))
    if private and not out:
        raise InvalidInput(f"no public port '{want_port}/{want_proto}' published for {c.name}")
    return out


def update(m: ContainerManager, ref: str, memory: int | None = None, cpus: float | None = None,
           pids_limit: int | None = None, restart: str | None = None) -> Container:
    """Change limits and the restart policy in place (runc update on a running container; the
    recorded spec either way, so later starts and comparisons see it)."""
    c = m.get(ref)
    changes: dict[str, Any] = {k: v for k, v in (("memory", memory), ("cpus", cpus), ("pids_limit", pids_limit),
                                                 ("restart", restart)) if v is not None}
    if not changes:
        raise InvalidInput("update needs at least one of --memory, --cpus, --pids-limit, --restart")
    cfg = c.config.replace(**changes)
    cfg.validate()
    c = m.update_config(c.id, cfg)
    m.events.emit("update", c.id, c.name, c.config.image)
    return c


def top(m: ContainerManager, ref: str, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """The host's ps (with ps_args, default -ef) over the container's processes: (titles, rows)."""
    c = _running(m, ref)
    pids = container_pids(m, c)
    args = ps_args or ["-ef"]
    text = proc.output(["ps", *args], what="ps", timeout=30)
    lines = text.splitlines()
    if not lines:
        raise BerthError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidInput(f"ps {' '.join(args)} prints no PID column: give options that do (e.g. -ef, aux)")
    col = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            rows.append(fields)
    return titles, rows


def container_pids(m: ContainerManager, c: Container) -> set[int]:
    path = cgroups.controller_file(m.cgroups_path(c.id), "pids", "cgroup.procs")
    out: set[int] = set()
    for d in [os.path.dirname(path)]:
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(root, "cgroup.procs"), encoding="ascii") as f:
                        out.update(int(x) for x in f.read().split())
                except OSError:
                    continue
    if not out and c.pid:
        out.add(c.pid)
    return out


# ---- stats

def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> int | None:
    v = _read(path)
    if v is None:
        return None
    v = v.strip()
    return int(v) if v.isdigit() else None


def _kv(path: str) -> dict[str, int]:
    out = {}
    for line in (_read(path) or "").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def _host_memory() -> int:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _system_cpu_ns() -> int:
    """The host's CPU time in ns (all CPUs, all states), from /proc/stat, as docker samples it."""
    first = (_read("/proc/stat") or "").splitlines()[0].split()
    ticks = sum(int(x) for x in first[1:8])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def sample(m: ContainerManager, c: Container) -> dict[str, Any]:
    """One reading of a running container's counters (bytes, ns) from its cgroups and its network
    namespace."""
    path = m.cgroups_path(c.id)
    f = lambda ctrl, name: cgroups.controller_file(path, ctrl, name)  # noqa: E731
    if cgroups.is_v2():
        usage = _int(f("memory", "memory.current")) or 0
        limit = _int(f("memory", "memory.max")) or _host_memory()
        inactive = _kv(f("memory", "memory.stat")).get("inactive_file", 0)
        cpu = _kv(f("cpu", "cpu.stat")).get("usage_usec", 0) * 1000
        read = write = 0
        for line in (_read(f("io", "io.stat")) or "").splitlines():
            for field in line.split()[1:]:
                k, _, v = field.partition("=")
                if k == "rbytes":
                    read += int(v)
                elif k == "wbytes":
                    write += int(v)
    else:
        usage = _int(f("memory", "memory.usage_in_bytes")) or 0
        limit = _int(f("memory", "memory.limit_in_bytes")) or 0
        limit = min(limit, _host_memory()) if limit else _host_memory()
        inactive = _kv(f("memory", "memory.stat")).get("total_inactive_file", 0)
        cpu = _int(f("cpuacct", "cpuacct.usage")) or 0
        read = write = 0
        for line in (_read(f("blkio", "blkio.throttle.io_service_bytes")) or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                if parts[1] == "Read":
                    read += int(parts[2])
                elif parts[1] == "Write":
                    write += int(parts[2])
    pids = _int(f("pids", "pids.current")) or 0
    rx = tx = 0
    if c.config.network != "host" and c.pid:
        for line in (_read(f"/proc/{c.pid}/net/dev") or "").splitlines()[2:]:
            name, _, rest = line.partition(":")
            cols = rest.split()
            if name.strip() != "lo" and len(cols) >= 9:
                rx += int(cols[0])
                tx += int(cols[8])
    return {"cpu_ns": cpu, "system_ns": _system_cpu_ns(), "mem_usage": max(0, usage - inactive), "mem_limit": limit,
            "net_rx": rx, "net_tx": tx, "blk_read": read, "blk_write": write, "pids": pids}


def stats(m: ContainerManager, refs: list[str], interval: float = 0.5,
          previous: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per running container (every running one when refs is empty): its counters and the
    CPU share since the previous reading (given, or taken interval seconds before)."""
    cs = [m.get(r) for r in refs] if refs else m.list()
    cs = [c for c in cs if c.state == "running"]
    if refs:
        for r, c in zip(refs, [m.get(r) for r in refs], strict=True):
            if c.state != "running":
                raise InvalidInput(f"container {r} is not running")
    if previous is None:
        previous = {c.id: sample(m, c) for c in cs}
        time.sleep(interval)
    ncpu = os.cpu_count() or 1
    rows = []
    for c in cs:
        now = sample(m, c)
        before = previous.get(c.id, now)
        sys_delta = now["system_ns"] - before["system_ns"]
        cpu_delta = now["cpu_ns"] - before["cpu_ns"]
        cpu = cpu_delta / sys_delta * ncpu * 100 if sys_delta > 0 and cpu_delta > 0 else 0.0
        previous[c.id] = now
        rows.append(dict(now, id=c.id, name=c.name, cpu_percent=round(cpu, 2),
                         mem_percent=round(now["mem_usage"] / now["mem_limit"] * 100, 2) if now["mem_limit"] else 0.0))
    return rows


# ---- wait

def wait(m: ContainerManager, ref: str, condition: str = "not-running", timeout: float | None = None,
         fail_unhealthy: bool = False) -> int:
    """docker wait --condition: not-running (now, or when it exits), next-exit (the next exit even
    of a stopped container), removed; and healthy (berth's). Returns the exit code (0 for healthy)."""
    from berth.container import health
    from berth.errors import NotFound

    if condition not in WAIT_CONDITIONS:
        raise InvalidInput(f"invalid condition {condition!r}: use one of {', '.join(WAIT_CONDITIONS)}")
    if condition == "healthy":
        health.wait_healthy(m, ref, timeout, fail_unhealthy)
        return 0
    c = m.get(ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    finished = c.finished_at if c.state != "running" else None
    delay = 0.005
    while True:
        try:
            cur = m.get(c.id)
        except NotFound:
            if condition == "removed":
                return c.exit_code if c.exit_code is not None else 0
            raise
        c = cur
        if condition == "not-running" and c.state != "running":
            break
        if condition == "next-exit" and c.state != "running" and c.finished_at != finished:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise BerthError(f"container {c.name}: condition {condition} not reached within {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return c.exit_code if c.exit_code is not None else 255
