"""kill -9 of `berth import` at progress markers spread over its run (the layer begun, a big file
half written, half the files extracted, the last file, the layer recorded) never leaves a store
that later commands trip over; the half-made layer is gone after the next start."""

from __future__ import annotations

import glob
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.conftest import BERTH, berth
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


def _layer_file(env: dict[str, str], driver: str, rel: str) -> str | None:
    """The path of rel inside whichever layer of the root holds it (None if none does yet)."""
    pattern = {"vfs": "vfs/dir/*", "overlay": "overlay/*/diff"}[driver]
    found = glob.glob(os.path.join(env["BERTH_ROOT"], pattern, rel))
    return found[0] if found else None


def _imported_layers(env: dict[str, str]) -> set[str]:
    """Top layers of tagged images: the layers of completed imports."""
    conn = sqlite3.connect(os.path.join(env["BERTH_ROOT"], "berth.db"))
    try:
        return {r[0] for r in conn.execute("SELECT i.top_layer FROM images i JOIN tags t ON t.image_id = i.id")}
    finally:
        conn.close()


def _kill_at(argv: list[str], env: dict[str, str], reached: Callable[[], bool], timeout: float = 120) -> bool:
    """Run argv; SIGKILL it the moment reached() is true. True if it was killed while still running
    (False if it finished first)."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while p.poll() is None:
            if reached():
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)
                return True
            if time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(argv)} neither reached its marker nor finished in {timeout:.0f} s")
            time.sleep(0.001)
        return False
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_kill_during_import(berth_env: dict[str, str], big_tar: str, driver: str) -> None:
    env = dict(berth_env, BERTH_DRIVER=driver)
    berth(env, "import", big_tar, "probe:full")
    berth(env, "rmi", "probe:full")
    assert _layers(env) == []

    def begun() -> bool:
        return os.path.exists(os.path.join(env["BERTH_ROOT"], "berth.db")) and bool(_layers(env))

    def file_present(rel: str, min_size: int = 0) -> Callable[[], bool]:
        def check() -> bool:
            path = _layer_file(env, driver, rel)
            return path is not None and os.path.getsize(path) > min_size
        return check

    def layer_complete() -> bool:
        return any(inc == 0 for _, inc in _layers(env))

    # progress markers in the order the import reaches them (the tar holds big.bin first, then
    # d00..d29 with files f00000..f02999 spread over them); the first three lie inside long phases.
    # The last: the layer is recorded complete, the image not yet. A kill there leaves a complete
    # layer no image uses, which recovery collects (no command is taking a reference any more).
    markers: list[tuple[str, Callable[[], bool], bool]] = [
        ("the layer row begun", begun, True),
        ("big.bin half written", file_present("big.bin", 12 << 20), True),
        ("half the small files extracted", file_present("d15/f01515"), True),
        ("the last file extracted", file_present("d29/f02999"), False),
        ("the layer recorded complete", layer_complete, False),
    ]
    for k, (what, reached, must_be_midway) in enumerate(markers):
        killed = _kill_at([BERTH, "import", big_tar, f"crash:{k}"], env, reached)
        assert killed or not must_be_midway, f"the import finished before {what}"
        # the next start cleans up; nothing trips over the remains
        check = berth(env, "storage", "check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        rows = _layers(env)
        assert all(inc == 0 for _, inc in rows), (what, rows)
        assert _driver_ids(env, driver) == {lid for lid, _ in rows}, what
        # every remaining layer belongs to a completed import (a tagged image's top layer)
        unused = {lid for lid, _ in rows} - _imported_layers(env)
        assert not unused, (what, rows)
        if _layers(env):
            assert f"crash:{k}" in berth(env, "images").stdout, what
            berth(env, "rmi", f"crash:{k}")
        assert _layers(env) == []
    berth(env, "import", big_tar, "after:crashes")
    assert "after" in berth(env, "images").stdout
