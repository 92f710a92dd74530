"""The Ansible layer on this machine: modules, roles and playbooks against a temporary berth root."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.request

import pytest

from tests.conftest import CGROUP_PARENT, REPO, berth, stop_leftovers, unmount_below

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
pytestmark = pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible-core is not installed in .venv")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def playbook(env: dict[str, str], name: str, extra: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([ANSIBLE, "-i", "inventory/local", f"playbooks/{name}", "-e", json.dumps(extra), *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return cp


def recap(out: str) -> dict[str, int]:
    m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert m, out[-2000:]
    return {"ok": int(m[1]), "changed": int(m[2]), "failed": int(m[4])}


@pytest.fixture
def setup(berth_env: dict[str, str], busybox_tar: str, tmp_path):  # type: ignore[no-untyped-def]
    env = dict(berth_env, ANSIBLE_FORCE_COLOR="0", BERTH_CGROUP_PARENT=CGROUP_PARENT)
    port = free_port()
    extra = {
        "berth_containers_root": env["BERTH_ROOT"], "berth_containers_runroot": env["BERTH_RUNROOT"],
        "berth_storage_root": env["BERTH_ROOT"], "berth_storage_runroot": env["BERTH_RUNROOT"],
        "berth_containers_images": [{"name": "busybox:latest", "import": busybox_tar, "changes": ['CMD ["sh"]']}],
        "berth_containers_containers": [
            {"name": "web", "image": "busybox:latest", "network": "host", "memory": "32m", "restart": "always",
             "command": ["sh", "-c",
                         f"mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p {port} -h /www"]},
            {"name": "worker", "image": "busybox:latest", "network": "none", "pids_limit": 20,
             "command": ["sh", "-c", "while true; do sleep 5; done"]},
        ],
    }
    return env, extra, port


def test_site_converges_then_changes_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    env, extra, port = setup
    first = playbook(env, "site.yml", extra)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)["changed"] >= 1
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5).read() == b"hello\n"
    second = playbook(env, "site.yml", extra)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout[-3000:]

    # check mode with --diff: the reasons, and nothing changes
    changed = json.loads(json.dumps(extra))
    changed["berth_containers_containers"][0]["memory"] = "64m"
    del changed["berth_containers_containers"][1]["pids_limit"]
    check = playbook(env, "containers.yml", changed, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-3000:]
    assert "update web: memory 32m → 64m" in check.stdout
    assert "recreate worker: pids limit 20 → null" in check.stdout
    # before/after as well as the reasons
    assert '-        "memory": 33554432' in check.stdout and '+        "memory": 67108864' in check.stdout
    assert recap(check.stdout)["changed"] == 1
    cid = json.loads(berth(env, "inspect", "web").stdout)[0]["Id"]
    limit = int(open(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}/memory.limit_in_bytes").read())
    assert limit == 32 << 20
    # the real run applies exactly that
    real = playbook(env, "containers.yml", changed, "--diff")
    assert recap(real.stdout)["changed"] == 1
    assert int(open(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}/memory.limit_in_bytes").read()) == 64 << 20
    assert recap(playbook(env, "containers.yml", changed).stdout)["changed"] == 0


def test_snapshot_and_rollback_playbooks(setup) -> None:  # type: ignore[no-untyped-def]
    env, extra, _port = setup
    assert playbook(env, "containers.yml", extra).returncode == 0
    berth(env, "exec", "worker", "sh", "-c", "echo before > /state")
    snap = playbook(env, "snapshot.yml", dict(extra, snapshot_name="before-upgrade"))
    assert snap.returncode == 0 and recap(snap.stdout)["changed"] == 1, snap.stdout[-3000:]
    berth(env, "exec", "worker", "sh", "-c", "echo after > /state")
    back = playbook(env, "rollback.yml", dict(extra, snapshot_name="before-upgrade"))
    assert back.returncode == 0, back.stdout[-3000:]
    assert berth(env, "exec", "worker", "cat", "/state").stdout == "before\n"
    assert playbook(env, "rollback.yml", extra).returncode != 0  # no snapshot name: a clear failure


def test_modules_fail_cleanly_and_document_themselves(setup) -> None:  # type: ignore[no-untyped-def]
    env, extra, _port = setup
    adhoc = os.path.join(REPO, ".venv", "bin", "ansible")
    cp = subprocess.run([adhoc, "localhost", "-i", "inventory/local", "-m", "berth.runtime.berth_container", "-a",
                         json.dumps({"name": "x", "image": "no/such:image", "pull": "never", "root": env["BERTH_ROOT"],
                                     "runroot": env["BERTH_RUNROOT"]})],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode != 0 and "neither exists nor is declared" in cp.stdout
    cp = subprocess.run([adhoc, "localhost", "-i", "inventory/local", "-m", "berth.runtime.berth_host_info",
                         "-e", "ansible_python_interpreter=/usr/bin/python3"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode != 0 and "ansible_python_interpreter" in cp.stdout
    # the thin pool plan in check mode: changed, with loop-lvm's warning, and nothing made
    pool = os.path.join(os.path.dirname(env["BERTH_ROOT"]), "lvm.img")
    cp = subprocess.run([adhoc, "localhost", "-i", "inventory/local", "--check", "-m", "berth.runtime.berth_storage",
                         "-a",
                         json.dumps({"driver": "devicemapper", "pool": "thin", "loopback": f"{pool}:1G",
                                     "storage_opts": {"dm.blocksize": "1M"}, "root": env["BERTH_ROOT"],
                                     "config_path": os.path.join(os.path.dirname(env["BERTH_ROOT"]), "c.yml")})],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0 and "CHANGED" in cp.stdout and "chunk 1M" in cp.stdout, cp.stdout + cp.stderr
    assert "loop-lvm" in cp.stderr + cp.stdout and not os.path.exists(pool)
    doc = os.path.join(REPO, ".venv", "bin", "ansible-doc")
    for m in ("berth_state", "berth_container", "berth_container_info", "berth_image", "berth_image_info",
              "berth_host_info", "berth_snapshot", "berth_storage"):
        cp = subprocess.run([doc, f"berth.runtime.{m}"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert cp.returncode == 0 and "EXAMPLES" in cp.stdout and "RETURN VALUES" in cp.stdout, (m, cp.stderr)


def test_runtime_role_installs_the_berth_package(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env, extra, _port = setup
    venv = tmp_path / "berth-venv"
    run = playbook(env, "provision.yml", dict(extra, berth_runtime_install=True, berth_runtime_package=REPO,
                                                 berth_runtime_virtualenv=str(venv)))
    assert run.returncode == 0, run.stdout[-3000:]
    cp = subprocess.run([str(venv / "bin" / "berth"), "--help"], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0 and "container runtime" in cp.stdout


def test_shipped_local_inventory_converges_as_declared(berth_env: dict[str, str]) -> None:
    """`make up`'s declaration exactly as it ships (inventory/local): only the root, the runroot
    and the web port change, through the inventory's and roles' own variables."""
    import yaml

    shipped = yaml.safe_load(open(os.path.join(REPO, "inventory", "local", "group_vars", "all.yml")))
    assert os.path.exists(os.path.join(REPO, ".cache", "busybox.tar")), "make .cache/busybox.tar first"
    env = dict(berth_env, ANSIBLE_FORCE_COLOR="0", BERTH_CGROUP_PARENT=CGROUP_PARENT)
    port = free_port()
    extra = {"web_port": port,
             "berth_containers_root": env["BERTH_ROOT"], "berth_containers_runroot": env["BERTH_RUNROOT"],
             "berth_storage_root": env["BERTH_ROOT"], "berth_storage_runroot": env["BERTH_RUNROOT"]}
    first = playbook(env, "site.yml", extra)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)["changed"] >= 1
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read() == b"hello from berth\n"
    declared = {c["name"]: c for c in shipped["berth_containers_containers"]}
    assert set(declared) == {"web", "worker"}
    for name, c in declared.items():
        info = json.loads(berth(env, "inspect", name).stdout)[0]
        assert info["State"]["Running"] is True, name
        cg = f"/sys/fs/cgroup/%s/{CGROUP_PARENT}/{info['Id']}/%s"
        mem = int(c["memory"].rstrip("m")) << 20
        assert int(open(cg % ("memory", "memory.limit_in_bytes")).read()) == mem, name
        if "pids_limit" in c:
            assert int(open(cg % ("pids", "pids.max")).read()) == c["pids_limit"], name
        assert info["Berth"]["Spec"]["restart"] == c["restart"], name
    assert (declared["web"]["memory"], declared["worker"]["memory"]) == ("32m", "16m")
    assert (declared["web"]["restart"], declared["worker"]["restart"]) == ("always", "on-failure:3")
    assert shipped["web_port"] == 18080
    second = playbook(env, "site.yml", extra)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout[-3000:]


def test_rolling_update_stops_at_the_first_unhealthy_host(berth_env: dict[str, str], busybox_tar: str,
                                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two hosts (two berth roots on this machine), serial: 1: a change that leaves the first host's
    container unhealthy fails there, and the second host keeps its container as it was."""
    env = dict(berth_env, ANSIBLE_FORCE_COLOR="0", BERTH_DRIVER="overlay")
    hosts = {}
    for h in ("node1", "node2"):
        root, run = str(tmp_path / h / "root"), str(tmp_path / h / "run")
        berth(dict(env, BERTH_ROOT=root, BERTH_RUNROOT=run), "import", "-c", 'CMD ["sh"]', busybox_tar,
              "busybox:latest")
        hosts[h] = {"ansible_connection": "local", "berth_containers_root": root, "berth_containers_runroot": run}
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(json.dumps({"web": {"hosts": hosts}}))
    extra = {"rolling_command": ["sh", "-c", "echo $STAMP > /stamp; exec sleep 1000"], "rolling_network": "none",
             "rolling_health_cmd": 'echo "stamp $STAMP"; test "$STAMP" != bad', "rolling_health_interval": "0.2s",
             "rolling_health_retries": 1, "rolling_healthy_timeout": 20,
             "ansible_python_interpreter": os.path.join(REPO, ".venv", "bin", "python")}

    def roll(stamp: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ANSIBLE, "-i", str(inventory), "playbooks/rolling-update.yml",
                               "-e", json.dumps(dict(extra, rolling_env={"STAMP": stamp}))],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    def stamp(h: str) -> str:
        e = dict(env, BERTH_ROOT=hosts[h]["berth_containers_root"], BERTH_RUNROOT=hosts[h]["berth_containers_runroot"])
        return berth(e, "exec", "web", "cat", "/stamp").stdout.strip()

    try:
        cp = roll("v1")
        assert cp.returncode == 0, cp.stdout[-3000:]
        assert stamp("node1") == stamp("node2") == "v1"
        cp = roll("bad")
        assert cp.returncode != 0
        assert "container web is unhealthy" in cp.stdout and "stamp bad" in cp.stdout, cp.stdout[-3000:]
        assert re.search(r"node1\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1", cp.stdout), cp.stdout[-2000:]
        assert not re.search(r"node2\s+: ok=[1-9]", cp.stdout), cp.stdout[-2000:]
        assert stamp("node1") == "bad" and stamp("node2") == "v1"
    finally:
        for h in hosts.values():
            e = dict(env, BERTH_ROOT=h["berth_containers_root"], BERTH_RUNROOT=h["berth_containers_runroot"])
            berth(e, "rm", "-f", "web", check=False)
            stop_leftovers(h["berth_containers_runroot"])
            unmount_below(h["berth_containers_root"])
