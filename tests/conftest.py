"""Shared fixtures: temporary berth roots per driver, a loop-mounted btrfs, a busybox rootfs tar.

Everything a fixture mounts or attaches it also removes, by path and device, even when the test
fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

from berth import config as config_mod
from berth.engine import Engine
from berth.storage import mounts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVERS = ("vfs", "overlay", "btrfs")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def unmount_below(path: str) -> None:
    """Unmount everything mounted at or below path, deepest first."""
    real = os.path.realpath(path)
    for mp in sorted((m for m in mounts.mountpoints() if m == real or m.startswith(real + "/")),
                     key=len, reverse=True):
        sh("umount", mp, check=False)
        if mounts.is_mountpoint(mp):
            sh("umount", "-l", mp, check=False)


def remove_tree(path: str) -> None:
    """Remove a test root, deleting btrfs subvolumes that plain rmtree may refuse."""
    if not os.path.exists(path):
        return
    unmount_below(path)
    try:
        shutil.rmtree(path)
    except OSError:
        for root, dirs, _ in os.walk(path, topdown=False):
            for d in dirs:
                p = os.path.join(root, d)
                if os.lstat(p).st_ino == 256:
                    sh("btrfs", "property", "set", "-ts", p, "ro", "false", check=False)
                    sh("btrfs", "subvolume", "delete", p, check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("berth's storage tests need root (mounts, ownership)")


@pytest.fixture(scope="session")
def session_tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="berth-test-")
    try:
        yield d
    finally:
        remove_tree(d)


@pytest.fixture(scope="session")
def btrfs_dir(session_tmp: str) -> Iterator[str]:
    """A directory on a fresh loop-mounted btrfs file system."""
    if "btrfs" not in open("/proc/filesystems").read() or not shutil.which("mkfs.btrfs"):
        pytest.skip("btrfs is not available in this kernel or btrfs-progs is missing")
    img = os.path.join(session_tmp, "btrfs.img")
    mnt = os.path.join(session_tmp, "btrfs")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    sh("mkfs.btrfs", "-q", "-f", img)
    dev = sh("losetup", "-f", "--show", img).stdout.strip()
    try:
        sh("mount", dev, mnt)
        try:
            yield mnt
        finally:
            unmount_below(mnt)
    finally:
        sh("losetup", "-d", dev, check=False)


@pytest.fixture(scope="session")
def busybox_tar(session_tmp: str) -> str:
    out = os.path.join(session_tmp, "busybox.tar")
    subprocess.run([os.path.join(REPO, "scripts", "busybox-rootfs.sh"), out], check=True)
    return out


EngineFactory = Callable[[str], Engine]


@pytest.fixture
def make_engine(request: pytest.FixtureRequest, tmp_path: str) -> Iterator[EngineFactory]:
    """make_engine(driver) -> an Engine on a fresh root for that driver (btrfs on the loop fs)."""
    made: list[tuple[Engine, str]] = []

    def factory(driver: str) -> Engine:
        if driver == "btrfs":
            base = tempfile.mkdtemp(dir=request.getfixturevalue("btrfs_dir"))
        else:
            base = tempfile.mkdtemp(dir=str(tmp_path))
        settings = config_mod.Settings(root=os.path.join(base, "root"), runroot=os.path.join(base, "run"),
                                       driver=driver, driver_source="test")
        e = Engine(settings)
        made.append((e, base))
        return e

    try:
        yield factory
    finally:
        for e, base in made:
            try:
                e.close()
            finally:
                remove_tree(base)


@pytest.fixture
def berth_env(tmp_path: str) -> Iterator[dict[str, str]]:
    """Environment for running the berth CLI on a temporary root."""
    env = dict(os.environ)
    env["BERTH_ROOT"] = os.path.join(str(tmp_path), "root")
    env["BERTH_RUNROOT"] = os.path.join(str(tmp_path), "run")
    env["BERTH_CONFIG"] = os.path.join(str(tmp_path), "no-config.yml")
    env.pop("BERTH_DRIVER", None)
    try:
        yield env
    finally:
        unmount_below(str(tmp_path))


def berth(env: dict[str, str], *args: str, input: bytes | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(REPO, ".venv", "bin", "berth")
    cp = subprocess.run([exe if os.path.exists(exe) else "berth", *args],
                        env=env, input=input.decode("latin-1") if input else None,
                        capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} failed ({cp.returncode}): {cp.stderr}")
    return cp
