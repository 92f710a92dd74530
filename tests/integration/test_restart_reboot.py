"""Restart policies without a daemon (conmon's exit command calls berth back) and container state
that survives a reboot (simulated: processes killed, mounts gone, runroot emptied)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import berth, stop_leftovers, unmount_below, wait_for


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def state(env: dict[str, str], name: str) -> dict[str, object]:
    return json.loads(berth(env, "inspect", name).stdout)[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def handlers_of(cid: str) -> list[int]:
    """Processes that still act for the container: its conmon and conmon's exit command (berth)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if cid.encode() in f.read() and alive(int(pid)):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def settle(env: dict[str, str], name: str) -> dict[str, object]:
    """Wait until berth has finished with the container's exit: it is exited and neither conmon
    nor the exit command (which applies the restart policy) runs for it; its state then."""
    cid = str(state(env, name)["Id"])
    wait_for(lambda: state(env, name)["State"]["Status"] == "exited" and not handlers_of(cid),
             what=f"{name}'s exit handled")
    return state(env, name)


def test_on_failure_restarts_exactly_n_times(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox:bb", "sh", "-c",
          "echo attempt; exit 3")
    wait_for(lambda: state(env, "flaky")["RestartCount"] == 2 and state(env, "flaky")["State"]["Status"] == "exited")
    s = settle(env, "flaky")
    assert s["RestartCount"] == 2 and s["State"]["ExitCode"] == 3 and s["State"]["Status"] == "exited"
    assert berth(env, "logs", "flaky").stdout.split() == ["attempt"] * 3
    # success does not restart under on-failure
    berth(env, "run", "-d", "--name", "fine", "--restart", "on-failure", "busybox:bb", "true")
    s = settle(env, "fine")
    assert s["RestartCount"] == 0 and s["State"]["ExitCode"] == 0


def test_always_restarts_until_stopped(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "crashy", "--restart", "always", "busybox:bb", "sh", "-c", "sleep 0.2; exit 1")
    wait_for(lambda: int(state(env, "crashy")["RestartCount"]) >= 2)
    berth(env, "stop", "-t", "1", "crashy")
    count = state(env, "crashy")["RestartCount"]
    s = settle(env, "crashy")
    assert s["State"]["Status"] == "exited" and s["RestartCount"] == count
    assert berth(env, "run", "--rm", "--restart", "always", "busybox:bb", "true", check=False).returncode == 125


def recorded_pids(runroot: str) -> list[int]:
    """The conmon and container PIDs berth recorded (what stop_leftovers kills)."""
    out = []
    cdir = os.path.join(runroot, "containers")
    for cid in os.listdir(cdir):
        for name in ("pidfile", "conmon.pid"):
            try:
                with open(os.path.join(cdir, cid, name)) as f:
                    out.append(int(f.read().strip()))
            except (OSError, ValueError):
                pass
    return out


def test_state_survives_a_reboot(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "svc", "--restart", "always", "busybox:bb", "sh", "-c",
          "echo kept > /data; sleep 1000")
    berth(env, "run", "-d", "--name", "plain", "busybox:bb", "sh", "-c", "echo mine > /mine; sleep 1000")
    berth(env, "run", "--name", "done", "busybox:bb", "true")
    berth(env, "run", "-d", "--name", "stopped", "--restart", "unless-stopped", "busybox:bb", "sleep", "1000")
    berth(env, "stop", "-t", "0", "stopped")
    for name in ("done", "stopped"):
        settle(env, name)
    # the reboot: every process gone, every mount gone, the runroot (a tmpfs on a real host) empty
    pids = recorded_pids(env["BERTH_RUNROOT"])
    assert pids
    stop_leftovers(env["BERTH_RUNROOT"])
    wait_for(lambda: not any(alive(p) for p in pids), what="the killed processes gone")
    unmount_below(env["BERTH_ROOT"])
    unmount_below(env["BERTH_RUNROOT"])  # network namespaces are bound to files there
    shutil.rmtree(env["BERTH_RUNROOT"])
    listed = {c["Name"].lstrip("/"): c["State"] for c in json.loads(berth(env, "ps", "-a", "--format", "json").stdout)}
    assert set(listed) == {"svc", "plain", "done", "stopped"}
    assert all(not s["Running"] for s in listed.values())
    started = berth(env, "start", "--all-restartable").stdout.split()
    assert started == ["svc"]
    assert berth(env, "exec", "svc", "cat", "/data").stdout == "kept\n"
    berth(env, "start", "plain")
    assert berth(env, "exec", "plain", "cat", "/mine").stdout == "mine\n"
    assert os.path.isdir(env["BERTH_RUNROOT"])
