"""berth_container with docker_container's semantics, on real containers: start/stop/remove by name,
only the options a task sets are compared (comparisons makes one strict), an adopted `berth create`
container is left alone, check mode plans exactly what the real run does, errors name the option."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.conftest import REPO, berth

ADHOC = os.path.join(REPO, ".venv", "bin", "ansible")


def _module() -> str:
    """The module's name as ansible.cfg finds it: by FQCN from the collection, or from library/."""
    with open(os.path.join(REPO, "ansible.cfg"), encoding="utf-8") as f:
        return "berth.runtime.berth_container" if "collections_path" in f.read() else "berth_container"


MODULE = _module()
pytestmark = pytest.mark.skipif(not os.path.exists(ADHOC), reason="ansible-core is not installed in .venv")


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, ANSIBLE_NOCOLOR="1", BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    return e


def task(env: dict[str, str], args: dict[str, Any], *flags: str) -> dict[str, Any]:
    """Run berth_container once (ad hoc) and return its result."""
    args = dict(args, root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"])
    cp = subprocess.run([ADHOC, "localhost", "-i", "inventory/local", "-m", MODULE, "-a", json.dumps(args),
                         *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"^localhost \| ([A-Z!]+) => ", cp.stdout, re.MULTILINE)
    assert m, cp.stdout + cp.stderr
    result: dict[str, Any] = json.loads(cp.stdout[m.end():])
    result["failed"] = m[1] == "FAILED!"
    return result


def inspect(env: dict[str, str], name: str) -> dict[str, Any]:
    return json.loads(berth(env, "inspect", name).stdout)[0]  # type: ignore[no-any-return]


SLEEPER = {"name": "app", "image": "busybox:latest", "command": ["sleep", "1000"], "network_mode": "none"}


def test_stop_start_and_remove_by_name(env: dict[str, str]) -> None:
    first = task(env, SLEEPER)
    assert first["changed"] and not first["failed"] and [a["action"] for a in first["actions"]] == ["create"], first
    cid = inspect(env, "app")["Id"]
    assert not task(env, SLEEPER)["changed"]

    stopped = task(env, {"name": "app", "state": "stopped"})
    assert stopped["changed"] and stopped["actions"] == [
        {"action": "stop", "target": "app", "reasons": ["state running → stopped"]}], stopped
    info = inspect(env, "app")
    assert info["Id"] == cid and info["State"]["Running"] is False
    assert not task(env, {"name": "app", "state": "stopped"})["changed"]
    # the full task with state stopped does not recreate either
    assert not task(env, dict(SLEEPER, state="stopped"))["changed"]

    started = task(env, {"name": "app", "state": "started"})
    assert started["changed"] and [a["action"] for a in started["actions"]] == ["start"]
    info = inspect(env, "app")
    assert info["Id"] == cid and info["State"]["Running"] is True

    # restart: true restarts the same container; recreate: true makes a new one
    pid = info["State"]["Pid"]
    restarted = task(env, {"name": "app", "restart": True})
    assert [a["action"] for a in restarted["actions"]] == ["restart"]
    info = inspect(env, "app")
    assert info["Id"] == cid and info["State"]["Running"] is True and info["State"]["Pid"] != pid
    recreated = task(env, {"name": "app", "recreate": True})
    assert [a["action"] for a in recreated["actions"]] == ["recreate"]
    info = inspect(env, "app")
    assert info["Id"] != cid and info["State"]["Running"] is True
    spec = info["Berth"]["Spec"]
    assert spec["command"] == ["sleep", "1000"] and spec["network"] == "none"  # spec kept

    removed = task(env, {"name": "app", "state": "absent"})
    assert removed["changed"] and "app" not in berth(env, "ps", "-a").stdout
    assert not task(env, {"name": "app", "state": "absent"})["changed"]
    missing = task(env, {"name": "app", "state": "stopped"})
    assert missing.get("failed") and "does not exist: give image" in missing["msg"]


def test_adopted_container_and_comparisons(env: dict[str, str]) -> None:
    berth(env, "create", "--name", "adopted", "--network", "none", "-m", "64m", "--pids-limit", "50", "-e", "A=1",
          "-l", "team=x", "busybox:latest", "sleep", "1000")
    cid = inspect(env, "adopted")["Id"]
    same = {"name": "adopted", "image": "busybox:latest", "command": ["sleep", "1000"], "memory": "64m",
            "labels": {"team": "x"}, "state": "present"}
    result = task(env, same)
    assert not result["changed"], result
    # options left out are not compared: berth's defaults (network bridge, no env, no pids limit) do not count
    assert not task(env, {"name": "adopted", "image": "busybox:latest", "state": "present"})["changed"]
    # allow_more_present: the container may have more labels and env than the task gives
    assert not task(env, dict(same, labels={}, env={}, comparisons={"labels": "allow_more_present",
                                                                    "env": "allow_more_present"}))["changed"]

    # strict: an option the task leaves out must have berth's default; check mode plans what the run does
    strict = dict(same, comparisons={"pids_limit": "strict", "env": "strict"})
    check = task(env, strict, "--check")
    assert check["changed"] and check["actions"] == [
        {"action": "recreate", "target": "adopted", "reasons": ["env A removed", "pids limit 50 → null"]}]
    assert inspect(env, "adopted")["Id"] == cid
    real = task(env, strict)
    assert real["actions"] == check["actions"]
    info = inspect(env, "adopted")
    spec = info["Berth"]["Spec"]
    assert info["Id"] != cid and spec["env"] == [] and spec["pids_limit"] is None
    assert spec["network"] == "none" and spec["labels"] == {"team": "x"}  # the rest is kept
    assert not task(env, strict)["changed"]

    # a limit the task sets changes in place, the rest of the spec stays as it was
    cid = info["Id"]
    berth(env, "start", "adopted")
    check = task(env, dict(strict, memory="128m", state="started"), "--check")
    assert check["actions"] == [{"action": "update", "target": "adopted", "reasons": ["memory 64m → 128m"]}]
    assert task(env, dict(strict, memory="128m", state="started"))["actions"] == check["actions"]
    assert inspect(env, "adopted")["Id"] == cid


def test_errors_name_the_option_and_value(env: dict[str, str]) -> None:
    for args, what in (({"memory": "lots"}, "option memory: invalid memory limit 'lots'"),
                       ({"working_dir": "relative"}, "option working_dir: working directory 'relative' must be "
                                                     "absolute"),
                       ({"comparisons": {"colour": "strict"}}, "option comparisons: 'colour' is not a container "
                                                               "option")):
        result = task(env, dict(SLEEPER, **args))
        assert result.get("failed") and what in result["msg"], result
        assert "line" not in result["msg"]
    result = task(env, {"name": "x", "image": "no/such:image", "pull": "never"})
    assert result.get("failed") and "no/such:image" in result["msg"] and "pull: never" in result["msg"]


def test_state_healthy_waits_for_the_health_check_and_fails_with_its_output(env: dict[str, str]) -> None:
    healthy = dict(SLEEPER, name="fine", health_cmd="true", health_interval="0.2s", state="healthy",
                   healthy_timeout=20)
    first = task(env, healthy)
    assert not first["failed"] and [a["action"] for a in first["actions"]] == ["create", "healthy"], first
    assert first["container"]["State"]["Health"]["Status"] == "healthy"
    assert not task(env, healthy)["changed"]
    sick = dict(SLEEPER, name="sick", health_cmd="echo no database; exit 1", health_interval="0.2s",
                health_retries=2, state="healthy", healthy_timeout=20)
    result = task(env, sick)
    assert result["failed"] and "container sick is unhealthy after 2 failed check(s)" in result["msg"], result
    assert "exit code 1: no database" in result["msg"]
