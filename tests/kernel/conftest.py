"""The kernel lane's fixtures: a blank disk for direct-lvm."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.kernel import thinlvm


@pytest.fixture
def spare_disk(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The lane's spare virtio disk; elsewhere (a host with device-mapper) a loop device on a sparse file."""
    if thinlvm.SPARE_DISK:
        yield thinlvm.SPARE_DISK
        return
    img = tmp_path / "spare.img"
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    dev = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)
