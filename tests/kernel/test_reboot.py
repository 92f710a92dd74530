"""What survives a reboot of a dm-thin host: the kernel lane runs test_before_reboot, reboots the
guest with its disks kept, then runs test_after_reboot. A stock system's udev and systemd activate
LVM volume groups at boot; the guest has neither, so after the reboot the pool is inactive, berth
says so in one line, and `berth host prepare` (run again, as the role does) activates it. Outside
the lane these skip."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import berth
from tests.kernel import thinlvm

STATE = "/tmp/berth-kernel-lane-reboot"  # the guest's /tmp is its scratch disk, kept across the reboot
VG = "berthreboot"
pytestmark = [pytest.mark.skipif(not thinlvm.HAS_DM, reason=thinlvm.REASON),
              pytest.mark.skipif(not thinlvm.SPARE_DISK, reason="runs only in the kernel lane (around a guest reboot)")]


def env_for(berth_env: dict[str, str]) -> dict[str, str]:
    return dict(berth_env, BERTH_ROOT=f"{STATE}/root", BERTH_RUNROOT=f"{STATE}/run", BERTH_CONFIG=f"{STATE}/config.yml")


def prepare(env: dict[str, str], *extra: str, check: bool = True) -> str:
    return berth(env, "host", "prepare", "--fstab", f"{STATE}/fstab", "--driver", "devicemapper", "--pool", "thin",
                 "--storage-opt", f"dm.vg={VG}", "--device", thinlvm.SPARE_DISK, *extra, check=check).stdout


def test_before_reboot(berth_env: dict[str, str], busybox_tar: str) -> None:
    os.makedirs(STATE, exist_ok=True)
    env = env_for(berth_env)
    assert "change(s) made" in prepare(env)
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    berth(env, "run", "--name", "keeper", "--network", "none", "bb", "sh", "-c", "echo kept >/kept")
    berth(env, "commit", "keeper", "kept")
    meta = os.path.join(STATE, "root", "devicemapper", "thin-metadata.json")
    with open(meta) as f:
        tx = json.load(f)["transaction_id"]
    assert int(thinlvm.pool_status(VG)[3]) == tx > 0
    with open(f"{STATE}/before.json", "w") as f:
        json.dump({"transaction_id": tx, "boot_id": open("/proc/sys/kernel/random/boot_id").read().strip()}, f)
    # berth_env's teardown must not remove this root: the step after the reboot needs it
    berth_env["BERTH_ROOT"] = os.path.join(str(berth_env["BERTH_ROOT"]), "unused")


def test_after_reboot(berth_env: dict[str, str]) -> None:
    with open(f"{STATE}/before.json") as f:
        before = json.load(f)
    assert open("/proc/sys/kernel/random/boot_id").read().strip() != before["boot_id"], "the guest did not reboot"
    env = env_for(berth_env)
    try:
        # no autoactivation here: the pool is down, and berth says what to do in one line
        assert not os.path.exists(f"/dev/mapper/{VG}-thinpool")
        cp = berth(env, "run", "--rm", "--network", "none", "kept", "cat", "/kept", check=False)
        assert cp.returncode == 125 and "is not active" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
        out = prepare(env)
        assert "lvchange -ay" in out and "change(s) made" in out, out
        assert "no changes" in prepare(env)
        # the pool, its transaction id, the images and the stopped container are all back
        assert int(thinlvm.pool_status(VG)[3]) == before["transaction_id"]
        assert berth(env, "run", "--rm", "--network", "none", "kept", "cat", "/kept").stdout == "kept\n"
        assert berth(env, "start", "-a", "keeper").returncode == 0
        assert len(berth(env, "ps", "-aq").stdout.split()) == 1
    finally:
        ids = berth(env, "ps", "-aq", check=False).stdout.split()
        if ids:
            berth(env, "rm", "-f", *ids, check=False)
        thinlvm.remove_group(VG, [thinlvm.SPARE_DISK])
