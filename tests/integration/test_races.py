"""Races between removing an image and taking a reference to it (issue 18 items 4 and 5): `rmi`
runs in parallel with `import` of identical content, `run`, `create` and `tag` on one root, many
times, on vfs and overlay (and btrfs in the long run). Whatever the interleaving, `storage check`
is clean, no container or tag points at a deleted image or layer, and what a command reported as
made is usable.

The discipline that makes this hold is LayerStore.referencing (takers shared, removal exclusive).
Free-running pairs hit the window only by chance (one round each here, 25 with BERTH_FAULTS_LONG=1,
`make test-faults`); test_rmi_inside_the_window stops the taker in its window (BERTH_FAULT_STOP_AT)
and runs rmi exactly there, every time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile

import pytest

from tests.conftest import BERTH, BERTH_TIMEOUT, _teardown_root, berth, remove_tree, wait_for

LONG = os.environ.get("BERTH_FAULTS_LONG") == "1"
ROUNDS = 25 if LONG else 1
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


WINDOWS = {
    # the taker is stopped in its window: the reference looked up or made, not yet recorded
    "import": "layer: recorded",  # the identical layer found, the image not recorded yet
    "create": "layer: recorded",  # the rw layer made on the image's, the container not recorded yet
    "run": "layer: recorded",
    "tag": "image: resolved",  # the image looked up, the tag not recorded yet
}


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rpartition(")")[2].split()[0] == "T"


def _waits_for_a_lock(pid: int) -> bool:
    with open("/proc/locks", encoding="ascii") as f:
        return any("->" in line and f" {pid} " in line for line in f)


@pytest.mark.parametrize("taker", list(WINDOWS))
def test_rmi_inside_the_window(berth_env: dict[str, str], busybox_tar: str, taker: str) -> None:
    """The taker is stopped (SIGSTOP, berth.faults) exactly between looking its target up and
    recording its reference; rmi runs then. rmi must wait for it (or leave the target alone),
    and the taker, which came first, must succeed with a usable result."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", busybox_tar, "bb:race")
    p = subprocess.Popen([BERTH, *PAIRS[taker](busybox_tar, 0)], env=dict(env, BERTH_FAULT_STOP_AT=WINDOWS[taker]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: p.poll() is not None or _stopped(p.pid), 60, f"{taker} reaching its window")
        assert p.poll() is None, f"{taker} ended before its window: {p.stderr.read()}"  # type: ignore[union-attr]
        r = subprocess.Popen([BERTH, "rmi", "bb:race"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: r.poll() is not None or _waits_for_a_lock(r.pid), 60, "rmi done or waiting")
    finally:
        os.kill(p.pid, signal.SIGCONT)
    rc_take = p.wait(timeout=BERTH_TIMEOUT)
    rc_rmi = r.wait(timeout=BERTH_TIMEOUT)
    what = f"rmi (rc {rc_rmi}) inside {taker}'s window (rc {rc_take}: {p.stderr.read().strip()})"  # type: ignore[union-attr]
    _assert_whole(env, what)
    assert rc_take == 0, what
    if taker == "import":
        assert berth(env, "run", "--rm", *RUN, "new:0", "true", check=False).returncode == 0, what
    elif taker == "tag":
        assert berth(env, "run", "--rm", *RUN, "t:0", "true", check=False).returncode == 0, what
    else:
        name = f"{taker[0]}0"
        if taker == "create":
            berth(env, "start", name)
        assert '"Running": true' in berth(env, "inspect", name).stdout or taker == "create", what
        berth(env, "rm", "-f", name)
