"""Health checks without a daemon.

A container with a health check (its own --health-cmd, or the image's Config.Healthcheck) gets a
small monitor process when it starts: `berth container-health ID`, in its own session, its PID in
the container's state dir. Every interval it runs the probe in the container through the OCI
runtime's exec, records the result in the container store (docker's State.Health: Status,
FailingStreak and the last five results) and, when the container turns unhealthy, carries out
--health-on-failure (kill, restart or stop). The monitor ends when the container stops running;
whatever releases a container (its exit, stop, rm) also stops the monitor, by that PID. Since the
monitor is started by `start` itself, it comes back with every start a restart policy or a boot
(`start --all-restartable`) makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from berth import proc
from berth.errors import BerthError, CommandError, NotFound
from berth.record import Record
from berth.timefmt import iso_precise
from berth.units import format_duration

if TYPE_CHECKING:
    from berth.container.config import ContainerConfig
    from berth.container.manager import ContainerManager
    from berth.container.store import Container

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
KEEP = 5  # results kept, as docker keeps
MAX_OUTPUT = 4096  # bytes of a probe's output kept, as docker keeps
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
MONITOR_COMMAND = "container-health"
PID_FILE = "health.pid"


class Check(Record):
    test: list[str]  # ["CMD-SHELL", "cmd"] or ["CMD", argv...]
    interval: float
    timeout: float
    start_period: float
    retries: int

    def argv(self) -> list[str]:
        if self.test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(self.test[1:])]
        return list(self.test[1:])

    def docker(self) -> dict[str, Any]:
        """As docker shows it in Config.Healthcheck (durations in nanoseconds)."""
        return {"Test": self.test, "Interval": int(self.interval * 1e9), "Timeout": int(self.timeout * 1e9),
                "StartPeriod": int(self.start_period * 1e9), "Retries": self.retries}


def effective(cfg: ContainerConfig, image_config: dict[str, Any]) -> Check | None:
    """The health check a container runs: the image's Healthcheck with the container's --health-*
    options over it, field by field (as docker merges them); None when there is none or it is off."""
    hc = image_config.get("Healthcheck") or {}
    if cfg.no_healthcheck:
        return None
    test = ["CMD-SHELL", cfg.health_cmd] if cfg.health_cmd else [str(x) for x in hc.get("Test") or []]
    if not test or test[0] == "NONE" or (test[0] in ("CMD", "CMD-SHELL") and len(test) < 2):
        return None
    if test[0] not in ("CMD", "CMD-SHELL"):
        test = ["CMD", *test]

    def pick(mine: float | None, key: str, default: float) -> float:
        if mine is not None:
            return float(mine)
        ns = hc.get(key)
        return float(ns) / 1e9 if isinstance(ns, (int, float)) and ns > 0 else default

    retries = cfg.health_retries if cfg.health_retries is not None else int(hc.get("Retries") or 0) or DEFAULT_RETRIES
    return Check(test, pick(cfg.health_interval, "Interval", DEFAULT_INTERVAL),
                 pick(cfg.health_timeout, "Timeout", DEFAULT_TIMEOUT),
                 pick(cfg.health_start_period, "StartPeriod", 0.0), retries)


def fresh() -> dict[str, Any]:
    return {"Status": STARTING, "FailingStreak": 0, "Log": []}


def record(health: dict[str, Any] | None, check: Check, started_at: float, start: float, end: float, code: int,
           output: str) -> dict[str, Any]:
    """The health after one probe: a success makes it healthy; a failure counts towards unhealthy
    unless it falls in the start period while the container has not yet been healthy."""
    h = dict(health or fresh())
    entry = {"Start": iso_precise(start), "End": iso_precise(end), "ExitCode": code, "Output": output}
    h["Log"] = (list(h.get("Log") or []) + [entry])[-KEEP:]
    if code == 0:
        h["Status"], h["FailingStreak"] = HEALTHY, 0
    elif not (h["Status"] == STARTING and start - started_at < check.start_period):
        h["FailingStreak"] = int(h.get("FailingStreak") or 0) + 1
        if h["FailingStreak"] >= check.retries:
            h["Status"] = UNHEALTHY
    return h


def last_output(health: dict[str, Any] | None) -> str:
    """The last probe's output and exit code, for messages."""
    log = (health or {}).get("Log") or []
    if not log:
        return "no probe has run yet"
    last = log[-1]
    return f"exit code {last['ExitCode']}: {str(last['Output']).strip()[-300:] or '(no output)'}"


# ---- the monitor process

def pid_path(m: ContainerManager, cid: str) -> str:
    return os.path.join(m.state_dir(cid), PID_FILE)


def spawn(m: ContainerManager, c: Container, revive: bool = False) -> None:
    """Start the monitor of a container that has just started (nothing without a health check);
    revive: of a running container whose monitor died, keeping the health it has recorded."""
    check = m.health_check(c)
    if check is None:
        if c.health is not None:
            m.store.set_health(c.id, None)
        return
    if not revive:
        m.store.set_health(c.id, fresh())
    argv = [sys.executable, "-m", "berth.cli.main", "--root", m.root, "--runroot", m.runroot, MONITOR_COMMAND, c.id]
    env = dict(os.environ, BERTH_CGROUP_PARENT=m.cgroup_parent)
    log = os.path.join(m.state_dir(c.id), "health.log")
    pid = proc.spawn_detached(argv, log, env)
    with open(pid_path(m, c.id), "w", encoding="ascii") as f:
        f.write(str(pid))


