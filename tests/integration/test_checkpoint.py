"""Checkpoint and restore with CRIU through runc and conmon: a counting container checkpointed and
restored keeps counting from where it was (not from the start), exported and imported into a new
container, and left running. Where CRIU cannot work on the kernel, berth refuses in one line with
CRIU's reason and the real test skips with it (the kernel lane's guest runs it)."""

from __future__ import annotations

import json
import os

import pytest

from berth.container.checkpoint import criu_check
from tests.conftest import berth, wait_for

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return e


def count(env: dict[str, str], name: str) -> int:
    out = berth(env, "exec", name, "cat", "/tmp/n", check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def running(env: dict[str, str], name: str) -> bool:
    return bool(json.loads(berth(env, "inspect", name).stdout)[0]["State"]["Running"])


def test_refused_in_one_line_where_criu_cannot_work(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "c", "--network", "none", "busybox", "sleep", "600")
    why = criu_check()
    if why is None:  # CRIU works here: the refusals that remain are of bad requests
        berth(env, "stop", "-t", "0", "c")
        cp = berth(env, "checkpoint", "c", check=False)
        assert cp.returncode == 1 and "is not running" in cp.stderr
        return
    cp = berth(env, "checkpoint", "c", check=False)
    assert cp.returncode == 1 and cp.stderr.count("\n") == 1 and "Traceback" not in cp.stderr
    assert "CRIU cannot work on this kernel" in cp.stderr and "(criu check)" in cp.stderr
    assert running(env, "c")
    cp = berth(env, "restore", "c", check=False)
    assert cp.returncode == 1 and "is running" in cp.stderr
    berth(env, "rm", "-f", "c")
    berth(env, "create", "--name", "never", "busybox", "true")
    cp = berth(env, "restore", "never", check=False)
    assert cp.returncode == 1 and "has no checkpoint" in cp.stderr


def test_checkpoint_and_restore(env: dict[str, str], tmp_path: str) -> None:
    why = criu_check()
    if why is not None:
        pytest.skip(why)
    berth(env, "run", "-d", "--name", "c", "--network", "none", "--runtime", "runc", "busybox", "sh", "-c", COUNTER)
    wait_for(lambda: count(env, "c") >= 5, what="the counter counting")
    export = os.path.join(str(tmp_path), "c.tar.gz")
    berth(env, "checkpoint", "--export", export, "c")
    assert not running(env, "c")
    berth(env, "restore", "c")
    assert running(env, "c")
    at_restore = count(env, "c")
    assert at_restore >= 5  # it went on from where it was, it did not start again from 1
    wait_for(lambda: count(env, "c") > at_restore, what="the restored counter counting on")
    # the export restores into a new container made from the same image
    berth(env, "create", "--name", "d", "--network", "none", "--runtime", "runc", "busybox", "sh", "-c", COUNTER)
    berth(env, "restore", "--import", export, "d")
    assert count(env, "d") >= 5
    # --leave-running: the container keeps counting through the checkpoint
    before = count(env, "c")
    berth(env, "checkpoint", "--leave-running", "c")
    wait_for(lambda: count(env, "c") > before, what="the counter counting on after the checkpoint")
    berth(env, "rm", "-f", "c", "d")
