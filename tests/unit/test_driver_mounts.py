"""Every driver's mount description, without root and without mounting: `mounts(id, parents)` is
data (type, source, options), computed from the driver's own records and nothing else."""

from __future__ import annotations

import os

import pytest

from berth.errors import BerthError
from berth.host.probe import HostFacts
from berth.storage.aufs import AufsDriver
from berth.storage.btrfs import BtrfsDriver
from berth.storage.devicemapper import DeviceMapperDriver
from berth.storage.driver import Mount, directory, plain_directory
from berth.storage.overlay import LINK_DIR, OverlayDriver
from berth.storage.vfs import VfsDriver

OVERLAY_OPTS = "index=off,redirect_dir=off,metacopy=off,"


def _facts(tmp_path) -> HostFacts:  # type: ignore[no-untyped-def]
    facts = HostFacts(str(tmp_path))
    facts.__dict__["overlay_options"] = OVERLAY_OPTS  # what the probe reports where the module has them
    return facts


def _listing(root: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files)


def _mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return f.read()


def test_vfs_layer_is_its_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = VfsDriver(str(tmp_path / "vfs"), {}, _facts(tmp_path))
    os.makedirs(tmp_path / "vfs" / "dir" / "a")
    expected = [Mount("bind", str(tmp_path / "vfs" / "dir" / "a"), ("rbind", "rw"))]
    assert d.mounts("a", []) == expected and d.mounts("a", ["p", "q"]) == expected
    assert plain_directory(expected) == str(tmp_path / "vfs" / "dir" / "a")


def test_btrfs_layer_is_its_subvolume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the constructor insists on a btrfs home; the description only needs the home
    d = BtrfsDriver.__new__(BtrfsDriver)
    d.home = str(tmp_path / "btrfs")
    assert d.mounts("a", ["p"]) == directory(str(tmp_path / "btrfs" / "subvolumes" / "a"))


def test_overlay_descriptions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = str(tmp_path / "overlay")
    d = OverlayDriver(home, {}, _facts(tmp_path))
    d.create("base", None)
    d.create("mid", "base")
    d.create("top", "mid")
    d.create("ctr", "top", rw=True)

    def link(id: str) -> str:
        return f"{LINK_DIR}/" + open(os.path.join(home, id, "link")).read()

    before, mounted = _listing(home), _mountinfo()
    assert d.mounts("base", []) == directory(os.path.join(home, "base", "diff"))
    opts = ("index=off", "redirect_dir=off", "metacopy=off")
    assert d.mounts("top", ["mid", "base"]) == [
        Mount("overlay", "overlay", opts + (f"lowerdir={link('top')}:{link('mid')}:{link('base')}",), cwd=home)]
    rw = d.mounts("ctr", ["top", "mid", "base"])
    assert rw == [Mount("overlay", "overlay", opts + (f"lowerdir={link('top')}:{link('mid')}:{link('base')}",
                                                      "upperdir=ctr/diff", "workdir=ctr/work"), cwd=home)]
    assert rw[0].data.startswith(OVERLAY_OPTS + "lowerdir=l/")
    # pure: nothing made, nothing mounted
    assert _listing(home) == before and _mountinfo() == mounted


def test_overlay_disposable_rw_layer_is_volatile_where_the_kernel_has_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = str(tmp_path / "overlay")
    facts = _facts(tmp_path)
    d = OverlayDriver(home, {}, facts)
    d.create("base", None)
    d.create("keep", "base", rw=True)
    d.create("tmp", "base", rw=True)
    d.make_disposable("tmp")
    for volatile_here in (True, False):
        facts.__dict__["overlay"] = {"present": True, "multiple_lowers": True, "volatile": volatile_here}
        assert "volatile" not in d.mounts("keep", ["base"])[0].options
        assert ("volatile" in d.mounts("tmp", ["base"])[0].options) is volatile_here
    assert d.mounts("tmp", ["base"])[0].options[-2:] == ("upperdir=tmp/diff", "workdir=tmp/work")


def test_overlay_refuses_mount_data_over_one_page(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = OverlayDriver(str(tmp_path / "overlay"), {}, _facts(tmp_path))
    parents = [f"p{i}" for i in range(300)]
    for p in parents:
        d.create(p, None)
    d.create("top", None)
    with pytest.raises(BerthError, match="over one page"):
        d.mounts("top", parents)


def test_aufs_branches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = str(tmp_path / "aufs")
    d = AufsDriver(home, {}, _facts(tmp_path))
    d.create("base", None)
    d.create("top", "base")
    before = _listing(home)
    assert d.mounts("top", ["base"]) == [
        Mount("aufs", "none", (f"br:{home}/diff/top=rw:{home}/diff/base=ro+wh", "dio", "xino=/dev/shm/aufs.xino"))]
    assert d.mounts("base", []) == [Mount("aufs", "none", (f"br:{home}/diff/base=rw", "dio",
                                                            "xino=/dev/shm/aufs.xino"))]
    assert _listing(home) == before


def test_devicemapper_reflink_pool_is_a_loop_mount(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = str(tmp_path / "dm")
    d = DeviceMapperDriver(home, {}, _facts(tmp_path))
    assert d.mounts("a", ["p"]) == [Mount("ext4", f"{home}/pool/a.img", ("loop",), root="rootfs")]
    x = DeviceMapperDriver(str(tmp_path / "dmx"), {"dm.fs": "xfs", "dm.pool": str(tmp_path / "pool")},
                           _facts(tmp_path))
    assert x.mounts("a", []) == [Mount("xfs", f"{tmp_path}/pool/a.img", ("loop", "nouuid"), root="rootfs")]
    assert plain_directory(x.mounts("a", [])) is None


def test_devicemapper_thin_pool_mounts_the_thin_device(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The dm-thin path (no device-mapper in this kernel to run it) is described all the same."""
    layer = "f" * 64
    pool = tmp_path / "berth-thinpool"  # stands for the active pool's node: the driver checks it is there
    pool.touch()
    d = DeviceMapperDriver(str(tmp_path / "dm"), {"dm.thinpooldev": str(pool)}, _facts(tmp_path))
    assert d.mounts(layer, []) == [Mount("ext4", f"/dev/mapper/berth-{'f' * 32}", (), root="rootfs")]
    assert d.pool.activate_to_mount


def test_plain_directory_only_for_a_single_bind() -> None:
    assert plain_directory([Mount("bind", "/x", ("rbind", "rw"), root="sub")]) == "/x/sub"
    assert plain_directory([Mount("overlay", "overlay", ("lowerdir=l/A",))]) is None
    assert plain_directory([Mount("bind", "/x"), Mount("bind", "/y")]) is None


def test_mount_options_become_flags_and_data() -> None:
    """mount(8)'s generic options are mount flags; the rest is the file system's data string."""
    from berth.storage import mounts

    flags, data = mounts.split_options("ro,nosuid,lowerdir=l/A:l/B,redirect_dir=off,rw,nodev")
    assert flags == mounts.MS_NOSUID | mounts.MS_NODEV  # rw after ro clears the read-only flag
    assert data == "lowerdir=l/A:l/B,redirect_dir=off"
    assert mounts.split_options("rbind") == (mounts.MS_BIND | mounts.MS_REC, "")
    assert mounts.split_options("") == (0, "")