def _is_monitor(pid: int, cid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return MONITOR_COMMAND.encode() in argv and cid.encode() in argv


def monitor_alive(m: ContainerManager, cid: str) -> bool:
    try:
        with open(pid_path(m, cid), encoding="ascii") as f:
            return _is_monitor(int(f.read().strip()), cid)
    except (OSError, ValueError):
        return False


def stop_monitor(m: ContainerManager, cid: str, timeout: float = 5.0) -> None:
    """Stop a container's monitor by its recorded PID (not the calling process: a monitor that
    stops or restarts its container goes on its own) and wait until it is gone."""
    path = pid_path(m, cid)
    try:
        with open(path, encoding="ascii") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    if pid == os.getpid():
        return
    if _is_monitor(pid, cid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while _is_monitor(pid, cid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # our own child (a long-lived caller): reap it
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def probe(m: ContainerManager, c: Container, check: Check) -> tuple[int, str]:
    """Run the probe once in the container: (exit code, output); -1 when it ran out of time."""
    try:
        with open(os.path.join(m.state_dir(c.id), "config.json"), encoding="utf-8") as f:
            process = json.load(f)["process"]
    except (OSError, ValueError, KeyError):
        process = {}
    user = process.get("user") or {}
    from berth.container import execproc
    from berth.container.runtime import select

    rt = select(m.runroot, c.runtime)
    probe_process = execproc.process(process, check.argv(), list(process.get("env") or []),
                                     process.get("cwd") or "/", False, int(user.get("uid", 0)),
                                     int(user.get("gid", 0)), list(user.get("additionalGids") or []))
    try:
        with execproc.process_file(m.state_dir(c.id), probe_process) as path:
            cp = proc.run(rt.exec_file_argv(c.id, path), check=False, timeout=check.timeout)
    except CommandError as e:
        if e.returncode == 124:
            return -1, f"Health check exceeded timeout ({format_duration(check.timeout)})"
        return e.returncode, e.stderr[-MAX_OUTPUT:]
    out = (cp.stdout + cp.stderr)[:MAX_OUTPUT].decode(errors="replace")
    return cp.returncode, out


def act(m: ContainerManager, c: Container, action: str) -> None:
    """--health-on-failure: kill (a restart policy then applies, as podman's kill), restart or stop."""
    if action == "kill":
        from berth.container.runtime import select

        select(m.runroot, c.runtime).kill(c.id, str(signal.SIGKILL.value), all_processes=True)
    elif action == "stop":
        m.stop(c.id)
    elif action == "restart":
        m.stop(c.id)
        m.start(c.id)


def monitor(m: ContainerManager, cid: str) -> None:
    """The monitor's loop (run by `berth container-health ID`): probe every interval while the
    container this monitor was started for keeps running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        c = m.get(cid)
    except NotFound:
        return
    check = m.health_check(c)
    started = c.started_at
    if check is None or c.state != "running" or started is None:
        return
    next_at = time.monotonic() + check.interval
    while True:
        time.sleep(max(0.0, next_at - time.monotonic()))
        try:
            c = m.get(cid)
        except NotFound:
            return
        if c.state != "running" or c.started_at != started:
            return
        next_at = time.monotonic() + check.interval
        if c.paused:
            continue
        start = time.time()
        try:
            code, output = probe(m, c, check)
        except BerthError as e:
            code, output = 1, str(e)
        end = time.time()
        try:
            c = m.get(cid)
        except NotFound:
            return
        if c.state != "running" or c.started_at != started or c.stopped_by_user:
            return  # stopped while probing: the failure is the stop's, not the container's health
        before = (c.health or fresh())["Status"]
        health = record(c.health, check, started, start, end, code, output)
        m.store.set_health(cid, health)
        if health["Status"] != before:
            m.events.emit("health_status", c.id, c.name, c.config.image, health_status=health["Status"])
        next_at = time.monotonic() + check.interval
        if health["Status"] == UNHEALTHY and before != UNHEALTHY and c.config.health_on_failure != "none":
            act(m, c, c.config.health_on_failure)
            return


def wait_healthy(m: ContainerManager, ref: str, timeout: float | None = None,
                 fail_unhealthy: bool = False) -> Container:
    """Wait until the container is healthy; raises when it has no health check, stops running, is
    not healthy within timeout seconds, or (fail_unhealthy) turns unhealthy; the last probe's output
    says why."""
    deadline = None if timeout is None else time.monotonic() + timeout
    c = m.get(ref)
    if m.health_check(c) is None:
        raise BerthError(f"container {c.name} has no health check (give --health-cmd or use an image with a "
                         "HEALTHCHECK)")
    delay = 0.01
    while True:
        c = m.get(c.id)
        status = (c.health or {}).get("Status")
        if c.state == "running" and status == HEALTHY:
            return c
        if c.state != "running":
            raise BerthError(f"container {c.name} is not running ({c.state}, exit code {c.exit_code}); "
                             f"last health check: {last_output(c.health)}")
        if fail_unhealthy and status == UNHEALTHY:
            raise BerthError(f"container {c.name} is unhealthy after {c.health['FailingStreak']} failed "
                             f"check(s); last health check: {last_output(c.health)}")
        if deadline is not None and time.monotonic() >= deadline:
            raise BerthError(f"container {c.name} is {status or STARTING}, not healthy, after "
                             f"{format_duration(timeout or 0)}; last health check: {last_output(c.health)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
