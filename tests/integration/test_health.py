"""Health checks without a daemon, on real containers: the per-container monitor probes through the
runtime's exec, records docker's State.Health, carries out --health-on-failure, comes back with a
restart, and is gone (by its PID) when the container stops or is removed."""

from __future__ import annotations

import json
import os
import time

import pytest

from berth.engine import Engine
from tests.conftest import berth, wait_for

FAST = ["--network", "none", "--health-interval", "0.2s"]
TERM_EXITS = "trap 'exit 0' TERM; while :; do sleep 0.1; done"  # stops at once (PID 1 ignores SIGTERM otherwise)


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def state(env: dict[str, str], name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(berth(env, "inspect", "--type", "container", name).stdout)[0]  # type: ignore[no-any-return]


def health(env: dict[str, str], name: str) -> dict:  # type: ignore[type-arg]
    return state(env, name)["State"].get("Health") or {}  # type: ignore[no-any-return]


def monitor_pid(env: dict[str, str], cid: str) -> int | None:
    try:
        with open(os.path.join(env["BERTH_RUNROOT"], "containers", cid, "health.pid")) as f:
            return int(f.read())
    except OSError:
        return None


def processes_naming(cid: str) -> list[int]:
    """Live processes whose command line names the container (its conmon, monitor, exit command)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/status") as f:
                zombie = "\nState:\tZ" in f.read()
        except OSError:
            continue
        if cid.encode() in cmd and not zombie:
            found.append(int(pid))
    return found


def ps_status(env: dict[str, str], name: str) -> str:
    lines = berth(env, "ps", "-a").stdout.splitlines()
    row = next(ln for ln in lines[1:] if ln.split()[-1] == name)
    start = lines[0].index("STATUS")
    return row[start:lines[0].index("NAMES")].strip()


def test_healthy_container_is_reported_and_its_monitor_goes_with_it(env: dict[str, str]) -> None:
    cid = berth(env, "run", "-d", "--name", "web", *FAST, "--health-cmd", "test -e /tmp/ready && echo ok",
                "--health-retries", "2", "busybox:bb", "sleep", "1000").stdout.strip()
    assert "(health: starting)" in ps_status(env, "web")
    wait_for(lambda: health(env, "web").get("Status") == "unhealthy", what="unhealthy before /tmp/ready")
    assert "(unhealthy)" in ps_status(env, "web")
    berth(env, "exec", "web", "touch", "/tmp/ready")
    assert berth(env, "wait", "--condition", "healthy", "--timeout", "20", "web").stdout.strip() == "healthy"
    assert ps_status(env, "web").endswith("(healthy)")
    h = health(env, "web")
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0
    assert 1 <= len(h["Log"]) <= 5 and h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "ok\n"
    assert any(entry["ExitCode"] == 1 for entry in h["Log"]) or len(h["Log"]) == 5
    assert state(env, "web")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -e /tmp/ready && echo ok"], "Interval": 200_000_000,
        "Timeout": 30_000_000_000, "StartPeriod": 0, "Retries": 2}
    pid = monitor_pid(env, cid)
    assert pid is not None and pid in processes_naming(cid)
    berth(env, "rm", "-f", "web")
    assert pid not in processes_naming(cid), "the monitor outlived its container"
    # conmon and its exit command finish on their own, just after
    wait_for(lambda: processes_naming(cid) == [], what="every process of the removed container gone")
    assert not os.path.exists(os.path.join(env["BERTH_RUNROOT"], "containers", cid))


def test_on_failure_stop_and_kill(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "stopper", *FAST, "--health-cmd", "echo broken; exit 3", "--health-retries", "2",
          "--health-on-failure", "stop", "busybox:bb", "sh", "-c", TERM_EXITS)
    berth(env, "run", "-d", "--name", "killed", *FAST, "--health-cmd", "false", "--health-retries", "1",
          "--health-on-failure", "kill", "busybox:bb", "sleep", "1000")
    for name in ("stopper", "killed"):
        wait_for(lambda n=name: state(env, n)["State"]["Status"] == "exited", what=f"{name} acted on")
    h = health(env, "stopper")
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 2
    assert h["Log"][-1]["ExitCode"] == 3 and h["Log"][-1]["Output"] == "broken\n"
    assert state(env, "killed")["State"]["ExitCode"] == 137
    for name in ("stopper", "killed"):
        cid = state(env, name)["Id"]
        wait_for(lambda c=cid: processes_naming(c) == [], what=f"{name}'s processes gone")


def test_on_failure_restart_brings_a_new_monitor(env: dict[str, str]) -> None:
    cid = berth(env, "run", "-d", "--name", "phoenix", *FAST, "--health-cmd", "test ! -e /tmp/broken",
                "--health-retries", "1", "--health-on-failure", "restart", "busybox:bb",
                "sh", "-c", "rm -f /tmp/broken; " + TERM_EXITS).stdout.strip()
    berth(env, "wait", "--condition", "healthy", "--timeout", "20", "phoenix")
    first = state(env, "phoenix")["State"]["StartedAt"]
    old_monitor = monitor_pid(env, cid)
    berth(env, "exec", "phoenix", "touch", "/tmp/broken")
    try:  # stop's grace period and a probe interval on a busy machine: give it time
        wait_for(lambda: state(env, "phoenix")["State"]["StartedAt"] != first, timeout=60, what="a restart")
    except AssertionError as e:
        log = os.path.join(env["BERTH_RUNROOT"], "containers", cid, "health.log")
        text = open(log, errors="replace").read()[-2000:] if os.path.exists(log) else "(no monitor log)"
        raise AssertionError(f"{e}; state {state(env, 'phoenix')['State']}; monitor log: {text}") from None
    berth(env, "wait", "--condition", "healthy", "--timeout", "20", "phoenix")
    new_monitor = monitor_pid(env, cid)
    assert new_monitor is not None and new_monitor != old_monitor and new_monitor in processes_naming(cid)
    assert old_monitor not in processes_naming(cid)


def test_start_period_and_timeout(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "slow", *FAST, "--health-cmd", "false", "--health-retries", "1",
          "--health-start-period", "1.5s", "busybox:bb", "sleep", "1000")
    berth(env, "run", "-d", "--name", "hung", *FAST, "--health-cmd", "sleep 3", "--health-timeout", "0.3s",
          "--health-retries", "1", "busybox:bb", "sleep", "1000")
    wait_for(lambda: len(health(env, "slow").get("Log") or []) >= 2, what="two probes in the start period")
    h = health(env, "slow")
    started = time.time()
    if h["Status"] == "starting":  # still inside the 1.5 s: failures have not counted
        assert h["FailingStreak"] == 0
    wait_for(lambda: health(env, "slow").get("Status") == "unhealthy", what="unhealthy after the start period")
    assert time.time() - started < 10
    wait_for(lambda: health(env, "hung").get("Status") == "unhealthy", what="a timed-out probe")
    last = health(env, "hung")["Log"][-1]
    assert last["ExitCode"] == -1 and "exceeded timeout (300ms)" in last["Output"]
    out = berth(env, "wait", "--condition", "healthy", "--timeout", "0.5", "hung", check=False)
    assert out.returncode == 1 and "not healthy" in out.stderr and "exceeded timeout" in out.stderr


def test_image_healthcheck_is_used_and_can_be_disabled(env: dict[str, str]) -> None:
    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as e:
        img = e.image("busybox:bb")
        cfg = json.loads(json.dumps(e.images.config(img.id)))
        cfg["config"]["Healthcheck"] = {"Test": ["CMD", "test", "-e", "/etc/passwd"], "Interval": 200_000_000,
                                        "Retries": 1}
        e.images.add(cfg, img.top_layer, img.size, ["busybox:checked"])
    berth(env, "run", "-d", "--name", "inherits", "--network", "none", "busybox:checked", "sleep", "1000")
    berth(env, "wait", "--condition", "healthy", "--timeout", "20", "inherits")
    assert state(env, "inherits")["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-e", "/etc/passwd"]
    cid = berth(env, "run", "-d", "--name", "unchecked", "--network", "none", "--no-healthcheck", "busybox:checked",
                "sleep", "1000").stdout.strip()
    assert "Health" not in state(env, "unchecked")["State"] and monitor_pid(env, cid) is None
    out = berth(env, "wait", "--condition", "healthy", "unchecked", check=False)
    assert out.returncode == 1 and "no health check" in out.stderr
    bad = berth(env, "run", "-d", "--no-healthcheck", "--health-cmd", "true", "busybox:bb", check=False)
    assert bad.returncode == 125 and "conflicts" in bad.stderr and "Traceback" not in bad.stderr
    bad = berth(env, "create", "--health-interval", "soon", "busybox:bb", check=False)
    assert bad.returncode != 0 and "invalid --health-interval 'soon'" in bad.stderr


def test_a_killed_monitor_comes_back_with_the_next_look(env: dict[str, str]) -> None:
    """No daemon keeps the monitor alive: the next berth command that looks at the running
    container starts it again, and the health it had recorded is kept."""
    import signal

    cid = berth(env, "run", "-d", "--name", "watched", *FAST, "--health-cmd", "true", "busybox:bb",
                "sleep", "1000").stdout.strip()
    berth(env, "wait", "--condition", "healthy", "--timeout", "20", "watched")
    old = monitor_pid(env, cid)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: old not in processes_naming(cid), what="the killed monitor to be gone")
    last = health(env, "watched")["Log"][-1]["Start"]  # this look starts a new monitor
    new = monitor_pid(env, cid)
    assert new is not None and new != old and new in processes_naming(cid)
    assert health(env, "watched")["Status"] == "healthy"  # what it had recorded is kept
    wait_for(lambda: health(env, "watched")["Log"][-1]["Start"] != last, what="the new monitor to probe")
    berth(env, "stop", "-t", "1", "watched")
    assert new not in processes_naming(cid)
