"""The dm-thin pool backend needs device-mapper in the kernel; here it is missing (not in
/proc/misc), so this test skips and the driver is exercised through its reflink pool
(the cross-driver matrix, the container tests and host prepare run devicemapper on reflink).
The kernel lane runs it inside a VM. Everything it makes (thin devices, the pool, loop devices)
goes in `finally`, even when it fails half-way."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.host.probe import device_mapper
from berth.storage.devicemapper import ThinPool

pytestmark = pytest.mark.skipif(not device_mapper()[0], reason=f"no device-mapper: {device_mapper()[1]}")

BLOCK = 4096


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=120)


def write_at(dev: str, offset: int, data: bytes) -> None:
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_at(dev: str, offset: int, n: int) -> bytes:
    run("blockdev", "--flushbufs", dev)  # read what the device holds, not this page cache
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.pread(fd, n, offset)
    finally:
        os.close(fd)


def test_thin_pool_backend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, meta = tmp_path / "data", tmp_path / "meta"
    for f, size in ((data, 1 << 30), (meta, 64 << 20)):
        with open(f, "wb") as fh:
            fh.truncate(size)
    loops: list[str] = []
    name = f"berth-test-pool-{os.getpid()}"
    pool: ThinPool | None = None
    try:
        for f in (data, meta):
            loops.append(run("losetup", "-f", "--show", str(f)).stdout.strip())
        ddev, mdev = loops
        run("dd", "if=/dev/zero", f"of={mdev}", "bs=4096", "count=1")
        run("dmsetup", "create", name, "--table",
            f"0 {(1 << 30) // 512} thin-pool {mdev} {ddev} 128 32768 1 skip_block_zeroing")
        pool = ThinPool(f"/dev/mapper/{name}", str(tmp_path / "thin.json"))
        used0, total = pool.usage()
        assert total > 0
        pool.create("base", 64 << 20)
        base = pool.activate("base")
        assert os.path.exists(base)
        one, two = os.urandom(BLOCK), os.urandom(BLOCK)
        write_at(base, 0, one)
        write_at(base, 32 << 20, one)
        pool.snapshot("base", "child")
        child = pool.activate("child")
        # the snapshot shares the origin's data; writes to either stay their own
        assert read_at(child, 0, BLOCK) == one and read_at(child, 32 << 20, BLOCK) == one
        write_at(child, 0, two)
        assert read_at(child, 0, BLOCK) == two and read_at(base, 0, BLOCK) == one
        write_at(base, 32 << 20, two)
        assert read_at(child, 32 << 20, BLOCK) == one and read_at(base, 32 << 20, BLOCK) == two
        used, _ = pool.usage()
        assert used > used0  # the written blocks are allocated in the pool
        # the ids survive a new ThinPool on the same metadata (what a restart of berth sees)
        again = ThinPool(f"/dev/mapper/{name}", str(tmp_path / "thin.json"))
        assert again.exists("base") and again.exists("child")
        pool.remove("child")
        pool.remove("base")
        assert not pool.exists("child") and not pool.exists("base")
    finally:
        for dev in ("child", "base"):  # whatever a failure left active
            thin = f"berth-{dev}"
            if os.path.exists(f"/dev/mapper/{thin}"):
                run("dmsetup", "remove", "--retry", thin, check=False)
        if os.path.exists(f"/dev/mapper/{name}"):
            run("dmsetup", "remove", "--retry", name, check=False)
        for dev in loops:
            run("losetup", "-d", dev, check=False)
