"""Containers on a real dm-thin pool that `berth host prepare` made with LVM: direct-lvm on a spare
disk and loop-lvm on a small file; run, commit, snapshot and restore; the pool's transaction id
kept in step; a change killed half-way rolled back at the next start; a full pool reported by
`berth info` and refused before anything is made. This machine's kernel has no device-mapper, so
here these skip; `make test-kernel` runs them in a VM with Debian's kernel."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import REPO, berth
from tests.kernel import thinlvm

pytestmark = pytest.mark.skipif(not thinlvm.HAS_DM, reason=thinlvm.REASON)

KILLED_MID_CHANGE = """
import os, signal, sys
from berth.storage.devicemapper import ThinPool
pool = ThinPool(sys.argv[1], sys.argv[2])
dev_id = pool._begin("doomed")
pool._message(f"create_thin {dev_id}")
if sys.argv[3] == "after-transaction-id":
    old = int(pool.meta["transaction_id"])
    pool._message(f"set_transaction_id {old} {old + 1}")
print(dev_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def prepare(env: dict[str, str], base: str, *args: str) -> dict[str, str]:
    out = berth(env, "--root", f"{base}/root", "--config", f"{base}/config.yml", "host", "prepare", "--fstab",
                f"{base}/fstab", "--driver", "devicemapper", "--pool", "thin", *args).stdout
    assert "change(s) made" in out, out
    with open(f"{base}/config.yml") as f:
        cfg = yaml.safe_load(f)
    cfg["storage_opts"]["dm.basesize"] = "1g"  # mkfs of the base device is quick, and the small pool holds it
    with open(f"{base}/config.yml", "w") as f:
        yaml.safe_dump(cfg, f)
    return dict(env, BERTH_CONFIG=f"{base}/config.yml", BERTH_ROOT=f"{base}/root", BERTH_RUNROOT=f"{base}/run")


@pytest.fixture
def direct_lvm(berth_env: dict[str, str], busybox_tar: str, spare_disk: str,
               tmp_path) -> Iterator[tuple[dict[str, str], str]]:  # type: ignore[no-untyped-def]
    vg = f"berthvm{os.getpid()}"
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    try:
        env_c = prepare(env, str(tmp_path), "--storage-opt", f"dm.vg={vg}", "--device", spare_disk)
        berth_env.update(BERTH_ROOT=env_c["BERTH_ROOT"], BERTH_RUNROOT=env_c["BERTH_RUNROOT"],
                         BERTH_CONFIG=env_c["BERTH_CONFIG"])  # the fixture's teardown removes the containers
        berth(env_c, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
        yield env_c, vg
    finally:
        ids = berth(dict(berth_env), "ps", "-aq", check=False).stdout.split()
        if ids:
            berth(dict(berth_env), "rm", "-f", *ids, check=False)
        thinlvm.remove_group(vg, [spare_disk])


def thin_meta(env: dict[str, str]) -> dict[str, object]:
    with open(os.path.join(env["BERTH_ROOT"], "devicemapper", "thin-metadata.json")) as f:
        return json.load(f)


def test_run_commit_snapshot_restore_on_direct_lvm(direct_lvm: tuple[dict[str, str], str]) -> None:
    env, vg = direct_lvm
    info = json.loads(berth(env, "info", "--format", "json").stdout)
    assert info["driver"] == "devicemapper" and info["driver_status"]["Pool backend"] == "dm-thin", info
    assert berth(env, "run", "--rm", "--network", "none", "bb", "echo", "thin").stdout == "thin\n"
    # commit: the container's thin device, snapshotted, is the new layer
    berth(env, "run", "--name", "maker", "--network", "none", "bb", "sh", "-c", "echo made >/made")
    berth(env, "commit", "maker", "made")
    assert berth(env, "run", "--rm", "--network", "none", "made", "cat", "/made").stdout == "made\n"
    # snapshot and restore a running container
    cid = berth(env, "run", "-d", "--network", "none", "bb", "sleep", "300").stdout.strip()
    berth(env, "exec", cid, "sh", "-c", "echo before >/state")
    berth(env, "snapshot", "create", cid, "s1")
    berth(env, "exec", cid, "sh", "-c", "echo after >/state")
    berth(env, "snapshot", "restore", cid, "s1")
    assert berth(env, "exec", cid, "cat", "/state").stdout == "before\n"
    # every layer and container is a thin device of the pool, and the transaction ids agree
    meta = thin_meta(env)
    assert meta["open"] is None and len(meta["devices"]) >= 4, meta  # type: ignore[arg-type]
    assert int(thinlvm.pool_status(vg)[3]) == meta["transaction_id"]
    active = [ln.split()[0] for ln in thinlvm.lvm("dmsetup", "ls").stdout.splitlines() if ln.startswith("berth-")]
    assert active, "the running container's device is not an active thin device"
    berth(env, "rm", "-f", cid, "maker")
    berth(env, "rmi", "made")
    assert berth(env, "ps", "-aq").stdout == ""


@pytest.mark.parametrize("when", ["before-transaction-id", "after-transaction-id"])
def test_a_change_killed_half_way_is_rolled_back(direct_lvm: tuple[dict[str, str], str], when: str) -> None:
    env, vg = direct_lvm
    berth(env, "run", "--rm", "--network", "none", "bb", "true")  # the base device and the image's layer
    pool = f"/dev/mapper/{vg}-thinpool"
    meta_path = os.path.join(env["BERTH_ROOT"], "devicemapper", "thin-metadata.json")
    cp = subprocess.run([os.path.join(REPO, ".venv", "bin", "python"), "-c", KILLED_MID_CHANGE, pool, meta_path, when],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == -9, cp.stderr
    dev_id = int(cp.stdout)
    assert thin_meta(env)["open"] == {"dev": "doomed", "id": dev_id}
    # the next berth that opens the pool rolls the change back before anything else
    assert berth(env, "run", "--rm", "--network", "none", "bb", "echo", "after").stdout == "after\n"
    meta = thin_meta(env)
    assert meta["open"] is None and "doomed" not in meta["devices"]  # type: ignore[operator]
    assert int(thinlvm.pool_status(vg)[3]) == meta["transaction_id"]
    # the killed change's thin device is gone from the pool: its id can be made again
    thinlvm.lvm("dmsetup", "message", pool, "0", f"create_thin {dev_id}")
    thinlvm.lvm("dmsetup", "message", pool, "0", f"delete {dev_id}")


def test_a_full_loop_lvm_pool_is_reported(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    vg = f"berthfull{os.getpid()}"
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    img = tmp_path / "lvm.img"
    try:
        env_c = prepare(env, str(tmp_path), "--storage-opt", f"dm.vg={vg}", "--loopback", f"{img}:800M")
        berth_env.update(BERTH_ROOT=env_c["BERTH_ROOT"], BERTH_RUNROOT=env_c["BERTH_RUNROOT"])
        berth(env_c, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
        status = json.loads(berth(env_c, "info", "--format", "json").stdout)["driver_status"]
        assert status["Pool backend"] == "dm-thin" and status["Pool state"] == "ok", status
        used, total = (int(status[k].split()[0]) for k in ("Data space used", "Data space total"))
        assert 700 < total < 800 and 0 < used < total, status
        # fill the pool past dm.min_free_space (10%), not to the last block, from inside a container
        count = total - used - total // 20
        berth(env_c, "run", "--name", "filler", "--network", "none", "bb", "sh", "-c",
              f"dd if=/dev/zero of=/fill bs=1M count={count} 2>/dev/null; sync; true")
        status = json.loads(berth(env_c, "info", "--format", "json").stdout)["driver_status"]
        assert status["Pool state"].startswith("full"), status
        cp = berth(env_c, "create", "--name", "next", "--network", "none", "bb", "true", check=False)
        assert cp.returncode == 1 and "thin pool full" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
        berth(env_c, "rm", "filler")
        assert berth(env_c, "run", "--rm", "--network", "none", "bb", "echo", "room again").stdout == "room again\n"
    finally:
        ids = berth(dict(berth_env), "ps", "-aq", check=False).stdout.split()
        if ids:
            berth(dict(berth_env), "rm", "-f", *ids, check=False)
        loops = [ln.split(":")[0] for ln in subprocess.run(["losetup", "-j", str(img)], capture_output=True,
                                                           text=True).stdout.splitlines()]
        thinlvm.remove_group(vg, loops)
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
