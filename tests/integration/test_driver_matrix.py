"""The cross-driver matrix: one set of changes on each driver's rw layer gives byte-identical diff
tars (naive and native alike), and applying that tar on every driver reproduces the tree exactly."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from tests.conftest import DRIVERS
from tests.treeutil import build_base, describe, make_changes, tree_tar


@pytest.fixture(scope="module")
def base_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = str(tmp_path_factory.mktemp("base") / "tree")
    build_base(root)
    return tree_tar(root)


def _changed_layer(engine, base_tar: bytes):  # type: ignore[no-untyped-def]
    base, _, _ = engine.layers.create_from_tar(None, io.BytesIO(base_tar))
    rw = engine.layers.create_rw(base.id)
    path = engine.layers.mount(rw.id)
    make_changes(path)
    return base, rw, path


def _diff(engine, layer_id: str, naive: bool) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    engine.layers.diff(layer_id, buf, naive=naive)
    return buf.getvalue()


def _reference(make_engine, base_tar: bytes) -> tuple[bytes, dict[str, tuple[object, ...]]]:  # type: ignore[no-untyped-def]
    """vfs's naive diff of the change set and the changed tree: what every driver must match."""
    e = make_engine("vfs")
    _base, rw, path = _changed_layer(e, base_tar)
    try:
        return _diff(e, rw.id, naive=True), describe(path)
    finally:
        e.layers.unmount(rw.id)


def test_reference_diff_holds_whiteouts_links_and_xattrs(make_engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    reference, _tree = _reference(make_engine, base_tar)
    names = tarfile.open(fileobj=io.BytesIO(reference)).getnames()
    assert "d_opaque/.wh..wh..opq" in names
    assert ".wh.f_del" in names and ".wh.d_del" in names
    assert names.index("d_opaque/.wh..wh..opq") < names.index("d_opaque/fresh")
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(reference))}
    assert members["hl_b"].islnk() and members["hl_b"].linkname == "hl_a"
    assert "SCHILY.xattr.security.capability" in members["cap-file"].pax_headers


# each driver against vfs on its own: one driver's trouble does not hide the others' results
@pytest.mark.parametrize("driver", DRIVERS)
def test_diffs_identical_to_vfs_and_apply_everywhere(make_engine, base_tar: bytes, driver: str) -> None:  # type: ignore[no-untyped-def]
    reference, tree = _reference(make_engine, base_tar)
    e = make_engine(driver)
    _base, rw, path = _changed_layer(e, base_tar)
    try:
        assert describe(path) == tree, f"{driver} changed tree differs from vfs"
        assert _diff(e, rw.id, naive=True) == reference, f"{driver} naive diff differs from vfs naive diff"
        native_ok, why = e.layers.native_diff()
        if driver in ("overlay", "btrfs"):
            assert native_ok, why
        if native_ok:
            assert _diff(e, rw.id, naive=False) == reference, f"{driver} native diff differs from vfs naive diff"
    finally:
        e.layers.unmount(rw.id)

    diff_id = "sha256:" + hashlib.sha256(reference).hexdigest()
    base, _, _ = e.layers.create_from_tar(None, io.BytesIO(base_tar))
    applied, _, result = e.layers.create_from_tar(base.id, io.BytesIO(reference))
    assert result.diff_id == diff_id
    path = e.layers.mount(applied.id)
    try:
        assert describe(path) == tree, f"applying the diff on {driver} did not reproduce the tree"
    finally:
        e.layers.unmount(applied.id)
    # a diff of the applied layer gives the same bytes again
    assert _diff(e, applied.id, naive=True) == reference


def test_changes_list(make_engine, base_tar: bytes) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("vfs")
    _base, rw, _ = _changed_layer(e, base_tar)
    ch = dict(e.layers.changes(rw.id))
    assert ch["new.txt"] == "A"
    assert ch["f_mod"] == "C"
    assert ch["f_del"] == "D"
    assert ch["d_del"] == "D"
    assert ch["d_opaque/a"] == "D" and ch["d_opaque/fresh"] == "A"
    assert "keep" not in ch and "keep/untouched" not in ch


@pytest.mark.parametrize("driver", DRIVERS)
def test_same_tar_same_diff_id_on_every_driver(make_engine, driver: str, busybox_tar: str) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(driver)
    with open(busybox_tar, "rb") as f:
        img = e.import_image(f, "busybox")
    with open(busybox_tar, "rb") as f:
        expected = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    assert e.images.config(img.id)["rootfs"]["diff_ids"] == [expected]  # type: ignore[index]
    # the ID depends only on the tar: recorded once for all drivers
    assert img.id == "sha256:" + hashlib.sha256(
        __import__("berth.image.store", fromlist=["canonical_json"]).canonical_json(e.images.config(img.id))
    ).hexdigest()
    path = e.layers.mount(img.top_layer)
    try:
        assert os.path.islink(os.path.join(path, "bin/sh"))
        assert os.path.getsize(os.path.join(path, "bin/busybox")) > 100_000
    finally:
        e.layers.unmount(img.top_layer)
