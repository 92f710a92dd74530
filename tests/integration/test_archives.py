"""save / load: docker-archive and OCI layouts, checked against the real peers (docker 20.10,
skopeo, umoci) and against the OCI image-spec schemas."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import berth
from tests.oci_schema import IMAGE_SPEC, validate_image_json
from tests.peers import dockerd


def sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["echo", "hello from berth"]', busybox_tar, "busybox:bb")
    return e


def _layer_digests_docker_archive(path: str) -> list[str]:
    with tarfile.open(path) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        return [hashlib.sha256(tf.extractfile(p).read()).hexdigest()  # type: ignore[union-attr]
                for p in manifest[0]["Layers"]]


def test_docker_loads_and_runs_berth_archive_and_berth_loads_docker_save(env, tmp_path, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "bb.tar")
    berth(env, "save", "busybox:bb", "-o", out)
    with dockerd(str(tmp_path / "docker")) as docker:
        cp = subprocess.run([*docker, "load", "-i", out], capture_output=True, text=True, timeout=300)
        assert cp.returncode == 0, cp.stderr
        assert "busybox:bb" in cp.stdout
        run = subprocess.run([*docker, "run", "--rm", "--network", "none", "busybox:bb"], capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "hello from berth\n"
        # and back: a docker-made image (docker import) saved by docker, loaded by berth
        subprocess.run([*docker, "import", busybox_tar, "fromdocker:v1"], check=True, capture_output=True, timeout=300)
        dsave = str(tmp_path / "fromdocker.tar")
        subprocess.run([*docker, "save", "-o", dsave, "fromdocker:v1"], check=True, capture_output=True, timeout=300)
    loaded = berth(env, "load", "-i", dsave).stdout
    assert "Loaded image: fromdocker:v1" in loaded
    info = json.loads(berth(env, "inspect", "fromdocker:v1").stdout)[0]
    assert [f"sha256:{d}" for d in _layer_digests_docker_archive(dsave)] == info["RootFS"]["Layers"]
    # the files are byte-identical to the tarball docker imported
    export = str(tmp_path / "fs.tar")
    berth(env, "create", "--name", "probe", "fromdocker:v1", "true")
    berth(env, "export", "-o", export, "probe")
    with tarfile.open(busybox_tar) as a, tarfile.open(export) as b:
        mine = {m.name.lstrip("./"): hashlib.sha256(a.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in a if m.isreg()}
        theirs = {m.name: hashlib.sha256(b.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                  for m in b if m.isreg()}
    assert mine and mine == {k: v for k, v in theirs.items() if k in mine}
    # load -> save keeps the layer bytes (and so every DiffID)
    again = str(tmp_path / "again.tar")
    berth(env, "save", "fromdocker:v1", "-o", again)
    assert _layer_digests_docker_archive(again) == _layer_digests_docker_archive(dsave)


def test_oci_layout_read_by_skopeo_and_umoci(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert shutil.which("skopeo") and shutil.which("umoci"), "skopeo and umoci are not installed (make setup)"
    layout = str(tmp_path / "layout")
    berth(env, "save", "--format", "oci-dir", "-o", layout, "busybox:bb")
    cp = subprocess.run(["skopeo", "inspect", f"oci:{layout}:bb"], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    inspected = json.loads(cp.stdout)
    diff_ids = json.loads(berth(env, "inspect", "busybox:bb").stdout)[0]["RootFS"]["Layers"]
    assert inspected["Layers"] == diff_ids
    bundle = str(tmp_path / "bundle")
    cp = subprocess.run(["umoci", "unpack", "--image", f"{layout}:bb", bundle], capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert os.path.islink(os.path.join(bundle, "rootfs", "bin", "sh"))
    archive = str(tmp_path / "oci.tar")
    berth(env, "save", "--format", "oci-archive", "-o", archive, "busybox:bb")
    cp = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:bb"], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    # the layout validates against the OCI image-spec schemas (make setup installs them)
    assert os.path.isdir(IMAGE_SPEC), f"{IMAGE_SPEC} is missing (make setup installs its package)"
    index = json.load(open(os.path.join(layout, "index.json")))
    validate_image_json("image-index", index)
    validate_image_json("image-layout", json.load(open(os.path.join(layout, "oci-layout"))))
    mdesc = index["manifests"][0]
    manifest = json.load(open(os.path.join(layout, "blobs", "sha256", mdesc["digest"][7:])))
    validate_image_json("image-manifest", manifest)
    validate_image_json("config", json.load(open(os.path.join(layout, "blobs", "sha256",
                                                               manifest["config"]["digest"][7:]))))


def test_berth_loads_layout_built_by_umoci(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert shutil.which("umoci"), "umoci is not installed (make setup)"
    layout = str(tmp_path / "umoci-image")
    subprocess.run(["umoci", "init", "--layout", layout], check=True, timeout=300)
    subprocess.run(["umoci", "new", "--image", f"{layout}:v1"], check=True, timeout=300)
    bundle = str(tmp_path / "b")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:v1", bundle], check=True, capture_output=True, timeout=300)
    berth_layout = str(tmp_path / "from-berth")
    berth(env, "save", "--format", "oci-dir", "-o", berth_layout, "busybox:bb")
    subprocess.run(["umoci", "unpack", "--image", f"{berth_layout}:bb", str(tmp_path / "bbb")], check=True,
                   capture_output=True, timeout=300)
    shutil.rmtree(os.path.join(bundle, "rootfs"))
    shutil.copytree(str(tmp_path / "bbb" / "rootfs"), os.path.join(bundle, "rootfs"), symlinks=True)
    with open(os.path.join(bundle, "rootfs", "umoci-was-here"), "w") as f:
        f.write("yes\n")
    subprocess.run(["umoci", "repack", "--image", f"{layout}:v1", bundle], check=True, capture_output=True, timeout=300)
    subprocess.run(["umoci", "config", "--image", f"{layout}:v1", "--config.cmd", "cat",
                    "--config.cmd", "/umoci-was-here"], check=True, capture_output=True, timeout=300)
    out = berth(env, "load", "-i", layout).stdout
    assert "Loaded image: localhost/umoci-image:v1" in out
    assert berth(env, "run", "--rm", "localhost/umoci-image:v1").stdout == "yes\n"


def test_load_refuses_tampered_and_malformed_archives(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = str(tmp_path / "good.tar")
    berth(env, "save", "busybox:bb", "-o", good)
    berth(env, "rmi", "busybox:bb")
    # a layer whose bytes no longer match the config's DiffID
    bad = str(tmp_path / "bad.tar")
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            if m.name.endswith("layer.tar"):
                inner = tarfile.open(fileobj=__import__("io").BytesIO(data))
                buf = __import__("io").BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as t2:
                    for mm in inner:
                        t2.addfile(mm, inner.extractfile(mm) if mm.isreg() else None)
                    extra = tarfile.TarInfo("evil")
                    extra.size = 4
                    t2.addfile(extra, __import__("io").BytesIO(b"evil"))
                data = buf.getvalue()
                m.size = len(data)
            dst.addfile(m, __import__("io").BytesIO(data) if data is not None else None)
    cp = berth(env, "load", "-i", bad, check=False)
    assert cp.returncode == 1 and "DiffID" in cp.stderr
    assert json.loads(berth(env, "images", "--format", "json").stdout) == []
    assert [n for n in os.listdir(os.path.join(env["BERTH_ROOT"], "overlay")) if n != "l"] == []
    junk = tmp_path / "junk.tar"
    with tarfile.open(junk, "w") as t:
        info = tarfile.TarInfo("manifest.json")
        payload = b'{"not": "a list"}'
        info.size = len(payload)
        t.addfile(info, __import__("io").BytesIO(payload))
    cp = berth(env, "load", "-i", str(junk), check=False)
    assert cp.returncode == 1 and "manifest.json" in cp.stderr and "Traceback" not in cp.stderr
    cp = berth(env, "load", "-i", str(tmp_path / "missing.tar"), check=False)
    assert cp.returncode == 1 and "no such file" in cp.stderr
    assert berth(env, "load", "-i", good).returncode == 0


def test_multi_image_archive_writes_shared_layers_once(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "run", "--name", "c", "busybox:bb", "sh", "-c", "echo x > /x")
    berth(env, "commit", "c", "derived:1")
    berth(env, "tag", "busybox:bb", "busybox:other")
    out = str(tmp_path / "two.tar")
    berth(env, "save", "-o", out, "busybox:bb", "derived:1", "busybox:other")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len([n for n in names if n.endswith("layer.tar")]) == 2
    assert sorted(t for m in manifest for t in m["RepoTags"]) == ["busybox:bb", "busybox:other", "derived:1"]
    berth(env, "rm", "c")
    for ref in ("derived:1", "busybox:bb", "busybox:other"):
        berth(env, "rmi", ref)
    out2 = berth(env, "load", "-i", out).stdout
    assert out2.count("Loaded image:") == 3
    assert berth(env, "run", "--rm", "derived:1", "cat", "/x").stdout == "x\n"


def test_loads_zstd_and_gzip_layers(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An OCI layout whose layer blob is zstd (as containers/image can write) or gzip loads."""
    import gzip

    zstandard = pytest.importorskip("zstandard")
    layout = tmp_path / "layout"
    berth(env, "save", "--format", "oci-dir", "-o", str(layout), "busybox:bb")
    index = json.load(open(layout / "index.json"))
    mdesc = index["manifests"][0]
    manifest = json.load(open(layout / "blobs" / "sha256" / mdesc["digest"][7:]))
    raw = (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
    for name, data, media in (("zstd", zstandard.ZstdCompressor().compress(raw),
                               "application/vnd.oci.image.layer.v1.tar+zstd"),
                              ("gzip", gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        m = dict(manifest, layers=[{"mediaType": media, "digest": digest, "size": len(data)}])
        mbytes = json.dumps(m).encode()
        mdig = "sha256:" + hashlib.sha256(mbytes).hexdigest()
        (layout / "blobs" / "sha256" / mdig[7:]).write_bytes(mbytes)
        idx = {"schemaVersion": 2, "manifests": [{"mediaType": m["mediaType"], "digest": mdig, "size": len(mbytes),
                                                  "annotations": {"io.containerd.image.name": f"comp/{name}:1"}}]}
        (layout / "index.json").write_text(json.dumps(idx))
        out = berth(env, "load", "-i", str(layout)).stdout
        assert f"Loaded image: comp/{name}:1" in out
        assert berth(env, "run", "--rm", f"comp/{name}:1").stdout == "hello from berth\n"
        # a corrupt compressed blob is refused where the layer is not already present
        (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data[:-8] + bytes(8))
        fresh = dict(env, BERTH_ROOT=str(tmp_path / f"fresh-{name}" / "root"))
        cp = berth(fresh, "load", "-i", str(layout), check=False)
        assert cp.returncode == 1 and "Traceback" not in cp.stderr
        assert json.loads(berth(fresh, "images", "--format", "json").stdout) == []
