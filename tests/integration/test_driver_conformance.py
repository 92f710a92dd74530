"""The driver conformance suite: the same named cases, in the manner of containerd's snapshotter
test suite, run over every driver this kernel allows (vfs, overlay, btrfs on a loop btrfs,
devicemapper on its reflink pool on a loop xfs; aufs skips with the probe's reason where the
kernel lacks it). Each case goes through the layer store, which is the driver composed with the
one mount table and the layer differ."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tempfile

import pytest

from berth.errors import BerthError, LayerInUse
from berth.host.probe import HostFacts
from berth.storage import mounts
from berth.storage.driver import (
    Activator,
    ContentRoot,
    FastCommit,
    NativeDiffer,
    Snapshotter,
    plain_directory,
)
from berth.storage.drivers import driver_class
from tests.conftest import DRIVERS
from tests.treeutil import T_NEW, build_base, describe, make_changes, tree_tar, write

CONFORMANCE_DRIVERS = (*DRIVERS, "aufs")


@pytest.fixture(scope="module")
def base_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = str(tmp_path_factory.mktemp("base") / "tree")
    build_base(root)
    return tree_tar(root)


@pytest.fixture(params=CONFORMANCE_DRIVERS)
def engine(request: pytest.FixtureRequest, make_engine, tmp_path):  # type: ignore[no-untyped-def]
    name = request.param
    if name not in DRIVERS:
        ok, why = driver_class(name).supported(HostFacts(str(tmp_path)))
        if not ok:
            # the wording the suite's allowed kernel skips know (tests/conftest.py KERNEL_SKIPS)
            gap = "this kernel has no aufs" if name == "aufs" else name
            pytest.skip(f"{gap}: {why}")
    return make_engine(name)


def _tar(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in whiteouts:
            tf.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), T_NEW
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _layer(e, parent: str | None, tar: bytes):  # type: ignore[no-untyped-def]
    layer, _new, _res = e.layers.create_from_tar(parent, io.BytesIO(tar))
    return layer


def _tree(e, id: str) -> dict[str, tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with e.layers.mounted(id) as root:
        return describe(root)


def _changed(e, base_tar: bytes):  # type: ignore[no-untyped-def]
    base = _layer(e, None, base_tar)
    rw = e.layers.create_rw(base.id)
    with e.layers.mounted(rw.id) as root:
        make_changes(root)
        tree = describe(root)
    return base, rw, tree


def test_create_and_remove(engine) -> None:  # type: ignore[no-untyped-def]
    e = engine
    layer = _layer(e, None, _tar({"hello": b"world\n"}))
    assert e.driver.exists(layer.id) and layer.id in e.driver.ids()
    assert _tree(e, layer.id)["hello"]
    e.layers.remove(layer.id)
    assert not e.driver.exists(layer.id) and layer.id not in e.driver.ids()
    e.driver.remove(layer.id)  # removing what is gone is not an error (recovery relies on it)


def test_parent_chains(engine) -> None:  # type: ignore[no-untyped-def]
    e = engine
    one = _layer(e, None, _tar({"a": b"1\n", "b": b"1\n"}))
    two = _layer(e, one.id, _tar({"b": b"2\n", "c": b"2\n"}))
    three = _layer(e, two.id, _tar({"d/e": b"3\n"}, whiteouts=(".wh.a",)))
    assert [ly.id for ly in e.layers.chain(three.id)] == [one.id, two.id, three.id]
    with e.layers.mounted(three.id) as root:
        assert sorted(os.listdir(root)) == ["b", "c", "d"]
        assert open(os.path.join(root, "b")).read() == "2\n"
        assert open(os.path.join(root, "d", "e")).read() == "3\n"
    with e.layers.mounted(one.id) as root:  # a parent is not changed by its children
        assert sorted(os.listdir(root)) == ["a", "b"] and open(os.path.join(root, "b")).read() == "1\n"


def test_rw_on_ro(engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = engine
    base, rw, tree = _changed(e, base_tar)
    assert rw.rw and not base.rw and rw.parent == base.id
    with tempfile.TemporaryDirectory() as ref:
        build_base(ref)
        assert _tree(e, base.id) == describe(ref)
    assert _tree(e, rw.id) == tree


def test_mount_is_counted(engine) -> None:  # type: ignore[no-untyped-def]
    e = engine
    base = _layer(e, None, _tar({"f": b"x\n"}))
    rw = e.layers.create_rw(base.id)
    first = e.layers.mount(rw.id)
    second = e.layers.mount(rw.id)
    assert first == second
    real = plain_directory(e.driver.mounts(rw.id, [base.id])) is None
    e.layers.unmount(rw.id)
    assert os.path.exists(os.path.join(first, "f"))  # one user left: still there
    e.layers.unmount(rw.id)
    target = e.layers.table.target(rw.id)
    if real:
        assert not mounts.is_mountpoint(target)  # the last user unmounted it
    else:
        assert os.path.isdir(first)  # a plain directory is never mounted
    # removing a mounted layer releases its mount first
    e.layers.mount(rw.id)
    e.layers.remove(rw.id)
    assert not os.path.exists(target) and not e.driver.exists(rw.id)


def test_mounts_describe_a_working_tree(engine, base_tar: bytes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Performing the description by hand gives the tree the layer store mounts."""
    e = engine
    _base, rw, tree = _changed(e, base_tar)
    description = e.driver.mounts(rw.id, [rw.parent])
    plain = plain_directory(description)
    if plain is not None:
        assert describe(plain) == tree
        return
    target = str(tmp_path / "by-hand")
    os.mkdir(target)
    if isinstance(e.driver, Activator):
        e.driver.activate(rw.id)
    try:
        for m in description:
            argv = ["mount", "-t", m.type] + (["-o", m.data] if m.data else []) + [m.source, target]
            subprocess.run(argv, cwd=m.cwd, check=True, capture_output=True, timeout=60)
        try:
            assert describe(os.path.join(target, description[0].root)) == tree
        finally:
            while mounts.is_mountpoint(target):
                subprocess.run(["umount", target], check=True, timeout=60)
    finally:
        if isinstance(e.driver, Activator):
            e.driver.deactivate(rw.id)


