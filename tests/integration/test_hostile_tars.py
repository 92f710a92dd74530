"""Hostile layer tars are refused or contained: no byte lands outside the target, and a refused
import leaves the store exactly as it was."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable

import pytest

from berth.errors import InvalidInput

Builder = Callable[[str], list[tuple[tarfile.TarInfo, bytes | None]]]


def _reg(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    return ti, data


def _sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    return ti, None


def _lnk(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    return ti, None


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    return ti, None


def _dev(name: str, kind: bytes, major: int, minor: int) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.devmajor, ti.devminor = major, minor
    return ti, None


def _xattr_dir(name: str, key: str, value: str) -> tuple[tarfile.TarInfo, None]:
    ti, _ = _dir(name)
    ti.pax_headers = {f"SCHILY.xattr.{key}": value}
    return ti, None


def _pax(entry: tuple[tarfile.TarInfo, bytes | None], **headers: str) -> tuple[tarfile.TarInfo, bytes | None]:
    entry[0].pax_headers = dict(headers)
    return entry


# name -> (builder(outside_dir) -> entries, expected outcome)
CASES: dict[str, tuple[Builder, str]] = {
    "dotdot": (lambda o: [_reg("../escape")], "refused"),
    "dotdot-nested": (lambda o: [_dir("a"), _reg("a/../../escape")], "refused"),
    "dotdot-long-pax": (lambda o: [_reg("a/" * 60 + "../" * 70 + "escape")], "refused"),
    "absolute-name": (lambda o: [_reg("/abs-escape")], "contained"),
    "symlink-root-then-write": (lambda o: [_sym("link", "/"), _reg("link" + o + "/escape")], "refused"),
    "symlink-outside-then-write": (lambda o: [_sym("link", o), _reg("link/escape")], "refused"),
    "symlink-dotdot-then-write": (lambda o: [_sym("link", "../../../../../../../../.." + o),
                                             _reg("link/escape")], "refused"),
    "symlink-then-mkdir": (lambda o: [_sym("d", o), _dir("d/sub")], "refused"),
    "dir-replaced-by-symlink": (lambda o: [_dir("d"), _sym("d", o), _reg("d/escape")], "refused"),
    "hardlink-dotdot": (lambda o: [_lnk("hl", "../../../../../../.." + o + "/secret")], "refused"),
    "hardlink-absolute-missing": (lambda o: [_lnk("hl", o + "/secret")], "refused"),
    "hardlink-through-symlink": (lambda o: [_sym("s", o), _lnk("hl", "s/secret")], "refused"),
    "hardlink-to-directory": (lambda o: [_dir("d"), _lnk("hl", "d")], "refused"),
    "hardlink-to-symlink": (lambda o: [_sym("s", o + "/secret"), _lnk("h", "s")], "contained"),
    "overwrite-planted-symlink": (lambda o: [_sym("s", o + "/secret"), _reg("s", b"overwritten\n")], "contained"),
    "block-device": (lambda o: [_dir("dev"), _dev("dev/sda", tarfile.BLKTYPE, 8, 0)], "contained"),
    "char-device": (lambda o: [_dir("dev"), _dev("dev/mem", tarfile.CHRTYPE, 1, 1)], "contained"),
    "whiteout-dot": (lambda o: [_reg(".wh..", b"")], "refused"),
    "whiteout-through-symlink": (lambda o: [_sym("link", o), _reg("link/.wh.secret", b"")], "refused"),
    "opaque-through-symlink": (lambda o: [_sym("link", o), _reg("link/.wh..wh..opq", b"")], "refused"),
    "overlay-xattr-smuggled": (lambda o: [_xattr_dir("d", "trusted.overlay.redirect", "/etc"),
                                          _reg("d/f")], "contained"),
    # the layer's own root is never replaced (it became a link to the host directory, or a file)
    "root-replaced-by-symlink": (lambda o: [_sym(".", o)], "refused"),
    "root-replaced-by-symlink-then-more": (lambda o: [_sym(".", o), _reg("p")], "refused"),
    "root-replaced-by-file": (lambda o: [_reg(".")], "refused"),
    "root-dir-entry": (lambda o: [_dir("."), _reg("f")], "contained"),
    # a directory's time is set at the end: never through the link that replaced it
    "dir-time-through-replacing-symlink": (lambda o: [_dir("a"), _sym("a", o + "/secret")], "contained"),
    "dir-then-its-whiteout": (lambda o: [_dir("a"), _reg(".wh.a", b"")], "contained"),
    # values the system calls cannot take: one line, not an internal error
    "uid-out-of-range": (lambda o: [_pax(_reg("f"), uid="99999999999")], "refused"),
    "mtime-out-of-range": (lambda o: [_pax(_reg("f"), mtime="1e300")], "refused"),
    "symlink-target-nul": (lambda o: [_pax(_sym("s", "x"), linkpath="a\0b")], "refused"),
}


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _snapshot(path: str) -> dict[str, tuple[int, int, bytes | None, int]]:
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else None
            out[p] = (st.st_mode, st.st_size, data, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_tar(make_engine, tmp_path, driver: str, case: str) -> None:  # type: ignore[no-untyped-def]
    outside = str(tmp_path / "outside")
    os.makedirs(outside)
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("secret\n")
    e = make_engine(driver)
    builder, expected = CASES[case]
    data = _tar(builder(outside))
    before = _snapshot(outside)
    tree_before = _snapshot(e.root)
    if expected == "refused":
        with pytest.raises(InvalidInput):
            e.import_image(io.BytesIO(data), "hostile:test")
        assert e.layers.all() == []
        assert e.images.list() == []
        assert e.driver.ids() == []
        assert _snapshot(e.root).keys() <= tree_before.keys() | {
            p for p in _snapshot(e.root) if "/locks/" in p or p.endswith(("-wal", "-shm"))}
    else:
        img = e.import_image(io.BytesIO(data), "hostile:test")
        path = e.layers.mount(img.top_layer)
        try:
            _check_contained(case, path, outside)
        finally:
            e.layers.unmount(img.top_layer)
    assert _snapshot(outside) == before
    assert not os.path.exists("/abs-escape") and not os.path.exists(str(tmp_path / "escape"))


def _check_contained(case: str, root: str, outside: str) -> None:
    if case == "absolute-name":
        assert os.path.isfile(os.path.join(root, "abs-escape"))
    elif case == "hardlink-to-symlink":
        assert os.path.islink(os.path.join(root, "h"))
    elif case == "overwrite-planted-symlink":
        p = os.path.join(root, "s")
        assert os.path.isfile(p) and not os.path.islink(p)
        assert open(p, "rb").read() == b"overwritten\n"
    elif case in ("block-device", "char-device"):
        assert os.listdir(os.path.join(root, "dev")) == []
    elif case == "root-dir-entry":
        assert os.path.isfile(os.path.join(root, "f"))
    elif case == "dir-time-through-replacing-symlink":
        assert os.path.islink(os.path.join(root, "a"))
    elif case == "dir-then-its-whiteout":  # gone, or overlay's whiteout (a base layer is its own diff dir)
        p = os.path.join(root, "a")
        assert not os.path.lexists(p) or stat.S_ISCHR(os.lstat(p).st_mode)
    elif case == "overlay-xattr-smuggled":
        assert not [x for x in os.listxattr(os.path.join(root, "d")) if "overlay" in x]
        assert os.path.isfile(os.path.join(root, "d", "f"))


def test_truncated_tar_is_refused(make_engine, busybox_tar: str) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("overlay")
    data = open(busybox_tar, "rb").read()
    with pytest.raises(InvalidInput):
        e.import_image(io.BytesIO(data[: len(data) // 2 + 100]), "cut:test")
    assert e.layers.all() == [] and e.driver.ids() == []


def test_not_a_tar_is_refused(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine("vfs")
    with pytest.raises(InvalidInput):
        e.import_image(io.BytesIO(b"this is not a tar archive at all" * 40), "junk:test")
    assert e.layers.all() == []
