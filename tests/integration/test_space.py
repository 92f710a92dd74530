"""Space is accounted and given back (issue 18 items 8 and 9): a full file system ends a command
with one line, never SIGBUS (SQLite's shared memory on a full btrfs); `rmi` after `pull` removes
the layer blob and the manifest; a pull that fills the disk drops its partial download at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import CGROUP_PARENT, berth, loop_fs, sh
from tests.peers import registry

RUN = ["--network", "none"]


def _blobs(env: dict[str, str]) -> list[str]:
    d = os.path.join(env["BERTH_ROOT"], "blobs", "sha256")
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def _one_line_error(cp: object, what: str) -> None:
    rc, err = cp.returncode, cp.stderr  # type: ignore[attr-defined]
    assert rc not in (0, -7, 135), (what, rc)  # failed, and not by SIGBUS
    # progress lines may come first; the error is the one last line
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("berth: error: "), (what, err)
    assert sum(line.startswith("berth: error") for line in err.splitlines()) == 1, (what, err)


@pytest.fixture
def reg(tmp_path) -> str:  # type: ignore[no-untyped-def]
    with registry(str(tmp_path / "registry")) as r:
        yield r


def _roots(berth_env: dict[str, str], base: str, name: str) -> dict[str, str]:
    return dict(berth_env, BERTH_ROOT=os.path.join(base, name, "root"), BERTH_RUNROOT=os.path.join(base, name, "run"),
                BERTH_DRIVER="overlay")


def test_rmi_after_pull_gives_blobs_back(berth_env: dict[str, str], busybox_tar: str, reg: str,
                                         tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = _roots(berth_env, str(tmp_path), "src")
    berth(src, "import", busybox_tar, "busybox:bb")
    berth(src, "push", "--tls-verify=false", "busybox:bb", f"{reg}/space/bb:1")
    env = _roots(berth_env, str(tmp_path), "dst")
    berth(env, "pull", "--tls-verify=false", f"{reg}/space/bb:1")
    assert len(_blobs(env)) >= 3  # config, manifest, layer blob
    berth(env, "rmi", f"{reg}/space/bb:1")
    assert _blobs(env) == []
    check = berth(env, "storage", "check")
    assert "storage is consistent" in check.stdout
    # a pull after that works (nothing refers to what was removed)
    berth(env, "pull", "--tls-verify=false", f"{reg}/space/bb:1")
    assert berth(env, "run", "--rm", *RUN, f"{reg}/space/bb:1", "true").returncode == 0
    # image prune -a frees the blobs too
    berth(env, "image", "prune", "-a", "--force")
    assert _blobs(env) == []


def test_pull_that_fills_the_disk_drops_its_partial(berth_env: dict[str, str], reg: str,
                                                    session_tmp: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = _roots(berth_env, str(tmp_path), "src")
    with open(tmp_path / "blob", "wb") as f:
        for _ in range(90):
            f.write(os.urandom(1 << 20))
    berth(src, "import", _tar_of(str(tmp_path), "blob"), "big:1")
    berth(src, "push", "--tls-verify=false", "big:1", f"{reg}/space/big:1")
    with loop_fs(tempfile.mkdtemp(dir=session_tmp), "small-ext4", ["mkfs.ext4", "-q", "-F"], 64 << 20) as mnt:
        env = _roots(berth_env, mnt, "r")
        cp = berth(env, "pull", "--tls-verify=false", f"{reg}/space/big:1", check=False)
        _one_line_error(cp, "pull onto a full disk")
        incoming = os.path.join(env["BERTH_ROOT"], "blobs", "incoming")
        assert [n for n in os.listdir(incoming) if n.endswith(".partial")] == [] if os.path.isdir(incoming) else True
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize > 40 << 20  # the space is back at once
        check = berth(env, "storage", "check")
        assert "storage is consistent" in check.stdout
        berth(env, "rm", "-f", *berth(env, "ps", "-aq").stdout.split(), check=False)


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A docker-archive of an image with a 200 MB layer (bigger than the small file systems)."""
    base = str(tmp_path_factory.mktemp("big"))
    env = dict(os.environ, BERTH_ROOT=os.path.join(base, "root"), BERTH_RUNROOT=os.path.join(base, "run"),
               BERTH_CONFIG=os.path.join(base, "none.yml"), BERTH_CGROUP_PARENT=CGROUP_PARENT, BERTH_DRIVER="vfs")
    try:
        with open(os.path.join(base, "blob"), "wb") as f:
            for _ in range(200):
                f.write(os.urandom(1 << 20))
        berth(env, "import", _tar_of(base, "blob"), "big:1")
        archive = os.path.join(base, "big.tar")
        berth(env, "save", "-o", archive, "big:1")
        yield archive
    finally:
        berth(env, "rmi", "big:1", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _tar_of(base: str, name: str) -> str:
    import tarfile

    out = os.path.join(base, f"{name}.tar")
    with tarfile.open(out, "w") as t:
        t.add(os.path.join(base, name), arcname=name)
    os.unlink(os.path.join(base, name))
    return out


@pytest.mark.parametrize("fs", ["btrfs", "ext4"])
def test_load_onto_a_full_fs_is_one_line(berth_env: dict[str, str], busybox_tar: str, session_tmp: str,
                                         big_archive: str, fs: str) -> None:
    archive = big_archive
    mkfs = ["mkfs.btrfs", "-q", "-f"] if fs == "btrfs" else ["mkfs.ext4", "-q", "-F"]
    with loop_fs(tempfile.mkdtemp(dir=session_tmp), f"full-{fs}", mkfs, 192 << 20) as mnt:
        env = _roots(berth_env, mnt, "r")
        env["BERTH_DRIVER"] = "btrfs" if fs == "btrfs" else "overlay"
        berth(env, "import", busybox_tar, "busybox:bb")
        for attempt in ("file", "stdin"):
            if attempt == "file":
                cp = berth(env, "load", "-i", archive, check=False)
            else:
                with open(archive, "rb") as f:
                    cp = berth(env, "load", input=f.read(), check=False)
            _one_line_error(cp, f"load from {attempt} onto a full {fs}")
            # the store still works for commands that look, and what the load made is gone
            assert "busybox" in berth(env, "images").stdout
            if fs == "btrfs":  # btrfs gives deleted files' space back when its transaction commits
                sh("btrfs", "filesystem", "sync", mnt)
            check = berth(env, "storage", "check")
            assert "storage is consistent" in check.stdout, check.stdout
            assert "big" not in berth(env, "images").stdout
        assert berth(env, "run", "--rm", *RUN, "busybox:bb", "true").returncode == 0