def test_diff_and_apply_round_trip(engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = engine
    base, rw, tree = _changed(e, base_tar)
    buf = io.BytesIO()
    e.layers.diff(rw.id, buf)
    applied = _layer(e, base.id, buf.getvalue())
    assert _tree(e, applied.id) == tree
    again = io.BytesIO()
    e.layers.diff(applied.id, again, naive=True)
    assert again.getvalue() == buf.getvalue()


def test_whiteouts_and_opaque_dirs(engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = engine
    base, rw, _tree_after = _changed(e, base_tar)
    buf = io.BytesIO()
    e.layers.diff(rw.id, buf)
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert ".wh.f_del" in names and ".wh.d_del" in names and "d_opaque/.wh..wh..opq" in names
    hiding = _layer(e, base.id, _tar({"d_opaque/only": b"only\n"},
                                     whiteouts=(".wh.f_mod", ".wh.keep", "d_opaque/.wh..wh..opq")))
    with e.layers.mounted(hiding.id) as root:
        assert not os.path.lexists(os.path.join(root, "f_mod")) and not os.path.lexists(os.path.join(root, "keep"))
        assert os.listdir(os.path.join(root, "d_opaque")) == ["only"]
        assert os.path.isfile(os.path.join(root, "etc", "config"))
    assert dict(e.layers.changes(hiding.id)) == {"f_mod": "D", "keep": "D", "d_opaque": "C", "d_opaque/a": "D",
                                                 "d_opaque/b": "D", "d_opaque/only": "A"}


def test_capability_behaviour(engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = engine
    d = e.driver
    base, rw, tree = _changed(e, base_tar)
    naive = io.BytesIO()
    e.layers.diff(rw.id, naive, naive=True)
    ok, why = e.layers.native_diff()
    if isinstance(d, NativeDiffer):
        assert (ok, why) == d.native_diff()
        if ok:
            native = io.BytesIO()
            e.layers.diff(rw.id, native)
            assert native.getvalue() == naive.getvalue()
    else:
        assert (ok, why) == (False, "no native diff for this driver")
    if isinstance(d, ContentRoot):
        own = d.content_root(rw.id)
        assert os.path.isdir(own) and os.path.exists(os.path.join(own, "new.txt"))
    if isinstance(d, Snapshotter):
        with e.layers.mounted(rw.id) as root:
            snap = e.layers.snapshot(rw.id)
            write(os.path.join(root, "after"), b"later\n")
        assert _tree(e, snap.id) == tree and snap.parent == base.id
    else:
        with pytest.raises(BerthError, match="cannot snapshot"):
            e.layers.snapshot(rw.id)
    # a fast commit (where the driver has one and it is usable here) and the tar path agree
    expected_fast = {"overlay": ok, "btrfs": True, "devicemapper": True}.get(e.driver_name, False)
    assert (isinstance(d, FastCommit) and d.fast_commit()[0]) == expected_fast
    changed = io.BytesIO()
    e.layers.diff(rw.id, changed)
    committed = e.layers.commit(rw.id, base.id)
    assert committed.diff_id == "sha256:" + hashlib.sha256(changed.getvalue()).hexdigest()
    with tempfile.TemporaryDirectory() as ref:
        build_base(ref)
        make_changes(ref)
        write(os.path.join(ref, "after"), b"later\n")
        expected = describe(ref)
    assert _tree(e, committed.id) == expected


def test_remove_with_children_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    e = engine
    parent = _layer(e, None, _tar({"p": b"p\n"}))
    child = e.layers.create_rw(parent.id)
    with pytest.raises(LayerInUse, match=f"layer {parent.id} still has child layers") as err:
        e.layers.remove(parent.id)
    assert err.value.exit_code == 1
    assert e.driver.exists(parent.id) and _tree(e, child.id)["p"]
    e.layers.remove(child.id)
    e.layers.remove(parent.id)
    assert not e.driver.exists(parent.id)
