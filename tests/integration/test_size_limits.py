"""--storage-opt size=N: a container's writable layer is limited by an XFS project quota (overlay)
or a btrfs qgroup; drivers and file systems that cannot limit say so before anything is made."""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.conftest import berth

FILL = ("dd if=/dev/zero of=/small bs=1M count=8 2>/dev/null && echo small-ok; "
        "dd if=/dev/zero of=/big bs=1M count=40 2>&1; sync")


def limited_env(berth_env: dict[str, str], base: str, driver: str, busybox_tar: str) -> dict[str, str]:
    env = dict(berth_env, BERTH_DRIVER=driver, BERTH_ROOT=os.path.join(tempfile.mkdtemp(dir=base), "root"))
    berth_env["BERTH_ROOT"] = env["BERTH_ROOT"]  # so the fixture's teardown removes its containers
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return env


def records(env: dict[str, str], driver: str) -> list[str]:
    d = os.path.join(env["BERTH_ROOT"], driver, "quotas")
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def check_limit(env: dict[str, str], driver: str) -> None:
    out = berth(env, "run", "--rm", "--network", "none", "--storage-opt", "size=24m", "busybox", "sh", "-c",
                FILL).stdout
    assert "small-ok" in out and ("quota exceeded" in out.lower() or "no space left" in out.lower()), out
    # without a limit the same writes go through
    out = berth(env, "run", "--rm", "--network", "none", "busybox", "sh", "-c", FILL).stdout
    assert "small-ok" in out and "quota" not in out.lower() and "no space" not in out.lower(), out
    # a snapshot keeps the limit: after a restore the container is still limited
    cid = berth(env, "run", "-d", "--network", "none", "--storage-opt", "size=24m", "busybox",
                "sleep", "1000").stdout.strip()
    assert len(records(env, driver)) == 1
    berth(env, "snapshot", "create", cid, "s1")
    assert len(records(env, driver)) == 2
    berth(env, "snapshot", "restore", cid, "s1")
    out = berth(env, "exec", cid, "sh", "-c", FILL).stdout
    assert "small-ok" in out and ("quota exceeded" in out.lower() or "no space left" in out.lower()), out
    # the records go with the container and its snapshots
    berth(env, "rm", "-f", cid)
    assert records(env, driver) == []


def test_overlay_size_on_xfs_project_quota(berth_env: dict[str, str], busybox_tar: str, xfs_prjquota_dir: str) -> None:
    check_limit(limited_env(berth_env, xfs_prjquota_dir, "overlay", busybox_tar), "overlay")


def test_btrfs_size_through_qgroups(berth_env: dict[str, str], busybox_tar: str, btrfs_dir: str) -> None:
    check_limit(limited_env(berth_env, btrfs_dir, "btrfs", busybox_tar), "btrfs")


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_size_refused_where_it_cannot_work(berth_env: dict[str, str], busybox_tar: str, driver: str) -> None:
    env = dict(berth_env, BERTH_DRIVER=driver)
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    cp = berth(env, "run", "--rm", "--network", "none", "--storage-opt", "size=24m", "busybox", "true", check=False)
    want = "prjquota" if driver == "overlay" else "cannot limit a container's size"
    assert cp.returncode == 125 and want in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    cp = berth(env, "create", "--storage-opt", "inodes=5", "busybox", "true", check=False)
    assert cp.returncode != 0 and "inodes" in cp.stderr
    assert berth(env, "ps", "-aq").stdout == ""  # nothing half-made


def test_declared_size_is_applied_and_a_change_recreates(berth_env: dict[str, str], busybox_tar: str,
                                                          btrfs_dir: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = limited_env(berth_env, btrfs_dir, "btrfs", busybox_tar)
    state = tmp_path / "state.yml"
    doc = ("containers:\n  - name: capped\n    image: busybox\n    command: [sleep, '1000']\n"
           "    network: none\n    storage_opts: {size: %s}\n")
    state.write_text(doc % "24m")
    berth(env, "apply", "-f", str(state))
    out = berth(env, "exec", "capped", "sh", "-c", FILL).stdout
    assert "quota exceeded" in out.lower() or "no space left" in out.lower(), out
    assert "no changes" in berth(env, "plan", "-f", str(state)).stdout.lower()
    state.write_text(doc % "64m")
    plan = berth(env, "plan", "-f", str(state)).stdout
    assert 'recreate capped: storage opts {"size": "24m"} → {"size": "64m"}' in plan, plan
    berth(env, "apply", "-f", str(state))
    out = berth(env, "exec", "capped", "sh", "-c", FILL).stdout
    assert "small-ok" in out and "quota" not in out.lower(), out
    state.write_text("containers:\n  - name: bad\n    image: busybox\n    storage_opts: [size]\n")
    cp = berth(env, "plan", "-f", str(state), check=False)
    assert cp.returncode == 1 and "storage_opts must be a mapping" in cp.stderr and "line 4" in cp.stderr, cp.stderr
