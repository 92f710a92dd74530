"""The berth_storage role on a real dm-thin host: site.yml prepares a direct-lvm thin pool on the
spare disk, runs a container on it, and changes nothing the second time. Outside the kernel lane
this skips (no device-mapper here)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import REPO, berth
from tests.kernel import thinlvm

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
pytestmark = [pytest.mark.skipif(not thinlvm.HAS_DM, reason=thinlvm.REASON),
              pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible-core is not installed in .venv")]


def site(env: dict[str, str], extra: dict[str, object]) -> dict[str, int]:
    cp = subprocess.run([ANSIBLE, "-i", "inventory/local", "playbooks/site.yml", "-e", json.dumps(extra)], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-2000:]
    m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", cp.stdout)
    assert m, cp.stdout[-2000:]
    return {"ok": int(m[1]), "changed": int(m[2])}


def test_site_prepares_a_thin_pool_and_runs_on_it(berth_env: dict[str, str], busybox_tar: str, spare_disk: str,
                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    vg = f"berthrole{os.getpid()}"
    config = tmp_path / "config.yml"
    config.write_text("storage_opts:\n  dm.basesize: 1g\n")  # kept by host prepare; a small base is quick to make
    env = dict(berth_env, ANSIBLE_FORCE_COLOR="0", BERTH_CONFIG=str(config))
    berth_env["BERTH_CONFIG"] = str(config)  # so the fixture's teardown removes the container on the pool
    extra = {
        "berth_runtime_manage_packages": False,
        "berth_storage_prepare": True, "berth_storage_driver": "devicemapper", "berth_storage_pool": "thin",
        "berth_storage_devices": [spare_disk], "berth_storage_pool_opts": {"dm.vg": vg},
        "berth_storage_root": env["BERTH_ROOT"], "berth_storage_runroot": env["BERTH_RUNROOT"],
        "berth_storage_config_path": str(config), "berth_storage_fstab": str(tmp_path / "fstab"),
        "berth_containers_root": env["BERTH_ROOT"], "berth_containers_runroot": env["BERTH_RUNROOT"],
        "berth_containers_images": [{"name": "busybox:latest", "import": busybox_tar, "changes": ['CMD ["sh"]']}],
        "berth_containers_containers": [{"name": "on-thin", "image": "busybox:latest", "network": "none",
                                         "command": ["sh", "-c", "echo stored >/data; exec sleep 100000"]}],
    }
    try:
        assert site(env, extra)["changed"] >= 2
        info = json.loads(berth(env, "info", "--format", "json").stdout)
        assert info["driver"] == "devicemapper" and info["driver_status"]["Pool backend"] == "dm-thin", info
        assert berth(env, "exec", "on-thin", "cat", "/data").stdout == "stored\n"
        assert site(env, extra)["changed"] == 0
    finally:
        ids = berth(env, "ps", "-aq", check=False).stdout.split()
        if ids:
            berth(env, "rm", "-f", *ids, check=False)
        thinlvm.remove_group(vg, [spare_disk])
