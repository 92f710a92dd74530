"""Containers through the real CLI, runc and conmon: exit codes, limits, stop, logs, exec, diff,
commit, export, snapshots — on overlay, vfs and btrfs."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import tempfile
import time

import pytest

from tests.conftest import BERTH, CGROUP_PARENT, DRIVERS, berth, wait_for


@pytest.fixture(params=DRIVERS)
def env(request: pytest.FixtureRequest, berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER=request.param)
    if request.param in ("btrfs", "devicemapper"):
        base = request.getfixturevalue("btrfs_dir" if request.param == "btrfs" else "xfs_dir")
        e["BERTH_ROOT"] = os.path.join(tempfile.mkdtemp(dir=base), "root")
        berth_env["BERTH_ROOT"] = e["BERTH_ROOT"]  # so the fixture's teardown removes its containers
    if request.param == "devicemapper":
        cfg = os.path.join(os.path.dirname(e["BERTH_ROOT"]), "config.yml")
        with open(cfg, "w") as f:
            f.write("storage_opts:\n  dm.basesize: 1g\n")
        e["BERTH_CONFIG"] = berth_env["BERTH_CONFIG"] = cfg
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return e


@pytest.fixture
def ovl(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return e


def inspect(env: dict[str, str], ref: str) -> dict[str, object]:
    return json.loads(berth(env, "inspect", ref).stdout)[0]


def cgroup_file(cid: str, ctrl: str, name: str) -> str:
    return f"/sys/fs/cgroup/{ctrl}/{CGROUP_PARENT}/{cid}/{name}"


def test_exit_codes(env: dict[str, str]) -> None:
    assert berth(env, "run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    assert berth(env, "run", "--rm", "busybox", "true").returncode == 0
    cp = berth(env, "run", "--rm", "busybox", "no-such-command", check=False)
    assert cp.returncode == 127 and "not found" in cp.stderr
    cp = berth(env, "run", "--rm", "busybox", "/etc/passwd", check=False)
    assert cp.returncode == 126 and "permission denied" in cp.stderr
    cp = berth(env, "run", "--rm", "no-such-image", check=False)
    assert cp.returncode == 125 and "no such image" in cp.stderr
    cp = berth(env, "run", "--rm", "-m", "lots", "busybox", "true", check=False)
    assert cp.returncode == 125 and "invalid memory limit" in cp.stderr
    assert berth(env, "ps", "-aq").stdout.strip() == ""


def test_output_env_user_workdir_hostname(env: dict[str, str]) -> None:
    out = berth(env, "run", "--rm", "-e", "FOO=bar", "-w", "/work/dir", "-u", "nobody", "--hostname", "box",
                "busybox", "sh", "-c", "echo $FOO; pwd; id -u; hostname; cat /etc/hostname").stdout
    assert out.split() == ["bar", "/work/dir", "65534", "box", "box"]
    # on the host's network the container has the host's name (docker does the same); else its short ID
    assert berth(env, "run", "--rm", "--network", "host", "busybox", "hostname").stdout.strip() == socket.gethostname()
    cid = berth(env, "create", "--network", "none", "busybox", "hostname").stdout.strip()
    assert berth(env, "start", "-a", cid).stdout.strip() == cid[:12]
    berth(env, "rm", cid)
    err = berth(env, "run", "--rm", "busybox", "sh", "-c", "echo to-stderr >&2").stderr
    assert err.strip() == "to-stderr"


def test_memory_oom_killed(ovl: dict[str, str]) -> None:
    cp = berth(ovl, "run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c",
               "x=aaaaaaaa; while true; do x=$x$x; done", check=False)
    assert cp.returncode == 137
    state = inspect(ovl, "hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137  # type: ignore[index]


def test_pids_limit_contains_fork_bomb(ovl: dict[str, str]) -> None:
    cid = berth(ovl, "run", "-d", "--pids-limit", "20", "busybox", "sh", "-c",
                "bomb() { bomb | bomb & }; bomb; sleep 30").stdout.strip()
    assert int(open(cgroup_file(cid, "pids", "pids.max")).read()) == 20

    def refused() -> int:
        return int(open(cgroup_file(cid, "pids", "pids.events")).read().split()[1])

    wait_for(lambda: refused() > 0, what="a fork refused by pids.max")
    assert 0 < int(open(cgroup_file(cid, "pids", "pids.current")).read()) <= 20
    berth(ovl, "rm", "-f", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{cid}")


def test_cpus_quota_in_cgroup(ovl: dict[str, str]) -> None:
    cid = berth(ovl, "run", "-d", "--cpus", "0.5", "busybox", "sleep", "30").stdout.strip()
    assert open(cgroup_file(cid, "cpu", "cpu.cfs_quota_us")).read().strip() == "50000"
    assert open(cgroup_file(cid, "cpu", "cpu.cfs_period_us")).read().strip() == "100000"
    berth(ovl, "rm", "-f", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/cpu/{CGROUP_PARENT}/{cid}")
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}")


def test_blkio_weight_applied_or_refused(ovl: dict[str, str]) -> None:
    weight_files = [f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(f"/sys/fs/cgroup/blkio/{f}")]
    cp = berth(ovl, "run", "-d", "--blkio-weight", "300", "busybox", "sleep", "30", check=False)
    if not weight_files:
        assert cp.returncode == 125 and "--blkio-weight is not supported" in cp.stderr
        return
    cid = cp.stdout.strip()
    assert open(cgroup_file(cid, "blkio", weight_files[0])).read().split()[-1] == "300"
    berth(ovl, "rm", "-f", cid)


def test_stop_term_then_kill(ovl: dict[str, str]) -> None:
    berth(ovl, "run", "-d", "--name", "polite", "busybox", "sh", "-c",
          "trap 'echo bye; exit 3' TERM; echo ready; while true; do sleep 0.1; done")
    berth(ovl, "run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
          "trap '' TERM; echo ready; while true; do sleep 0.1; done")
    for name in ("polite", "stubborn"):  # the traps are set
        wait_for(lambda n=name: berth(ovl, "logs", n).stdout == "ready\n", what=f"{name} ready")
    # TERM ends the polite one at once: far sooner than a long timeout would
    t0 = time.monotonic()
    berth(ovl, "stop", "-t", "120", "polite")
    assert time.monotonic() - t0 < 60
    assert inspect(ovl, "polite")["State"]["ExitCode"] == 3  # type: ignore[index]
    assert berth(ovl, "logs", "polite").stdout.split() == ["ready", "bye"]
    # the stubborn one gets its grace period, then KILL
    t0 = time.monotonic()
    berth(ovl, "stop", "-t", "1", "stubborn")
    assert time.monotonic() - t0 >= 1
    assert inspect(ovl, "stubborn")["State"]["ExitCode"] == 137  # type: ignore[index]
    assert berth(ovl, "wait", "stubborn").stdout.strip() == "137"


def test_detached_logs_ps_inspect_restart(ovl: dict[str, str]) -> None:
    cid = berth(ovl, "run", "-d", "--name", "talker", "-l", "app=demo", "busybox", "sh", "-c",
                "for i in 1 2 3; do echo line$i; done; echo oops >&2; sleep 30").stdout.strip()
    wait_for(lambda: berth(ovl, "logs", "talker").stderr == "oops\n", what="the container's output")
    assert berth(ovl, "logs", "talker").stdout.split() == ["line1", "line2", "line3"]
    assert berth(ovl, "logs", "talker").stderr.strip() == "oops"
    assert berth(ovl, "logs", "--tail", "1", "talker").stderr.strip() == "oops"
    ps = json.loads(berth(ovl, "ps", "--format", "json").stdout)
    assert [c["Id"] for c in ps] == [cid] and ps[0]["State"]["Running"] is True
    assert ps[0]["Config"]["Labels"] == {"app": "demo"}
    assert "talker" in berth(ovl, "ps").stdout
    berth(ovl, "restart", "-t", "0", "talker")
    assert inspect(ovl, "talker")["State"]["Running"] is True  # type: ignore[index]
    berth(ovl, "kill", "-s", "KILL", "talker")
    assert berth(ovl, "wait", "talker").stdout.strip() == "137"
    assert berth(ovl, "ps", "-q").stdout.strip() == ""
    cp = berth(ovl, "rm", "talker")
    assert cp.returncode == 0 and berth(ovl, "ps", "-aq").stdout.strip() == ""


def test_exec(ovl: dict[str, str]) -> None:
    berth(ovl, "run", "-d", "--name", "svc", "busybox", "sleep", "30")
    out = berth(ovl, "exec", "-e", "X=1", "-u", "nobody", "-w", "/tmp", "svc", "sh", "-c", "echo $X; id -u; pwd")
    assert out.stdout.split() == ["1", "65534", "/tmp"]
    assert berth(ovl, "exec", "svc", "sh", "-c", "exit 5", check=False).returncode == 5
    assert berth(ovl, "exec", "svc", "env").stdout.count("PATH=") == 1
    cp = berth(ovl, "exec", "svc", "no-such-tool", check=False)
    assert cp.returncode == 127 and "not found" in cp.stderr
    berth(ovl, "rm", "-f", "svc")
    cp = berth(ovl, "exec", "svc", "true", check=False)
    assert cp.returncode == 1 and "no such container" in cp.stderr


def test_volumes_tmpfs_readonly_caps(ovl: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    out = berth(ovl, "run", "--rm", "-v", f"{host}:/data", "-v", f"{host}:/ro:ro", "--tmpfs", "/scratch",
                "--read-only", "busybox", "sh", "-c",
                "cat /data/in.txt; echo out > /data/out.txt; touch /ro/x 2>/dev/null || echo ro-refused;"
                " touch /scratch/ok && echo tmpfs-ok; touch /rootfile 2>/dev/null || echo rootfs-ro").stdout
    assert out.split("\n")[:4] == ["from host", "ro-refused", "tmpfs-ok", "rootfs-ro"]
    assert (host / "out.txt").read_text() == "out\n"
    caps = berth(ovl, "run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status").stdout
    assert caps.split()[1] == "0000000000000000"
    caps = berth(ovl, "run", "--rm", "busybox", "grep", "CapBnd", "/proc/self/status").stdout
    assert caps.split()[1] == "00000000a80425fb"  # docker's default set
    # privileged: every capability this process may hand on (a sandbox may have dropped some)
    mine = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("CapBnd:"))
    caps = berth(ovl, "run", "--rm", "--privileged", "busybox", "grep", "CapEff", "/proc/self/status").stdout
    assert caps.split()[1] == mine
    cp = berth(ovl, "run", "--rm", "-v", "/no/such/dir:/x", "busybox", "true", check=False)
    assert cp.returncode == 125 and "does not exist" in cp.stderr


def test_diff_commit_export(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "run", "--name", "builder", "busybox", "sh", "-c",
          "mkdir -p /app && echo v1 > /app/version && rm /etc/group && chmod 700 /root")
    lines = berth(env, "diff", "builder").stdout.splitlines()
    assert "A /app" in lines and "A /app/version" in lines and "D /etc/group" in lines
    assert "C /root" in lines and "C /etc" in lines
    image_id = berth(env, "commit", "-m", "add app", "-c", 'CMD ["cat", "/app/version"]', "builder",
                     "app:v1").stdout.strip()
    info = inspect(env, "app:v1")
    assert info["Id"] == image_id and len(info["RootFS"]["Layers"]) == 2  # type: ignore[index]
    assert info["Berth"]["History"][-1]["comment"] == "add app"  # type: ignore[index]
    assert berth(env, "run", "--rm", "app:v1").stdout == "v1\n"
    assert berth(env, "run", "--rm", "app:v1", "cat", "/etc/group", check=False).returncode == 1
    out = tmp_path / "fs.tar"
    berth(env, "export", "-o", str(out), "builder")
    names = tarfile.open(out).getnames()
    assert "app/version" in names and "bin/busybox" in names and "etc/group" not in names
    cp = berth(env, "rmi", "busybox", check=False)
    assert cp.returncode == 1 and "used by container" in cp.stderr


def test_snapshots_restore_exactly(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "db", "busybox", "sh", "-c",
          "echo one > /data1; mkdir /state; echo a > /state/a; echo ready; sleep 60")
    wait_for(lambda: berth(env, "logs", "db").stdout == "ready\n", what="the files written")
    berth(env, "snapshot", "create", "db", "before")
    berth(env, "exec", "db", "sh", "-c", "echo two > /data1; rm -r /state; echo new > /added")
    snaps = json.loads(berth(env, "snapshot", "ls", "db", "--format", "json").stdout)
    assert [s["name"] for s in snaps] == ["before"]
    berth(env, "snapshot", "restore", "db", "before")
    assert inspect(env, "db")["State"]["Running"] is True  # type: ignore[index]
    out = berth(env, "exec", "db", "sh", "-c", "cat /data1 /state/a; ls /added 2>&1 || true").stdout
    assert out.splitlines()[:2] == ["one", "a"] and "No such file" in out
    cp = berth(env, "snapshot", "restore", "db", "nope", check=False)
    assert cp.returncode == 1 and "no snapshot" in cp.stderr
    berth(env, "snapshot", "rm", "db", "before")
    assert json.loads(berth(env, "snapshot", "ls", "db", "--format", "json").stdout) == []
    berth(env, "rm", "-f", "db")


def test_oci_config_validates(ovl: dict[str, str]) -> None:
    import jsonschema

    schema_dir = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"
    assert os.path.isdir(schema_dir), "golang-github-opencontainers-specs-dev is not installed (make setup)"
    cid = berth(ovl, "run", "-d", "-m", "64m", "--cpus", "1", "--pids-limit", "50", "-v", "/tmp:/host-tmp:ro",
                "--tmpfs", "/run", "busybox", "sleep", "30").stdout.strip()
    config = json.load(open(os.path.join(ovl["BERTH_RUNROOT"], "containers", cid, "config.json")))
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for name in os.listdir(schema_dir):
        if name.endswith(".json"):
            resources.append((name, Resource.from_contents(json.load(open(os.path.join(schema_dir, name))),
                                                           default_specification=DRAFT4)))
    schema = json.load(open(os.path.join(schema_dir, "config-schema.json")))
    jsonschema.Draft4Validator(schema, registry=Registry().with_resources(resources)).validate(config)
    berth(ovl, "rm", "-f", cid)


def test_container_export_to_stdout(ovl: dict[str, str]) -> None:
    berth(ovl, "create", "--name", "c1", "busybox")
    import subprocess

    data = subprocess.run([BERTH, "export", "c1"], env=ovl, capture_output=True, check=True, timeout=120).stdout
    assert "bin/sh" in tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert inspect(ovl, "c1")["State"]["Status"] == "created"  # type: ignore[index]


def test_attach_follows_until_exit_and_passes_signals(ovl: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    import signal
    import subprocess

    sync = tmp_path / "sync"
    sync.mkdir()
    # ticks until the test says go: the first tick attach copies proves it is attached
    berth(ovl, "run", "-d", "--name", "talker", "--network", "none", "-v", f"{sync}:/sync", "busybox", "sh", "-c",
          "while [ ! -e /sync/go ]; do echo tick; sleep 0.05; done; echo one; echo two >&2; exit 3")
    p = subprocess.Popen([BERTH, "attach", "talker"], env=ovl, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "tick\n"
        (sync / "go").touch()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        p.wait(timeout=30)
    lines = out.splitlines()
    assert (p.returncode, lines[-1], set(lines[:-1]) <= {"tick"}, err) == (3, "one", True, "two\n"), (out, err)
    cp = berth(ovl, "attach", "talker", check=False)
    assert cp.returncode == 1 and "is not running" in cp.stderr and "start" in cp.stderr
    berth(ovl, "run", "-d", "--name", "waiter", "--network", "none", "busybox", "sh", "-c",
          "trap 'echo got-term; exit 7' TERM; while true; do echo tick; sleep 0.05; done")
    p = subprocess.Popen([BERTH, "attach", "waiter"], env=ovl, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "tick\n"  # attached; the trap is set
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    finally:
        p.kill()
        p.wait(timeout=30)
    assert p.returncode == 7 and "got-term" in out, (p.returncode, out)


def test_run_interactive_keeps_its_output_in_the_log(ovl: dict[str, str]) -> None:
    cp = berth(ovl, "run", "-i", "--name", "talkative", "--network", "none", "busybox", "sh", "-c",
               "read x; echo \"got $x\"; echo warn >&2; printf tail; exit 4", input=b"hello\n", check=False)
    assert (cp.returncode, cp.stdout, cp.stderr) == (4, "got hello\ntail", "warn\n"), cp
    logs = berth(ovl, "logs", "talkative")
    assert (logs.stdout, logs.stderr) == ("got hello\ntail", "warn\n")
    assert berth(ovl, "logs", "--tail", "1", "talkative").stdout == "tail"
