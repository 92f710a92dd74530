"""Races between removing an image and taking a reference to it (issue 18 items 4 and 5): `rmi`
runs in parallel with `import` of identical content, `run`, `create` and `tag` on one root, many
times, on vfs and overlay (and btrfs in the long run). Whatever the interleaving, `storage check`
is clean, no container or tag points at a deleted image or layer, and what a command reported as
made is usable.

The discipline that makes this hold is LayerStore.referencing (takers shared, removal exclusive).
BERTH_FAULTS_LONG=1 (`make test-faults`) runs many more rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest

from tests.conftest import BERTH, BERTH_TIMEOUT, _teardown_root, berth, remove_tree

LONG = os.environ.get("BERTH_FAULTS_LONG") == "1"
ROUNDS = 25 if LONG else 2
RUN = ["--network", "none"]

PAIRS = {
    "import": lambda tar, k: ["import", tar, f"new:{k}"],
    "run": lambda tar, k: ["run", "-d", *RUN, "--name", f"r{k}", "bb:race", "sleep", "1000"],
    "create": lambda tar, k: ["create", *RUN, "--name", f"c{k}", "bb:race", "true"],
    "tag": lambda tar, k: ["tag", "bb:race", f"t:{k}"],
}


def _both(env: dict[str, str], a: list[str], b: list[str]) -> tuple[int, int]:
    procs = [subprocess.Popen([BERTH, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for argv in (a, b)]
    return procs[0].wait(timeout=BERTH_TIMEOUT), procs[1].wait(timeout=BERTH_TIMEOUT)


def _assert_whole(env: dict[str, str], what: str) -> None:
    check = berth(env, "storage", "check", check=False)
    assert check.returncode == 0 and "storage is consistent" in check.stdout, (what, check.stdout)
    images = {i["Id"] for i in json.loads(berth(env, "images", "-a", "--format", "json").stdout or "[]")}
    for cid in berth(env, "ps", "-aq").stdout.split():
        info = json.loads(berth(env, "inspect", cid).stdout)[0]
        assert info["Image"] in images, (what, info["Name"])  # no container on a deleted image
    for i in images:
        berth(env, "inspect", i)  # every image's config and layers are there
    berth(env, "system", "df")


@pytest.mark.parametrize("driver", ["vfs", "overlay"] + (["btrfs"] if LONG else []))
@pytest.mark.parametrize("taker", list(PAIRS))
def test_rmi_races_a_reference(request: pytest.FixtureRequest, berth_env: dict[str, str], busybox_tar: str,
                               driver: str, taker: str) -> None:
    env = dict(berth_env, BERTH_DRIVER=driver)
    if driver != "btrfs":
        _race(env, busybox_tar, taker)
        return
    base = tempfile.mkdtemp(dir=request.getfixturevalue("btrfs_dir"))
    env.update(BERTH_ROOT=os.path.join(base, "root"), BERTH_RUNROOT=os.path.join(base, "run"))
    try:
        _race(env, busybox_tar, taker)
    finally:
        _teardown_root(env)
        remove_tree(base)


def _race(env: dict[str, str], busybox_tar: str, taker: str) -> None:
    for k in range(ROUNDS):
        berth(env, "import", busybox_tar, "bb:race")
        rc_rmi, rc_take = _both(env, ["rmi", "bb:race"], PAIRS[taker](busybox_tar, k))
        what = f"rmi (rc {rc_rmi}) x {taker} (rc {rc_take}), round {k}"
        _assert_whole(env, what)
        if taker == "import":
            assert rc_take == 0, what  # identical content never makes the import fail
            assert berth(env, "run", "--rm", *RUN, f"new:{k}", "true").returncode == 0, what
            berth(env, "rmi", f"new:{k}")
        elif taker in ("run", "create"):
            name = f"{taker[0]}{k}"
            if rc_take == 0:
                assert rc_rmi != 0, what  # the image is in use: rmi refuses
                if taker == "create":
                    berth(env, "start", name)
                berth(env, "rm", "-f", name)
            else:
                assert rc_rmi == 0, what  # the image went first: the container was not made
                assert berth(env, "inspect", name, check=False).returncode != 0, what
        elif rc_take == 0:
            berth(env, "inspect", f"t:{k}")  # the new tag keeps the image
            berth(env, "rmi", f"t:{k}")
        berth(env, "rmi", "bb:race", check=False)
        _assert_whole(env, what + ", cleaned")
        assert berth(env, "images", "-q").stdout.split() == [], what
