"""The berth connection and inventory plugins: containers as Ansible hosts (exec, put, fetch,
pipelining), listed by label with keyed groups and composed variables."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.conftest import REPO, berth

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")
pytestmark = pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible-core is not installed in .venv")


def test_containers_as_hosts(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    persist_dir = tmp_path / "cp"
    env = dict(berth_env, BERTH_DRIVER="overlay", ANSIBLE_FORCE_COLOR="0", BERTH_PERSIST_DIR=str(persist_dir))
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    # a system container: busybox plus the host's Python, read-only, so that modules run inside
    for name, role in (("app1", "app"), ("db1", "db"), ("other", "app")):
        labels = ["-l", f"role={role}"] + (["-l", "fleet=test"] if name != "other" else [])
        berth(env, "run", "-d", "--name", name, "--network", "none", *labels, "-v", "/usr:/usr:ro",
              "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "bb", "sleep", "100000")
    inv = tmp_path / "fleet.berth.yml"
    inv.write_text(
        "plugin: berth.runtime.berth\n"
        f"root: {env['BERTH_ROOT']}\nrunroot: {env['BERTH_RUNROOT']}\n"
        f"berth_executable: {os.path.join(REPO, '.venv', 'bin', 'berth')}\n"
        "labels:\n  fleet: test\n"
        "keyed_groups:\n  - key: berth_labels.role\n    prefix: role\n"
        "compose:\n  ansible_python_interpreter: \"'/usr/bin/python3'\"\n")
    listed = json.loads(subprocess.run([ANSIBLE + "-inventory", "-i", str(inv), "--list"], cwd=REPO, env=env,
                                       capture_output=True, text=True, check=True, timeout=300).stdout)
    assert listed["role_app"]["hosts"] == ["app1"] and listed["role_db"]["hosts"] == ["db1"]
    assert "berth" in str(listed["_meta"]["hostvars"]["app1"]["ansible_connection"])

    def ansible(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ANSIBLE, "-i", str(inv), *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)

    cp = ansible("all", "-m", "ansible.builtin.ping")
    assert cp.returncode == 0 and cp.stdout.count("pong") == 2, cp.stdout + cp.stderr
    # each host's commands went through its persistent exec channel (one socket per container)
    assert len(list(persist_dir.glob("*.sock"))) == 2
    cp = ansible("all", "-e", "ansible_berth_persist=false", "-m", "ansible.builtin.ping")
    assert cp.returncode == 0 and cp.stdout.count("pong") == 2, cp.stdout + cp.stderr
    src = tmp_path / "in.txt"
    src.write_text("to the container\n")
    cp = ansible("role_app", "-m", "ansible.builtin.copy", "-a", f"src={src} dest=/tmp/in.txt mode=0600")
    assert cp.returncode == 0 and "CHANGED" in cp.stdout, cp.stdout
    assert berth(env, "exec", "app1", "cat", "/tmp/in.txt").stdout == "to the container\n"
    out = tmp_path / "back.txt"
    cp = ansible("role_app", "-m", "ansible.builtin.fetch", "-a", f"src=/tmp/in.txt dest={out} flat=true")
    assert cp.returncode == 0 and out.read_text() == "to the container\n", cp.stdout
    cp = ansible("role_db", "-m", "ansible.builtin.raw", "-a", "echo $((6 * 7))")
    assert "42" in cp.stdout
    # a become password cannot travel through berth exec: refused with the reason, not a hang
    cp = ansible("role_db", "-b", "-e", "ansible_become_password=secret", "-m", "ansible.builtin.command", "-a", "id")
    assert cp.returncode != 0 and "cannot answer a become password prompt" in cp.stdout, cp.stdout
    berth(env, "stop", "-t", "0", "db1")
    again = json.loads(subprocess.run([ANSIBLE + "-inventory", "-i", str(inv), "--list"], cwd=REPO, env=env,
                                      capture_output=True, text=True, check=True, timeout=300).stdout)
    assert "role_db" not in again  # a stopped container is no longer a host (running_only)
    # reached anyway (an explicit host): unreachable, with berth's reason
    cp = subprocess.run([ANSIBLE, "all", "-i", "db1,", "-c", "berth.runtime.berth",
                         "-e", f"ansible_berth_root={env['BERTH_ROOT']}",
                         "-e", f"ansible_berth_runroot={env['BERTH_RUNROOT']}",
                         "-e", f"ansible_berth_executable={os.path.join(REPO, '.venv', 'bin', 'berth')}",
                         "-m", "ansible.builtin.ping"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 4 and "UNREACHABLE" in cp.stdout and "is not running" in cp.stdout, cp.stdout
    # a container without python3 has no exec channel: raw tasks go through berth exec
    berth(env, "run", "-d", "--name", "bare", "--network", "none", "bb", "sleep", "100000")
    cp = subprocess.run([ANSIBLE, "all", "-i", "bare,", "-c", "berth.runtime.berth",
                         "-e", f"ansible_berth_root={env['BERTH_ROOT']}",
                         "-e", f"ansible_berth_runroot={env['BERTH_RUNROOT']}",
                         "-e", f"ansible_berth_executable={os.path.join(REPO, '.venv', 'bin', 'berth')}",
                         "-m", "ansible.builtin.raw", "-a", "echo $((6 * 7))"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0 and "42" in cp.stdout, cp.stdout
    assert len(list(persist_dir.glob("*.sock"))) == 1  # app1's; none for bare (db1's ended with it)
    # the channels end with their containers
    berth(env, "rm", "-f", "app1", "db1", "bare")
    _wait_for(lambda: not list(persist_dir.glob("*.sock*")), "the exec channels to close")


def _wait_for(cond, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
