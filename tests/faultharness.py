"""The kill harness: run a berth command with BERTH_FAULT_AT=N (berth.faults) so that it SIGKILLs
itself at its Nth fault point, then check what it left: the store (`storage check` clean, no
half-made record, every volume directory recorded and every record with its directory), the host
(mounts, conmon and container processes, cgroups, spool files) and that the command succeeds when
it is run again.

`moments(n)` picks the points to kill at: every one of them with BERTH_FAULTS_LONG=1 (`make
test-faults`), else a few spread over the run (`make test`).
"""

from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.conftest import BERTH, BERTH_TIMEOUT, berth, wait_for

LONG = os.environ.get("BERTH_FAULTS_LONG") == "1"
SHORT_MOMENTS = 3
SPOOL_PREFIXES = (".load-", "berth-save-", ".layer-", ".tmp-")


@dataclass
class Case:
    """A mutating command to kill. setup(env, k) makes what the kth run needs; argv(k) is the
    command; again(env, k) repeats it after a kill (it must succeed); stdin feeds it (a path)."""

    name: str
    argv: Callable[[int], list[str]]
    setup: Callable[[dict[str, str], int], None] = lambda env, k: None
    again: Callable[[dict[str, str], int], None] | None = None
    stdin: str | None = None
    driver: str = "overlay"
    found: list[str] = field(default_factory=list)


def _run(env: dict[str, str], argv: list[str], stdin: str | None, extra: dict[str, str]) -> int:
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        return subprocess.run([BERTH, *argv], env=dict(env, **extra), stdin=f, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=BERTH_TIMEOUT).returncode


def count_points(env: dict[str, str], case: Case, k: int) -> int:
    """Run the command once whole, counting the fault points it passes."""
    trace = os.path.join(os.path.dirname(env["BERTH_ROOT"]), f"trace-{case.name}-{k}")
    case.setup(env, k)
    rc = _run(env, case.argv(k), case.stdin, {"BERTH_FAULT_TRACE": trace})
    assert rc == 0, f"{case.name} failed without a fault (rc {rc})"
    with open(trace, encoding="utf-8") as f:
        n = sum(1 for _ in f)
    os.unlink(trace)
    return n


def moments(n: int) -> list[int]:
    if LONG or n <= SHORT_MOMENTS:
        return list(range(1, n + 1))
    return sorted({1 + round(i * (n - 1) / (SHORT_MOMENTS - 1)) for i in range(SHORT_MOMENTS)})


def kill_at(env: dict[str, str], case: Case, k: int, point: int) -> bool:
    """Run the command, killed at its point-th fault point; True if it was killed there."""
    case.setup(env, k)
    rc = _run(env, case.argv(k), case.stdin, {"BERTH_FAULT_AT": str(point)})
    return rc == -9


# -- what a killed command may leave --------------------------------------------------------------
def _db(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(os.path.join(env["BERTH_ROOT"], "berth.db"), timeout=60)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def driver_ids(env: dict[str, str], driver: str) -> set[str]:
    home = os.path.join(env["BERTH_ROOT"], driver)
    if driver == "vfs":
        d = os.path.join(home, "dir")
        return set(os.listdir(d)) if os.path.isdir(d) else set()
    return {n for n in os.listdir(home) if n != "l"} if os.path.isdir(home) else set()


def _mounts_below(*dirs: str) -> list[str]:
    with open("/proc/mounts", encoding="utf-8") as f:
        targets = [line.split()[1] for line in f]
    return [t for t in targets if any(t == d or t.startswith(d + "/") for d in dirs)]


def _conmons(runroot: str) -> set[str]:
    """Container IDs of the conmon processes running for this runroot."""
    out = set()
    for p in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and any(runroot.encode() in a for a in argv) and b"-c" in argv:
            out.add(argv[argv.index(b"-c") + 1].decode())
    return out


def _cgroups(parent: str) -> set[str]:
    found = glob.glob(f"/sys/fs/cgroup/*/{parent}/*") + glob.glob(f"/sys/fs/cgroup/{parent}/*")
    return {os.path.basename(d) for d in found if os.path.isdir(d)}


def spool_leftovers(env: dict[str, str]) -> list[str]:
    root = env["BERTH_ROOT"]
    out = []
    for d in (root, os.path.join(root, "tmp"), os.path.join(root, "blobs", "sha256")):
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d) if n.startswith(SPOOL_PREFIXES)]
    return out


