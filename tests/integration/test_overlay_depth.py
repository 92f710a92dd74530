"""A chain of 130 layers mounts and reads correctly on overlay (short links keep the mount data
inside one page)."""

from __future__ import annotations

import io
import os
import tarfile

from berth.storage.overlay import MAX_DEPTH


def _layer_tar(i: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ((f"layers/l{i:03d}", f"{i}\n".encode()), ("counter", f"{i}\n".encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        if i == 100:
            ti = tarfile.TarInfo("layers/.wh.l010")
            tf.addfile(ti, io.BytesIO(b""))
    return buf.getvalue()


def test_130_layer_chain(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("overlay")
    parent = None
    for i in range(130):
        layer, _, _ = e.layers.create_from_tar(parent, io.BytesIO(_layer_tar(i)))
        parent = layer.id
    assert parent is not None
    assert len(e.layers.chain(parent)) == 130
    rw = e.layers.create_rw(parent)
    path = e.layers.mount(rw.id)
    try:
        names = sorted(os.listdir(os.path.join(path, "layers")))
        assert len(names) == 129 and "l010" not in names and names[-1] == "l129"
        assert open(os.path.join(path, "counter")).read() == "129\n"
        assert open(os.path.join(path, "layers", "l000")).read() == "0\n"
        with open(os.path.join(path, "written"), "w") as f:
            f.write("rw\n")
        changes = e.layers.changes(rw.id)
        assert changes == [("written", "A")]
    finally:
        e.layers.unmount(rw.id)
    assert MAX_DEPTH >= 128
