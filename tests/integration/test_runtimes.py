"""OCI runtime selection: crun where it really starts a container, runc otherwise, `--runtime`
to choose, and crun's private-mount-namespace workaround on a hybrid cgroup host."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import CGROUP_PARENT, berth

HYBRID = os.path.ismount("/sys/fs/cgroup/unified")  # cgroup v1 with a v2 hierarchy beside it


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return e


def runtimes(env: dict[str, str]) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(berth(env, "info", "--format", "json").stdout)["runtimes"]}


def started_with(env: dict[str, str], *args: str) -> tuple[str, str]:
    """Start a sleeping container; (the runtime berth recorded, the runtime whose state holds it)."""
    cid = berth(env, "run", "-d", "--network", "none", "-m", "24m", *args, "busybox", "sleep", "300").stdout.strip()
    try:
        recorded = json.loads(berth(env, "inspect", cid).stdout)[0]["HostConfig"]["Runtime"]
        state_root = os.path.join(env["BERTH_RUNROOT"], "runtime")
        holders = [n for n in os.listdir(state_root) if os.path.isdir(os.path.join(state_root, n, cid))]
        assert len(holders) == 1, holders
        limit = int(open(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}/memory.limit_in_bytes").read())
        assert limit == 24 << 20
        return recorded, holders[0]
    finally:
        berth(env, "rm", "-f", cid)


def test_crun_where_it_works_else_runc_and_the_choice_flag(env: dict[str, str]) -> None:
    rts = runtimes(env)
    assert set(rts) == {"crun", "runc"}
    expected = "crun" if rts["crun"]["works"] else "runc"
    assert rts[expected]["works"], rts
    assert started_with(env) == (expected, expected)
    for name in ("runc", "crun"):
        if rts[name]["works"]:
            assert started_with(env, "--runtime", name) == (name, name)
    cp = berth(env, "run", "--rm", "--runtime", "nosuch", "busybox", "true", check=False)
    assert cp.returncode != 0 and "nosuch" in cp.stderr and "Traceback" not in cp.stderr


def test_runc_when_crun_cannot_start_containers(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A crun that fails its trial container (first on PATH) is passed over, and refused when named."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "crun").write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'crun version 0.0-broken'; exit 0; }\n"
                               "echo 'broken on purpose' >&2; exit 1\n")
    (fake / "crun").chmod(0o755)
    broken = dict(env, PATH=f"{fake}:{env['PATH']}")
    rts = runtimes(broken)
    assert rts["crun"]["works"] is False and "broken on purpose" in str(rts["crun"]["reason"])
    assert started_with(broken) == ("runc", "runc")
    cp = berth(broken, "run", "--rm", "--runtime", "crun", "busybox", "true", check=False)
    assert cp.returncode == 125 and "cannot start containers on this host" in cp.stderr, cp.stderr
    assert "broken on purpose" in cp.stderr
    assert berth(broken, "ps", "-aq").stdout.strip() == ""


def test_crun_on_a_hybrid_cgroup_host(env: dict[str, str]) -> None:
    crun = runtimes(env)["crun"]
    if not HYBRID:
        # nothing to work around: crun itself, as installed
        assert crun["path"] == shutil.which("crun") and crun["works"], crun
        return
    # crun alone refuses a hybrid host; berth runs it in a private mount namespace without the v2 mount
    assert crun["works"] is True, crun
    assert "crun alone refuses this host" in str(crun["reason"]), crun
    wrapper = str(crun["path"])
    assert wrapper.startswith(env["BERTH_RUNROOT"] + "/") and os.access(wrapper, os.X_OK)
    assert started_with(env, "--runtime", "crun") == ("crun", "crun")
    out = berth(env, "run", "--rm", "--runtime", "crun", "--network", "none", "busybox", "sh", "-c",
                "cat /proc/self/cgroup").stdout
    assert f"/{CGROUP_PARENT}/" in out  # the container sits in berth's v1 cgroups
    # the unmount stayed inside the wrapper's namespace: the host still has its v2 hierarchy
    assert os.path.ismount("/sys/fs/cgroup/unified")
