"""The fleet over SSH: system containers running sshd on berth's bridge, converged by
playbooks/site.yml with the ssh connection and pipelining; a second run changes nothing."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess

import pytest

from tests import fleethosts
from tests.conftest import REPO, berth

FLEET_TAR = os.path.join(REPO, ".cache", "fleet.tar")
pytestmark = [
    pytest.mark.skipif(not os.path.exists(FLEET_TAR), reason="no fleet image: make .cache/fleet.tar"),
    pytest.mark.skipif(not shutil.which("ssh"), reason="no ssh client (apt-get install openssh-client)"),
]


@pytest.mark.timeout(600)
def test_fleet_converges_over_ssh(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    run = functools.partial(berth, env)
    fleethosts.import_image(run, FLEET_TAR)
    key = fleethosts.ssh_keypair(str(tmp_path))
    names = ["ssh-1", "ssh-2"]
    ips = fleethosts.start_hosts(run, names, label="ssh-test", keydir=str(tmp_path), busybox_tar=busybox_tar)
    inventory = fleethosts.ssh_inventory(str(tmp_path / "hosts.json"), ips, key=key)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(fleethosts.containers_vars(3)))

    first = fleethosts.converge(inventory, str(vars_file), env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    counts = fleethosts.recap(first.stdout)
    assert set(counts) == set(names) and all(c["changed"] > 0 for c in counts.values()), counts
    for name in names:
        # the inventory has nothing but addresses and a key: the hosts answer over SSH
        who = subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                              "-o", "BatchMode=yes", f"root@{ips[name]}", "hostname"],
                             capture_output=True, text=True, timeout=30)
        assert who.stdout.strip() == name, who.stderr
        inner = json.loads(run("exec", name, "berth", "ps", "--format", "json").stdout)
        assert sorted(c["Name"].lstrip("/") for c in inner) == ["app1", "app2", "app3"]
        assert {c["HostConfig"]["PidsLimit"] for c in inner} == {11, 12, 13}
        procs = run("exec", name, "ps", "-eo", "comm").stdout.split()
        assert "sshd" in procs

    again = fleethosts.converge(inventory, str(vars_file), env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(c["changed"] == 0 for c in fleethosts.recap(again.stdout).values()), again.stdout[-3000:]
