"""berth_volume on a real root: created with labels, idempotent, check mode and diff, labels
changed in place, removal refused while a container (made by berth_container with a volume
mount) refers to it, then removed with its data."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.conftest import REPO, berth

ADHOC = os.path.join(REPO, ".venv", "bin", "ansible")
pytestmark = pytest.mark.skipif(not os.path.exists(ADHOC), reason="ansible-core is not installed in .venv")


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, ANSIBLE_NOCOLOR="1", BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    return e


def task(env: dict[str, str], module: str, args: dict[str, Any], *flags: str) -> dict[str, Any]:
    args = dict(args, root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"])
    cp = subprocess.run([ADHOC, "localhost", "-i", "inventory/local", "-m", f"berth.runtime.{module}", "-a",
                         json.dumps(args), *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"^localhost \| ([A-Z!]+) => ", cp.stdout, re.MULTILINE)
    assert m, cp.stdout + cp.stderr
    result: dict[str, Any] = json.loads(cp.stdout[m.end():])
    result["failed"] = m[1] == "FAILED!"
    result["printed_diff"] = cp.stdout[:m.start()]
    return result


def volumes(env: dict[str, str]) -> list[str]:
    return berth(env, "volume", "ls", "-q").stdout.split()


def test_volume_module(env: dict[str, str]) -> None:
    want = {"name": "db-data", "labels": {"team": "db"}}
    check = task(env, "berth_volume", want, "--check", "--diff")
    assert check["changed"] and not check["failed"] and volumes(env) == [], check
    assert '-    "db-data": "absent"' in check["printed_diff"] and '+            "team": "db"' in check["printed_diff"]
    made = task(env, "berth_volume", want)
    assert made["changed"] and made["volume"]["Labels"] == {"team": "db"} and volumes(env) == ["db-data"], made
    assert not task(env, "berth_volume", want)["changed"]
    assert not task(env, "berth_volume", {"name": "db-data"})["changed"]  # labels left out: kept
    relabel = task(env, "berth_volume", {"name": "db-data", "labels": {"team": "ops"}})
    assert relabel["changed"] and relabel["actions"][0]["reasons"] == ["label team changed"], relabel
    with open(os.path.join(made["volume"]["Mountpoint"], "keep"), "w") as f:
        f.write("x")
    assert relabel["volume"]["Labels"] == {"team": "ops"}

    ctr = task(env, "berth_container", {"name": "db", "image": "busybox:latest", "command": ["cat", "/v/keep"],
                                        "network_mode": "none", "state": "present",
                                        "mounts": [{"type": "volume", "source": "db-data", "target": "/v"}]})
    assert ctr["changed"] and not ctr["failed"], ctr
    assert berth(env, "start", "-a", "db").stdout == "x"
    for flags in (("--check",), ()):
        refused = task(env, "berth_volume", {"name": "db-data", "state": "absent"}, *flags)
        assert refused["failed"] and "in use by container(s) db" in refused["msg"], refused
    assert volumes(env) == ["db-data"]
    task(env, "berth_container", {"name": "db", "state": "absent"})
    gone = task(env, "berth_volume", {"name": "db-data", "state": "absent"}, "--diff")
    assert gone["changed"] and gone["volume"] == {} and volumes(env) == [], gone
    assert not task(env, "berth_volume", {"name": "db-data", "state": "absent"})["changed"]
    bad = task(env, "berth_volume", {"name": "x"})
    assert bad["failed"] and "invalid volume name 'x'" in bad["msg"] and "Traceback" not in json.dumps(bad)


def test_snapshot_module_with_volumes(env: dict[str, str]) -> None:
    """berth_snapshot with_volumes: the volume is part of the snapshot; state=restored sees (and
    undoes) a change that is only in the volume."""
    berth(env, "create", "--name", "db", "--network", "none", "-v", "db-data:/v", "busybox:latest", "sleep", "1000")
    mountpoint = json.loads(berth(env, "volume", "inspect", "db-data").stdout)[0]["Mountpoint"]
    keep = os.path.join(mountpoint, "keep")
    with open(keep, "w") as f:
        f.write("before")
    snap = {"container": "db", "name": "s1", "with_volumes": True}
    made = task(env, "berth_snapshot", snap)
    assert made["changed"] and not made["failed"], made
    assert [s.get("volumes") for s in made["snapshots"]] == [["db-data"]], made
    assert not task(env, "berth_snapshot", snap)["changed"]
    restored = dict(snap, state="restored")
    assert not task(env, "berth_snapshot", restored)["changed"]  # nothing differs yet
    with open(keep, "w") as f:
        f.write("after")
    check = task(env, "berth_snapshot", restored, "--check")
    assert check["changed"] and check["actions"] == ["restore snapshot s1"], check
    with open(keep) as f:
        assert f.read() == "after"  # check mode changed nothing
    assert task(env, "berth_snapshot", restored)["changed"]
    with open(keep) as f:
        assert f.read() == "before"
    assert not task(env, "berth_snapshot", restored)["changed"]
