"""berth host prepare: idempotent, --check changes nothing, a device with data is not wiped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from berth.host.probe import device_mapper
from tests.conftest import berth, sh, unmount_below


@pytest.fixture
def area(tmp_path):  # type: ignore[no-untyped-def]
    yield tmp_path
    unmount_below(str(tmp_path))
    for img in tmp_path.glob("*.img"):
        out = subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True, timeout=300).stdout
        for line in out.splitlines():
            sh("losetup", "-d", line.split(":")[0], check=False)


def prep(env: dict[str, str], area, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return berth(env, "--root", str(area / "root"), "--config", str(area / "config.yml"), "host", "prepare",
                 "--fstab", str(area / "fstab"), *args, check=check)


def test_btrfs_on_a_loop_file(berth_env: dict[str, str], busybox_tar: str, area) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    env.pop("BERTH_ROOT", None)
    args = ("--driver", "btrfs", "--loopback", f"{area / 'pool.img'}:1G")
    plan = prep(env, area, *args, "--check").stdout
    assert "would be made" in plan and not (area / "pool.img").exists() and not (area / "config.yml").exists()
    first = prep(env, area, *args).stdout
    assert "change(s) made" in first
    assert open("/proc/mounts").read().count(str(area / "root")) == 1
    second = prep(env, area, *args).stdout
    assert "no changes: the storage is ready" in second
    assert (area / "fstab").read_text().strip() == f"{area / 'pool.img'} {area / 'root'} btrfs loop 0 0"
    env_c = dict(env, BERTH_CONFIG=str(area / "config.yml"), BERTH_RUNROOT=str(area / "run"))
    info = json.loads(berth(env_c, "info", "--format", "json").stdout)
    assert info["driver"] == "btrfs" and info["root"] == str(area / "root")
    berth(env_c, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    assert berth(env_c, "run", "--rm", "--network", "none", "bb", "echo", "on-btrfs").stdout == "on-btrfs\n"


def test_device_with_a_filesystem_is_refused_without_force(berth_env: dict[str, str], area) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    img = area / "data.img"
    with open(img, "wb") as f:
        f.truncate(256 << 20)
    sh("mkfs.ext4", "-q", str(img))
    cp = prep(env, area, "--driver", "btrfs", "--loopback", str(img), check=False)
    assert cp.returncode == 1 and "holds a ext4 signature" in cp.stderr and "--force" in cp.stderr
    assert subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True, timeout=300).stdout == ""
    assert not (area / "config.yml").exists()
    out = prep(env, area, "--driver", "btrfs", "--loopback", str(img), "--force").stdout
    assert "mkfs.btrfs" in out
    cp = prep(env, area, "--driver", "btrfs", check=False)
    assert "no changes" in cp.stdout


def test_overlay_and_vfs(berth_env: dict[str, str], area) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    out = prep(env, area, "--driver", "overlay").stdout
    assert "overlay checks" in out and "change(s) made" in out
    assert "no changes" in prep(env, area, "--driver", "overlay").stdout
    cp = prep(env, area, "--driver", "vfs", "--check")
    assert "would be made" in cp.stdout and "driver: overlay" in (area / "config.yml").read_text()
    assert os.path.exists(area / "config.yml")


def test_devicemapper_reflink_pool_and_a_full_pool(berth_env: dict[str, str], busybox_tar: str, area) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    env.pop("BERTH_ROOT", None)
    args = ("--driver", "devicemapper", "--loopback", f"{area / 'dm.img'}:700M")
    assert "change(s) made" in prep(env, area, *args).stdout
    assert "no changes" in prep(env, area, *args).stdout
    cfg = area / "config.yml"
    cfg.write_text(cfg.read_text() + "storage_opts:\n  dm.basesize: 2g\n")
    env_c = dict(env, BERTH_CONFIG=str(cfg), BERTH_RUNROOT=str(area / "run"), BERTH_DRIVER="devicemapper")
    info = json.loads(berth(env_c, "info", "--format", "json").stdout)
    assert info["driver"] == "devicemapper" and info["driver_status"]["Pool backend"] == "reflink"
    berth(env_c, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    # fill the pool past dm.min_free_space (10%), but not to the last byte, from inside a container
    st = os.statvfs(area / "root")
    count = (st.f_bavail * st.f_frsize - st.f_blocks * st.f_frsize // 20) >> 20
    berth(env_c, "run", "--name", "filler", "--network", "none", "bb", "sh", "-c",
          f"dd if=/dev/urandom of=/fill bs=1M count={count} 2>/dev/null; sync; true")
    cp = berth(env_c, "create", "--name", "next", "--network", "none", "bb", "true", check=False)
    assert cp.returncode == 1 and "thin pool full" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    status = json.loads(berth(env_c, "info", "--format", "json").stdout)["driver_status"]
    assert status["Pool state"].startswith("full")
    assert berth(env_c, "storage", "check").returncode == 0
    berth(env_c, "rm", "filler")
    assert berth(env_c, "run", "--rm", "--network", "none", "bb", "echo", "room again").stdout == "room again\n"


LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}


@pytest.fixture
def pv_loop(area):  # type: ignore[no-untyped-def]
    """A loop device that is a physical volume of a scratch volume group (LVM's metadata needs no
    device-mapper; only activating logical volumes does)."""
    if not shutil.which("pvcreate"):
        pytest.skip("lvm2 is not installed")
    img = area / "pv.img"
    with open(img, "wb") as f:
        f.truncate(256 << 20)
    dev = sh("losetup", "-f", "--show", str(img)).stdout.strip()
    vg = f"berthtest{os.getpid()}"
    env = dict(os.environ, **LVM_ENV)
    try:
        subprocess.run(["pvcreate", "-y", dev], check=True, capture_output=True, env=env, timeout=300)
        subprocess.run(["vgcreate", vg, dev], check=True, capture_output=True, env=env, timeout=300)
        yield dev, vg
    finally:
        subprocess.run(["vgremove", "-y", vg], capture_output=True, env=env, timeout=300)
        subprocess.run(["pvremove", "-y", dev], capture_output=True, env=env, timeout=300)
        sh("losetup", "-d", dev, check=False)


def test_thin_pool_plan_and_refusals(berth_env: dict[str, str], area, pv_loop) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    dev, vg = pv_loop
    # loop-lvm, planned: every LVM step, the loud warning, and nothing done
    plan = prep(env, area, "--driver", "devicemapper", "--pool", "thin", "--loopback", f"{area / 'lvm.img'}:2G",
                "--check").stdout
    for step in ("warning: loop-lvm", "pvcreate", "vgcreate berth", "lvcreate berth/thinpool on 95%",
                 "lvcreate berth/thinpoolmeta on 1%", "chunk 512K, no zeroing", "extend the pool by 20% at 80% full",
                 "lvchange --metadataprofile berth-thinpool", "'dm.thinpooldev': '/dev/mapper/berth-thinpool'"):
        assert step in plan, (step, plan)
    assert not (area / "lvm.img").exists() and not (area / "config.yml").exists()
    # direct-lvm on a device already in the group: those steps are done, the pool is not
    plan = prep(env, area, "--storage-opt", f"dm.vg={vg}", "--storage-opt", "dm.blocksize=1M", "--driver",
                "devicemapper", "--pool", "thin", "--device", dev, "--check").stdout
    assert f"ok: {dev} is a physical volume" in plan and f"ok: volume group {vg} exists" in plan
    assert f"change: lvcreate {vg}/thinpool" in plan and "chunk 1M" in plan
    # a physical volume of another group is not taken; a device with a file system is not wiped
    cp = prep(env, area, "--driver", "devicemapper", "--pool", "thin", "--device", dev, "--check", check=False)
    assert cp.returncode == 1 and f"physical volume of volume group {vg}" in cp.stderr
    ext4 = area / "ext4.img"
    with open(ext4, "wb") as f:
        f.truncate(64 << 20)
    sh("mkfs.ext4", "-q", str(ext4))
    cp = prep(env, area, "--driver", "devicemapper", "--pool", "thin", "--loopback", str(ext4), check=False)
    assert cp.returncode == 1 and "holds a ext4 signature" in cp.stderr
    cp = prep(env, area, "--storage-opt", "dm.blocksize=100K", "--driver", "devicemapper", "--pool", "thin",
              "--loopback", f"{area / 'lvm.img'}:2G", check=False)
    assert cp.returncode == 1 and "multiple of 64K" in cp.stderr
    if not device_mapper()[0]:
        # applying it here: refused before anything is made
        cp = prep(env, area, "--driver", "devicemapper", "--pool", "thin", "--loopback", f"{area / 'lvm.img'}:2G",
                  check=False)
        assert cp.returncode == 1 and "needs device-mapper" in cp.stderr
        assert not (area / "lvm.img").exists() and not (area / "config.yml").exists()
        assert subprocess.run(["losetup", "-j", str(area / "ext4.img")], capture_output=True, text=True,
                              timeout=300).stdout == ""


def dm_names() -> set[str]:
    out = subprocess.run(["dmsetup", "ls"], capture_output=True, text=True, timeout=60).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith("No devices")}


@pytest.mark.skipif(not device_mapper()[0], reason=f"no device-mapper: {device_mapper()[1]}")
def test_loop_lvm_thin_pool_made_and_used(berth_env: dict[str, str], busybox_tar: str, area) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env)
    env.pop("BERTH_CONFIG", None)
    vg = f"berthpool{os.getpid()}"
    args = ("--storage-opt", f"dm.vg={vg}", "--driver", "devicemapper", "--pool", "thin", "--loopback",
            f"{area / 'lvm.img'}:4G")
    lvm_env = dict(os.environ, **LVM_ENV)
    dm_before = dm_names()
    try:
        assert "change(s) made" in prep(env, area, *args).stdout
        assert "no changes" in prep(env, area, *args).stdout
        env_c = dict(env, BERTH_CONFIG=str(area / "config.yml"), BERTH_RUNROOT=str(area / "run"),
                     BERTH_ROOT=str(area / "root"))
        berth(env_c, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
        # after the import: berth info reports a driver's status once the root is initialised
        info = json.loads(berth(env_c, "info", "--format", "json").stdout)
        assert info["driver"] == "devicemapper" and info["driver_status"]["Pool backend"] == "dm-thin"
        assert berth(env_c, "run", "--rm", "--network", "none", "bb", "echo", "thin").stdout == "thin\n"
        berth(env_c, "rmi", "bb")
    finally:
        # the thin devices berth activated, then the volume group, its profile and its loop device
        for name in sorted(dm_names() - dm_before):
            if name.startswith("berth-"):
                subprocess.run(["dmsetup", "remove", "--retry", name], capture_output=True, timeout=120)
        subprocess.run(["vgremove", "-y", vg], capture_output=True, env=lvm_env, timeout=300)
        profile = f"/etc/lvm/profile/{vg}-thinpool.profile"
        if os.path.exists(profile):
            os.unlink(profile)
        for img in (area / "lvm.img",):
            out = subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True, timeout=300).stdout
            for line in out.splitlines():
                subprocess.run(["pvremove", "-y", line.split(":")[0]], capture_output=True, env=lvm_env, timeout=300)
