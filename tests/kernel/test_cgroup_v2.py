"""A pure cgroup v2 host (the kernel lane's guest): limits land in the v2 files, the OOM killer is
reported, crun runs without the hybrid workaround. This machine is a v1 hybrid host, so here these
skip; `make test-kernel` runs them in a VM with Debian's kernel."""

from __future__ import annotations

import json
import os
import time

import pytest

from berth.container import cgroups
from tests.conftest import berth

pytestmark = pytest.mark.skipif(not cgroups.is_v2(), reason="not a pure cgroup v2 host: the kernel lane runs this")

RUNTIMES = ("crun", "runc")


@pytest.fixture
def bb(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return env


def cgroup_dir(env: dict[str, str], cid: str) -> str:
    host = json.loads(berth(env, "inspect", cid).stdout)[0]["Berth"]
    return os.path.join("/sys/fs/cgroup", host["CgroupsPath"].lstrip("/"))


def read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def test_crun_needs_no_hybrid_workaround(bb: dict[str, str]) -> None:
    info = json.loads(berth(bb, "info", "--format", "json").stdout)
    assert info["cgroup_version"] == "2" or info["cgroup_version"].startswith("2"), info["cgroups"]
    crun = next(r for r in info["runtimes"] if r["name"] == "crun")
    assert crun["works"] and os.path.basename(crun["path"]) == "crun" and "hybrid" not in crun["reason"], crun


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_limits_through_the_v2_files(bb: dict[str, str], runtime: str) -> None:
    cid = berth(bb, "run", "-d", "--runtime", runtime, "--network", "none", "-m", "64m", "--cpus", "0.5",
                "--pids-limit", "20", "--blkio-weight", "300", "busybox", "sleep", "300").stdout.strip()
    d = cgroup_dir(bb, cid)
    assert read(d, "memory.max") == str(64 << 20)
    assert read(d, "cpu.max") == "50000 100000"
    assert read(d, "pids.max") == "20"
    # blkio weight 300 (of 10..1000) is io.weight 1 + 290 * 9999 // 990 = 2930 (of 1..10000),
    # or 300 as it is where BFQ keeps the weight
    weights = {f: read(d, f).split()[-1] for f in ("io.weight", "io.bfq.weight") if os.path.exists(os.path.join(d, f))}
    assert weights.get("io.bfq.weight") == "300" or weights.get("io.weight") == "2930", weights
    berth(bb, "rm", "-f", cid)
    assert not os.path.exists(d)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pids_limit_contains_a_fork_bomb(bb: dict[str, str], runtime: str) -> None:
    cid = berth(bb, "run", "-d", "--runtime", runtime, "--network", "none", "--pids-limit", "20", "busybox", "sh",
                "-c", "bomb() { bomb | bomb & }; bomb; sleep 300").stdout.strip()
    d = cgroup_dir(bb, cid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and int(read(d, "pids.events").split()[1]) == 0:
        time.sleep(0.1)
    assert int(read(d, "pids.events").split()[1]) > 0  # forks were refused
    assert 0 < int(read(d, "pids.current")) <= 20
    berth(bb, "rm", "-f", cid)
    assert not os.path.exists(d)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_oom_kill_is_reported(bb: dict[str, str], runtime: str) -> None:
    cp = berth(bb, "run", "--name", "hog", "--runtime", runtime, "--network", "none", "-m", "32m", "busybox", "sh",
               "-c", "x=aaaaaaaa; while true; do x=$x$x; done", check=False)
    assert cp.returncode == 137, cp.stderr
    state = json.loads(berth(bb, "inspect", "hog").stdout)[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137, state
