"""The dm-thin pool backend needs device-mapper in the kernel; here it is missing (not in
/proc/misc), so this test skips and the driver is exercised through its reflink pool
(the cross-driver matrix, the container tests and host prepare run devicemapper on reflink)."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.host.probe import device_mapper
from berth.storage.devicemapper import ThinPool

pytestmark = pytest.mark.skipif(not device_mapper()[0], reason=f"no device-mapper: {device_mapper()[1]}")


def test_thin_pool_backend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, meta = tmp_path / "data", tmp_path / "meta"
    for f, size in ((data, 1 << 30), (meta, 64 << 20)):
        with open(f, "wb") as fh:
            fh.truncate(size)
    ddev = subprocess.run(["losetup", "-f", "--show", str(data)], capture_output=True, text=True).stdout.strip()
    mdev = subprocess.run(["losetup", "-f", "--show", str(meta)], capture_output=True, text=True).stdout.strip()
    name = f"berth-test-pool-{os.getpid()}"
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mdev}", "bs=4096", "count=1"], check=True, capture_output=True)
        subprocess.run(["dmsetup", "create", name, "--table",
                        f"0 {(1 << 30) // 512} thin-pool {mdev} {ddev} 128 32768 1 skip_block_zeroing"], check=True)
        pool = ThinPool(f"/dev/mapper/{name}", str(tmp_path / "thin.json"))
        pool.create("base", 64 << 20)
        pool.snapshot("base", "child")
        dev = pool.activate("child")
        assert os.path.exists(dev)
        used, total = pool.usage()
        assert total > 0 and used >= 0
        pool.remove("child")
        pool.remove("base")
        assert not pool.exists("child")
    finally:
        subprocess.run(["dmsetup", "remove", name], capture_output=True)
        subprocess.run(["losetup", "-d", ddev], capture_output=True)
        subprocess.run(["losetup", "-d", mdev], capture_output=True)
