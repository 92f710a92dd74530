"""aufs: the branch format works without the kernel module (applying a layer keeps whiteouts as
.wh. files, the native change list reads them); mounting needs aufs in the kernel and is skipped
with the reason where it is missing (this machine's kernel has no aufs)."""

from __future__ import annotations

import io
import os

import pytest

from berth.host.probe import HostFacts
from berth.storage.aufs import AufsDriver
from berth.storage.layerdiff import LayerDiffer
from tests.treeutil import build_base, make_changes, tree_tar

HAS_AUFS = "aufs" in open("/proc/filesystems").read()


def _diff_tar(tmp_path) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    from berth.storage import differ

    base, new = str(tmp_path / "base"), str(tmp_path / "new")
    build_base(base)
    build_base(new)
    make_changes(new)
    buf = io.BytesIO()
    differ.write_tar(differ.Differ(new, base).plan(), new, buf)
    return tree_tar(base), buf.getvalue()


def test_branches_keep_whiteouts_and_list_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base_tar, diff_tar = _diff_tar(tmp_path)
    d = AufsDriver(str(tmp_path / "aufs"), {}, HostFacts(str(tmp_path)))
    applier = LayerDiffer(d, None)  # aufs has a content root: applying needs no mount
    d.create("base", None)
    applier.apply("base", io.BytesIO(base_tar))
    d.create("top", "base")
    result = applier.apply("top", io.BytesIO(diff_tar))
    branch = tmp_path / "aufs" / "diff" / "top"
    assert (branch / ".wh.f_del").is_file() and (branch / ".wh.d_del").is_file()
    assert (branch / "d_opaque" / ".wh..wh..opq").is_file() and (branch / "d_opaque" / "fresh").is_file()
    assert (branch / "new.txt").read_text() == "new file\n" and result.diff_id.startswith("sha256:")
    cands = d.native_candidates("top", "base")
    assert cands is not None
    assert {"f_del", "d_del", "new.txt", "hl_b"} <= cands.paths and "d_opaque" in cands.subtrees
    d.snapshot("top", "copy")
    assert (tmp_path / "aufs" / "diff" / "copy" / ".wh.f_del").is_file()
    d.remove("copy")
    assert not os.path.exists(tmp_path / "aufs" / "diff" / "copy")


@pytest.mark.skipif(not HAS_AUFS, reason="this kernel has no aufs; the branch format is tested above")
def test_aufs_diff_matches_vfs(make_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base_tar, diff_tar = _diff_tar(tmp_path)
    out = {}
    for name in ("vfs", "aufs"):
        e = make_engine(name)
        b, _, _ = e.layers.create_from_tar(None, io.BytesIO(base_tar))
        layer, _, _ = e.layers.create_from_tar(b.id, io.BytesIO(diff_tar))
        buf = io.BytesIO()
        e.layers.diff(layer.id, buf)
        out[name] = buf.getvalue()
    assert out["aufs"] == out["vfs"] == diff_tar
