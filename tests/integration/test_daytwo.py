"""The everyday verbs against real containers: pause/unpause (freezer), rename, port, update (runc
update, the cgroup files change), top, stats (cgroup counters), wait conditions, and events from
the root's journal (past ranges, filters, and following)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from berth.container import cgroups
from tests.conftest import BERTH, CGROUP_PARENT, berth, wait_for


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def inspect(env: dict[str, str], name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(berth(env, "inspect", "--type", "container", name).stdout)[0]  # type: ignore[no-any-return]


def cgroup_file(cid: str, controller: str, name: str) -> str:
    return cgroups.controller_file(f"/{CGROUP_PARENT}/{cid}", controller, name)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def frozen(cid: str) -> bool:
    if cgroups.is_v2():
        return read(cgroup_file(cid, "", "cgroup.freeze")) == "1"
    return read(cgroup_file(cid, "freezer", "freezer.state")) == "FROZEN"


def events(env: dict[str, str], since: float, *args: str) -> list[dict]:  # type: ignore[type-arg]
    out = berth(env, "events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}", "--format", "json", *args,
                timeout=30).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_pause_rename_update_top_stats_and_their_events(env: dict[str, str]) -> None:
    t0 = time.time()
    cid = berth(env, "run", "-d", "--name", "app", "--network", "none", "-m", "64m", "--cpus", "0.5",
                "--pids-limit", "40", "busybox:bb", "sh", "-c", "while :; do :; done").stdout.strip()

    # stats: the counters of the container's cgroups, CPU share between two readings
    rows = [json.loads(ln) for ln in berth(env, "stats", "--no-stream", "--format", "json").stdout.splitlines()]
    assert [r["Name"] for r in rows] == ["app"] and rows[0]["ID"] == cid[:12]
    r = rows[0]
    assert r["MemUsage"].endswith(" / 64MiB") and r["PIDs"] == "1" and r["NetIO"] == "0B / 0B"
    assert 5.0 < float(r["CPUPerc"].rstrip("%")) < 80.0, r  # a busy loop under a 0.5 CPU quota
    table = berth(env, "stats", "--no-stream", "app").stdout.splitlines()
    assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and "app" in table[1]

    # top: the host's ps, only the container's processes
    top = berth(env, "top", "app").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and len(top) == 2
    assert top[1].split()[1] == str(inspect(env, "app")["State"]["Pid"]) and "while" in top[1]
    assert berth(env, "top", "app", "aux").stdout.splitlines()[0].split()[0] == "USER"
    bad = berth(env, "top", "app", "-o", "comm", check=False)
    assert bad.returncode == 1 and "no PID column" in bad.stderr

    # pause / unpause: the freezer
    berth(env, "pause", "app")
    wait_for(lambda: frozen(cid), what="the freezer FROZEN")  # a busy loop passes through FREEZING
    state = inspect(env, "app")["State"]
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    assert "(Paused)" in berth(env, "ps").stdout
    assert "already paused" in berth(env, "pause", "app", check=False).stderr
    berth(env, "unpause", "app")
    assert not frozen(cid) and inspect(env, "app")["State"]["Status"] == "running"

    # update: limits and restart policy of the running container, through runc update
    berth(env, "update", "--memory", "96m", "--cpus", "1.5", "--pids-limit", "77", "--restart", "on-failure:2", "app")
    if cgroups.is_v2():
        assert read(cgroup_file(cid, "memory", "memory.max")) == str(96 << 20)
        assert read(cgroup_file(cid, "cpu", "cpu.max")).split()[0] == "150000"
    else:
        assert read(cgroup_file(cid, "memory", "memory.limit_in_bytes")) == str(96 << 20)
        assert read(cgroup_file(cid, "cpu", "cpu.cfs_quota_us")) == "150000"
    assert read(cgroup_file(cid, "pids", "pids.max")) == "77"
    cfg = inspect(env, "app")["Berth"]["Spec"]
    assert (cfg["memory"], cfg["cpus"], cfg["pids_limit"], cfg["restart"]) == (96 << 20, 1.5, 77, "on-failure:2")
    for args, what in ((["--memory", "lots"], "invalid memory limit 'lots'"), (["--restart", "sometimes"],
                                                                              "invalid restart policy")):
        bad = berth(env, "update", *args, "app", check=False)
        assert bad.returncode == 1 and what in bad.stderr and "Traceback" not in bad.stderr

    # rename
    berth(env, "rename", "app", "service")
    assert inspect(env, "service")["Id"] == cid
    assert berth(env, "inspect", "--type", "container", "app", check=False).returncode != 0
    berth(env, "create", "--name", "other", "busybox:bb", "true")
    assert "already in use" in berth(env, "rename", "other", "service", check=False).stderr

    # a paused container still stops
    berth(env, "pause", "service")
    berth(env, "stop", "-t", "1", "service")
    assert inspect(env, "service")["State"]["Status"] == "exited"

    seen = [e["Action"] for e in events(env, t0, "--filter", f"container={cid[:12]}")]
    for action in ("create", "start", "pause", "unpause", "update", "rename", "kill", "die", "stop"):
        assert action in seen, (action, seen)
    assert seen.index("create") < seen.index("start") < seen.index("pause") < seen.index("unpause")
    renamed = events(env, t0, "--filter", "event=rename")
    assert [e["Actor"]["Attributes"]["oldName"] for e in renamed] == ["app"]
    assert renamed[0]["Actor"]["Attributes"]["name"] == "service"
    assert {e["Actor"]["Attributes"]["name"] for e in events(env, t0, "--filter", "container=other")} == {"other"}
    assert events(env, time.time() + 1) == []
    assert "invalid filter" in berth(env, "events", "--filter", "colour=red", "--until", "0s", check=False).stderr


def test_port_lists_published_ports(env: dict[str, str]) -> None:
    berth(env, "create", "--name", "web", "-p", "127.0.0.1:18380:80", "-p", "18353:53/udp", "busybox:bb", "true")
    assert berth(env, "port", "web").stdout.splitlines() == ["80/tcp -> 127.0.0.1:18380", "53/udp -> 0.0.0.0:18353"]
    assert berth(env, "port", "web", "53/udp").stdout.strip() == "0.0.0.0:18353"
    miss = berth(env, "port", "web", "81", check=False)
    assert miss.returncode == 1 and "no public port '81/tcp'" in miss.stderr


def has_db_open(pid: int, root: str) -> bool:
    """Whether a berth process has opened the root's database (it is about to read the state)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == os.path.join(root, "berth.db")
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_wait_next_exit_and_following_events(env: dict[str, str]) -> None:
    exe = BERTH if os.path.exists(BERTH) else "berth"
    t0 = time.time()
    follower = subprocess.Popen([exe, "events", "--since", f"{t0:.6f}", "--filter", "event=die", "--format", "json"],
                                env=env, stdout=subprocess.PIPE, text=True)
    try:
        # the job sleeps a little after its start, so that the waiter has read the state before it exits
        berth(env, "create", "--name", "job", "--network", "none", "busybox:bb", "sh", "-c", "sleep 0.3; exit 7")
        assert berth(env, "wait", "job").stdout.strip() == "255"  # not running: at once (it never ran)
        waiter = subprocess.Popen([exe, "wait", "--condition", "next-exit", "job"], env=env, stdout=subprocess.PIPE,
                                  text=True)
        try:
            wait_for(lambda: has_db_open(waiter.pid, env["BERTH_ROOT"]), what="the waiter reading the state")
            berth(env, "start", "job")
            assert waiter.communicate(timeout=30)[0].strip() == "7"
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait()
        assert follower.stdout is not None
        ev = json.loads(follower.stdout.readline())  # the die event, appended by another process
        assert ev["Action"] == "die" and ev["Actor"]["Attributes"]["name"] == "job"
        assert ev["Actor"]["Attributes"]["exitCode"] == "7"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