def assert_consistent(env: dict[str, str], driver: str, what: str) -> None:
    """After `storage check`: nothing half-made in the store, nothing on the host that no running
    container accounts for."""
    berth(env, "ps", "-a")  # records exits no command has looked at yet (there is no daemon)
    check = berth(env, "storage", "check", check=False)
    assert check.returncode == 0 and "storage is consistent" in check.stdout, (what, check.stdout, check.stderr)
    layers = _db(env, "SELECT id, incomplete FROM layers")
    assert all(inc == 0 for _, inc in layers), (what, layers)
    assert driver_ids(env, driver) == {lid for lid, _ in layers}, what
    containers = _db(env, "SELECT id, name, state, rw_layer FROM containers")
    assert all(state in ("created", "running", "exited") for _, _, state, _ in containers), (what, containers)
    running = {cid for cid, _, state, _ in containers if state == "running"}
    running_layers = {rw for _, _, state, rw in containers if state == "running"}
    mounts_dir = os.path.join(env["BERTH_RUNROOT"], "mounts")
    for t in _mounts_below(env["BERTH_ROOT"], env["BERTH_RUNROOT"]):
        assert os.path.dirname(t) == mounts_dir and os.path.basename(t) in running_layers, (what, t)
    if os.path.isdir(mounts_dir):
        users = [n for n in os.listdir(mounts_dir) if ".use-" in n or ".new-" in n]
        assert not users, (what, users)
    # a conmon whose container has exited runs berth's exit command before it goes: poll for that
    wait_for(lambda: _conmons(env["BERTH_RUNROOT"]) <= running, 20, f"{what}: conmon of a stopped container gone")
    wait_for(lambda: _cgroups(env["BERTH_CGROUP_PARENT"]) <= running, 20, f"{what}: cgroups of stopped containers gone")
    assert not spool_leftovers(env), what
    vols = os.path.join(env["BERTH_ROOT"], "volumes")
    recorded = {str(n) for n, in _db(env, "SELECT name FROM volumes")}
    assert set(os.listdir(vols) if os.path.isdir(vols) else []) == recorded, (what, "volume directories")
    for cid in running:
        state = berth(env, "inspect", cid).stdout
        assert '"Running": true' in state, (what, cid)


def assert_empty(env: dict[str, str], driver: str) -> None:
    """With every container, image and network removed, nothing of them is left anywhere."""
    ids = berth(env, "ps", "-aq").stdout.split()
    if ids:
        berth(env, "rm", "-f", *ids)
    berth(env, "image", "prune", "-a", "--force")
    nets = [line.split()[0] for line in berth(env, "network", "ls").stdout.splitlines()[1:] if line.strip()]
    for n in nets:
        berth(env, "network", "rm", n, check=False)
    berth(env, "volume", "prune", "--force")
    assert_consistent(env, driver, "after removing everything")
    assert _db(env, "SELECT id FROM layers") == []
    assert _db(env, "SELECT name FROM volumes") == []
    assert driver_ids(env, driver) == set()
    assert _mounts_below(env["BERTH_ROOT"], env["BERTH_RUNROOT"]) == []
    assert not _cgroups(env["BERTH_CGROUP_PARENT"])
    blobs = os.path.join(env["BERTH_ROOT"], "blobs", "sha256")
    assert not (os.listdir(blobs) if os.path.isdir(blobs) else []), "blobs of removed images are left"


def exercise(env: dict[str, str], case: Case) -> tuple[int, int]:
    """Kill the case's command at its moments, checking after each kill and repeating it.
    Returns (points the command passes, kills made). A kill does not land when a later run
    passes fewer points than the first (which did one-time work: the runtime probe)."""
    n = count_points(env, case, 0)
    kills = 0
    for k, point in enumerate(moments(n), start=1):
        what = f"{case.name} killed at point {point}/{n}"
        killed = kill_at(env, case, k, point)
        kills += killed
        assert_consistent(env, case.driver, what)
        if case.again is not None:
            case.again(env, k)
        else:
            rc = _run(env, case.argv(k), case.stdin, {})
            assert rc == 0, f"{what}: repeating it failed (rc {rc})"
        if LONG:  # the short run relies on the end: removing everything must leave nothing
            assert_consistent(env, case.driver, what + ", then repeated")
    return n, kills
