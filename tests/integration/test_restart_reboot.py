"""Restart policies without a daemon (conmon's exit command calls berth back) and container state
that survives a reboot (simulated: processes killed, mounts gone, runroot emptied)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.conftest import berth, stop_leftovers, unmount_below


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def state(env: dict[str, str], name: str) -> dict[str, object]:
    return json.loads(berth(env, "inspect", name).stdout)[0]


def wait_for(cond, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_on_failure_restarts_exactly_n_times(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox:bb", "sh", "-c",
          "echo attempt; exit 3")
    wait_for(lambda: state(env, "flaky")["RestartCount"] == 2 and state(env, "flaky")["State"]["Status"] == "exited")
    time.sleep(1.5)
    s = state(env, "flaky")
    assert s["RestartCount"] == 2 and s["State"]["ExitCode"] == 3 and s["State"]["Status"] == "exited"
    assert berth(env, "logs", "flaky").stdout.split() == ["attempt"] * 3
    # success does not restart under on-failure
    berth(env, "run", "-d", "--name", "fine", "--restart", "on-failure", "busybox:bb", "true")
    time.sleep(1.5)
    assert state(env, "fine")["RestartCount"] == 0


def test_always_restarts_until_stopped(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "crashy", "--restart", "always", "busybox:bb", "sh", "-c", "sleep 0.2; exit 1")
    wait_for(lambda: int(state(env, "crashy")["RestartCount"]) >= 2)
    berth(env, "stop", "-t", "1", "crashy")
    count = state(env, "crashy")["RestartCount"]
    time.sleep(2)
    s = state(env, "crashy")
    assert s["State"]["Status"] == "exited" and s["RestartCount"] == count
    assert berth(env, "run", "--rm", "--restart", "always", "busybox:bb", "true", check=False).returncode == 125


def test_state_survives_a_reboot(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "svc", "--restart", "always", "busybox:bb", "sh", "-c",
          "echo kept > /data; sleep 1000")
    berth(env, "run", "-d", "--name", "plain", "busybox:bb", "sh", "-c", "echo mine > /mine; sleep 1000")
    berth(env, "run", "--name", "done", "busybox:bb", "true")
    berth(env, "run", "-d", "--name", "stopped", "--restart", "unless-stopped", "busybox:bb", "sleep", "1000")
    berth(env, "stop", "-t", "0", "stopped")
    time.sleep(0.5)
    # the reboot: every process gone, every mount gone, the runroot (a tmpfs on a real host) empty
    stop_leftovers(env["BERTH_RUNROOT"])
    time.sleep(0.5)
    unmount_below(env["BERTH_ROOT"])
    unmount_below(env["BERTH_RUNROOT"])  # network namespaces are bound to files there
    shutil.rmtree(env["BERTH_RUNROOT"])
    listed = {c["Name"]: c["State"] for c in json.loads(berth(env, "ps", "-a", "--format", "json").stdout)}
    assert set(listed) == {"svc", "plain", "done", "stopped"}
    assert all(not s["Running"] for s in listed.values())
    started = berth(env, "start", "--all-restartable").stdout.split()
    assert started == ["svc"]
    assert berth(env, "exec", "svc", "cat", "/data").stdout == "kept\n"
    berth(env, "start", "plain")
    assert berth(env, "exec", "plain", "cat", "/mine").stdout == "mine\n"
    assert os.path.isdir(env["BERTH_RUNROOT"])
