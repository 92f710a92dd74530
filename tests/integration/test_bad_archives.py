"""Damaged archives (issue 18 item 16): `berth load` of a docker-archive or OCI layout and `berth
import` of a rootfs tar that are truncated, flipped, mis-typed or missing parts end in one line and
exit 1, and leave nothing half-made: no new image, layer or blob, `storage check` consistent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import archive_mutations as mut
from tests.conftest import _teardown_root, berth


def store_files(root: str) -> set[str]:
    """Every file and directory under the root but the database and lock files."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.relpath(os.path.join(dirpath, n), root)
            if not (p.startswith(("berth.db", "locks")) or p == "locks"):
                out.add(p)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, busybox_tar: str) -> Iterator[dict[str, str]]:
    """A root where busybox was imported, saved (the archives the damaged ones are made from) and
    removed again: whatever a damaged archive leaves behind shows."""
    d = str(tmp_path_factory.mktemp("bad-archives"))
    e = dict(os.environ, BERTH_ROOT=os.path.join(d, "root"), BERTH_RUNROOT=os.path.join(d, "run"),
             BERTH_CONFIG=os.path.join(d, "none"))
    e.pop("BERTH_DRIVER", None)
    try:
        berth(e, "import", busybox_tar, "bb:1")
        berth(e, "save", "-q", "-o", os.path.join(d, "da.tar"), "bb:1")
        berth(e, "save", "--format", "oci-archive", "-o", os.path.join(d, "oci.tar"), "bb:1")
        berth(e, "rmi", "bb:1")
        yield e
    finally:
        _teardown_root(e)


@pytest.fixture(scope="module")
def originals(env: dict[str, str]) -> dict[str, bytes]:
    d = os.path.dirname(env["BERTH_ROOT"])
    with open(os.path.join(d, "da.tar"), "rb") as f, open(os.path.join(d, "oci.tar"), "rb") as g:
        return {"da": f.read(), "oci": g.read()}


def refused_leaving_nothing(env: dict[str, str], name: str, data: bytes, verb: list[str]) -> None:
    path = os.path.join(os.path.dirname(env["BERTH_ROOT"]), "bad.tar")
    with open(path, "wb") as f:
        f.write(data)
    before = store_files(env["BERTH_ROOT"]), berth(env, "images", "-a", "-q").stdout
    cp = berth(env, *verb, path, check=False)
    assert cp.returncode == 1, (name, cp)
    assert len(cp.stderr.splitlines()) == 1 and cp.stderr.startswith("berth: error: "), (name, cp.stderr)
    assert "Traceback" not in cp.stderr, (name, cp.stderr)
    assert (store_files(env["BERTH_ROOT"]), berth(env, "images", "-a", "-q").stdout) == before, name
    check = berth(env, "storage", "check", check=False)
    assert check.returncode == 0 and "storage is consistent" in check.stdout, (name, check.stdout)


def test_damaged_docker_archives(env: dict[str, str], originals: dict[str, bytes]) -> None:
    cases = mut.docker_cases(originals["da"])
    assert len(cases) > 20
    for name, data in cases.items():
        refused_leaving_nothing(env, name, data, ["load", "-q", "-i"])


def test_damaged_oci_layouts(env: dict[str, str], originals: dict[str, bytes]) -> None:
    cases = {**mut.oci_cases(originals["oci"]), **mut.oci_manifest_cases(originals["oci"])}
    for name, data in cases.items():
        refused_leaving_nothing(env, name, data, ["load", "-q", "-i"])


def test_damaged_rootfs_tars(env: dict[str, str], busybox_tar: str) -> None:
    with open(busybox_tar, "rb") as f:
        rootfs = f.read()
    for name, data in mut.import_cases(rootfs).items():
        refused_leaving_nothing(env, name, data, ["import"])


def test_originals_still_load(env: dict[str, str], originals: dict[str, bytes]) -> None:
    """The mutations are what is refused: the archives they were made from load."""
    d = os.path.dirname(env["BERTH_ROOT"])
    for name in ("da", "oci"):
        berth(env, "load", "-q", "-i", os.path.join(d, f"{name}.tar"))
        berth(env, "rmi", "bb:1")
