"""kill -9 of `berth import` at moments spread over its run never leaves a store that later
commands trip over; the half-made layer is gone after the next start."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.conftest import berth
from tests.treeutil import tree_tar, write


@pytest.fixture(scope="module")
def big_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("bigtree")
    root = str(d / "tree")
    for i in range(3000):
        write(f"{root}/d{i % 30:02d}/f{i:05d}", os.urandom(512))
    write(f"{root}/big.bin", os.urandom(24 << 20))
    out = str(d / "big.tar")
    with open(out, "wb") as f:
        f.write(tree_tar(root))
    return out


def _layers(env: dict[str, str]) -> list[tuple[str, int]]:
    conn = sqlite3.connect(os.path.join(env["BERTH_ROOT"], "berth.db"))
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT id, incomplete FROM layers")]
    finally:
        conn.close()


def _driver_ids(env: dict[str, str], driver: str) -> set[str]:
    home = os.path.join(env["BERTH_ROOT"], driver)
    if driver == "vfs":
        return set(os.listdir(os.path.join(home, "dir")))
    return {n for n in os.listdir(home) if n != "l"}


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_kill_during_import(berth_env: dict[str, str], big_tar: str, driver: str) -> None:
    env = dict(berth_env, BERTH_DRIVER=driver)
    t0 = time.monotonic()
    berth(env, "import", big_tar, "probe:full")
    full = time.monotonic() - t0
    berth(env, "rmi", "probe:full")
    assert _layers(env) == []
    killed_midway = 0
    for k in range(8):
        delay = full * (0.1 + 0.8 * k / 7)
        p = subprocess.Popen([os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                           ".venv", "bin", "berth"), "import", big_tar, f"crash:{k}"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed_midway += 1
        p.wait()
        # the next start cleans up; nothing trips over the remains
        check = berth(env, "storage", "check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        rows = _layers(env)
        assert all(inc == 0 for _, inc in rows), rows
        assert _driver_ids(env, driver) == {lid for lid, _ in rows}
        images = berth(env, "images", "--format", "json").stdout
        for lid, _ in rows:
            assert lid  # every remaining layer belongs to a completed import
        if rows:
            assert f"crash:{k}" in images
            berth(env, "rmi", f"crash:{k}")
        assert _layers(env) == []
    assert killed_midway >= 4
    berth(env, "import", big_tar, "after:crashes")
    assert "after" in berth(env, "images").stdout
