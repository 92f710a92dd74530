"""Snapshots, fallbacks, depth limits, auto-selection, concurrency and probe hygiene."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest

from berth.errors import BerthError
from berth.storage import mounts
from tests.conftest import DRIVERS, REPO, berth
from tests.treeutil import build_base, describe, make_changes, tree_tar


@pytest.fixture(scope="module")
def base_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = str(tmp_path_factory.mktemp("base") / "tree")
    build_base(root)
    return tree_tar(root)


@pytest.mark.parametrize("driver", DRIVERS)
def test_snapshot_is_a_point_in_time_copy(make_engine, driver: str, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(driver)
    base, _, _ = e.layers.create_from_tar(None, io.BytesIO(base_tar))
    rw = e.layers.create_rw(base.id)
    path = e.layers.mount(rw.id)
    try:
        make_changes(path)
        before = describe(path)
        snap = e.layers.snapshot(rw.id)
        with open(os.path.join(path, "after-snapshot"), "w") as f:
            f.write("later\n")
        os.unlink(os.path.join(path, "new.txt"))
    finally:
        e.layers.unmount(rw.id)
    snap_path = e.layers.mount(snap.id)
    try:
        assert describe(snap_path) == before
    finally:
        e.layers.unmount(snap.id)
        e.layers.remove(snap.id)


def test_overlay_falls_back_to_naive_and_says_so(make_engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("overlay")
    base, _, _ = e.layers.create_from_tar(None, io.BytesIO(base_tar))
    rw = e.layers.create_rw(base.id)
    path = e.layers.mount(rw.id)
    make_changes(path)
    good = io.BytesIO()
    e.layers.diff(rw.id, good)
    e.facts.overlay["native_diff"] = "kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled"
    ok, why = e.layers.native_diff()
    assert not ok and "REDIRECT" in why
    assert "false" in dict(e.driver.status())["Native Overlay Diff"]
    fallback = io.BytesIO()
    e.layers.diff(rw.id, fallback)
    assert fallback.getvalue() == good.getvalue()
    e.layers.unmount(rw.id)


def test_overlay_depth_limit_is_a_clear_error(make_engine) -> None:  # type: ignore[no-untyped-def]
    from berth.storage.overlay import MAX_DEPTH

    e = make_engine("overlay")
    parent = None
    for i in range(MAX_DEPTH):
        parent = f"layer{i}"
        e.driver.create(parent, f"layer{i - 1}" if i else None)
    with pytest.raises(BerthError, match="max depth exceeded"):
        e.driver.create("one-too-many", parent)
    # made on the driver alone: mounted through the mount table with the chain given
    top = e.layers.table.mount(parent, [f"layer{i}" for i in range(MAX_DEPTH - 2, -1, -1)])
    try:
        assert os.path.isdir(top)
    finally:
        e.layers.table.unmount(parent)


def test_auto_selects_btrfs_on_btrfs(berth_env: dict[str, str], btrfs_dir: str) -> None:
    env = dict(berth_env, BERTH_ROOT=os.path.join(btrfs_dir, "auto-root"))
    info = json.loads(berth(env, "info", "--format", "json").stdout)
    assert info["driver"] == "btrfs" and "btrfs" in info["driver_reason"]
    assert info["drivers"]["btrfs"]["supported"] is True


def test_auto_selects_overlay_on_ext4(berth_env: dict[str, str]) -> None:
    info = json.loads(berth(berth_env, "info", "--format", "json").stdout)
    assert info["backing_fs"] in ("ext4", "xfs")
    assert info["driver"] == "overlay" and "skipped btrfs" in info["driver_reason"]


def test_concurrent_imports_on_one_root(berth_env: dict[str, str], busybox_tar: str, base_tar: bytes,
                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    other = tmp_path / "base.tar"
    other.write_bytes(base_tar)
    exe = os.path.join(REPO, ".venv", "bin", "berth")
    procs = []
    for i in range(6):
        src = busybox_tar if i % 2 == 0 else str(other)
        procs.append(subprocess.Popen([exe, "import", src, f"img{i}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ids = [o[0].strip() for o in outs]
    assert len(set(ids[0::2])) == 1 and len(set(ids[1::2])) == 1
    listed = json.loads(berth(env, "images", "--format", "json").stdout)
    assert len(listed) == 2 and sum(len(i["RepoTags"]) for i in listed) == 6
    assert berth(env, "storage", "check").returncode == 0
    conn_layers = os.listdir(os.path.join(env["BERTH_ROOT"], "overlay"))
    assert len([n for n in conn_layers if n != "l"]) == 2


def test_probing_changes_nothing(berth_env: dict[str, str]) -> None:
    before = mounts.mountpoints()
    tmp_before = set(os.listdir("/tmp"))
    berth(berth_env, "host", "check")
    berth(berth_env, "info")
    assert mounts.mountpoints() == before
    assert {n for n in set(os.listdir("/tmp")) - tmp_before if n.startswith("berth-")} == set()


@pytest.mark.parametrize("driver", DRIVERS)
def test_commit_layer_matches_its_diff_id(make_engine, driver: str, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    e = make_engine(driver)
    base, _, _ = e.layers.create_from_tar(None, io.BytesIO(base_tar))
    rw = e.layers.create_rw(base.id)
    path = e.layers.mount(rw.id)
    try:
        make_changes(path)
        expected = describe(path)
    finally:
        e.layers.unmount(rw.id)
    layer = e.layers.commit(rw.id, base.id)
    assert layer.parent == base.id and not layer.rw
    buf = io.BytesIO()
    e.layers.diff(layer.id, buf)
    assert layer.diff_id == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    top = e.layers.mount(layer.id)
    try:
        assert describe(top) == expected
    finally:
        e.layers.unmount(layer.id)
    again = e.layers.commit(rw.id, base.id)
    assert again.id == layer.id  # the same changes are stored once


def _mount_options(target: str) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target:
                return fields[fields.index("-") + 3].split(",")
    raise AssertionError(f"{target} is not mounted")


def test_an_rm_containers_layer_skips_the_sync_at_unmount_and_mounts_again(make_engine, busybox_tar: str) -> None:  # type: ignore[no-untyped-def]
    """--rm: overlay's volatile option where the kernel has it (the trial mount says), nothing
    otherwise; the marker a volatile mount leaves in the work dir never stops the next mount."""
    from berth.container.config import ContainerConfig

    e = make_engine("overlay")
    with open(busybox_tar, "rb") as f:
        e.import_image(f, "busybox")
    volatile_here = e.facts.overlay["volatile"]
    assert isinstance(volatile_here, bool)
    rm = e.containers.create(ContainerConfig(image="busybox", command=["true"], network="none", auto_remove=True))
    keep = e.containers.create(ContainerConfig(image="busybox", command=["true"], network="none"))
    for _ in range(2):
        for c, volatile in ((rm, volatile_here), (keep, False)):
            path = e.layers.mount(c.rw_layer)
            try:
                with open(os.path.join(path, "written"), "w") as f:
                    f.write("x")
                # shown as fsync=volatile by newer kernels
                assert bool({"volatile", "fsync=volatile"} & set(_mount_options(path))) is volatile
            finally:
                e.layers.unmount(c.rw_layer)
    for c in (rm, keep):
        e.containers.remove(c.id)
