"""The first image commands through the real `berth` CLI on temporary roots."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.conftest import berth


def test_import_images_tag_inspect_history_rmi(berth_env: dict[str, str], busybox_tar: str) -> None:
    env = dict(berth_env, BERTH_DRIVER="overlay")
    image_id = berth(env, "import", busybox_tar, "busybox").stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    listed = json.loads(berth(env, "images", "--format", "json").stdout)
    assert listed[0]["Id"] == image_id and listed[0]["RepoTags"] == ["busybox:latest"]
    table = berth(env, "images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:3] == ["busybox", "latest", image_id[7:19]]

    berth(env, "tag", "busybox", "registry.example:5000/team/bb:v1")
    info = json.loads(berth(env, "inspect", image_id[7:19]).stdout)[0]
    assert info["RepoTags"] == ["busybox:latest", "registry.example:5000/team/bb:v1"]
    diff_id = "sha256:" + hashlib.sha256(open(busybox_tar, "rb").read()).hexdigest()
    assert info["RootFS"]["Layers"] == [diff_id]
    assert info["Berth"]["Layers"][0]["ChainID"] == diff_id
    assert info["GraphDriver"]["Name"] == "overlay"

    hist = json.loads(berth(env, "history", "busybox", "--format", "json").stdout)
    assert hist[0]["created_by"] == "berth import" and hist[0]["size"] > 0
    assert "berth import" in berth(env, "history", "busybox").stdout

    out = berth(env, "rmi", "busybox").stdout
    assert out.strip() == "Untagged: busybox:latest"
    out = berth(env, "rmi", "registry.example:5000/team/bb:v1").stdout
    assert "Deleted: " + image_id in out and "Deleted layer:" in out
    assert json.loads(berth(env, "images", "--format", "json").stdout) == []
    assert os.listdir(os.path.join(env["BERTH_ROOT"], "overlay", "l")) == []


def test_import_from_stdin_gives_same_id_on_every_driver(berth_env: dict[str, str], busybox_tar: str,
                                                         btrfs_dir: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = set()
    data = open(busybox_tar, "rb").read()
    for driver in ("vfs", "overlay", "btrfs"):
        base = btrfs_dir if driver == "btrfs" else str(tmp_path)
        env = dict(berth_env, BERTH_DRIVER=driver, BERTH_ROOT=os.path.join(base, f"root-{driver}"))
        ids.add(berth(env, "import", "-", "bb", input=data).stdout.strip())
        assert json.loads(berth(env, "info", "--format", "json").stdout)["driver"] == driver
        berth(env, "rmi", "bb")
    assert len(ids) == 1


def test_errors_are_one_line(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="vfs")
    cases = [
        (["inspect", "nosuch"], "no such image"),
        (["import", str(tmp_path / "missing.tar"), "x"], "cannot read"),
        (["import", busybox_tar, "Bad_Name"], "invalid reference"),
        (["tag", "nosuch", "x"], "no such image"),
        (["--storage-opt", "size=1G", "images"], "unknown storage option"),
        (["--storage-opt", "nonsense", "images"], "not KEY=VALUE"),
    ]
    for args, text in cases:
        cp = berth(env, *args, check=False)
        assert cp.returncode == 1, (args, cp.stderr)
        assert text in cp.stderr, (args, cp.stderr)
        assert len(cp.stderr.strip().splitlines()) == 1, cp.stderr
        assert "Traceback" not in cp.stderr
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    cp = berth(env, "import", str(junk), "junk", check=False)
    assert cp.returncode == 1 and "tar" in cp.stderr and "Traceback" not in cp.stderr


def test_root_initialised_with_another_driver_is_refused(berth_env: dict[str, str], busybox_tar: str) -> None:
    env = dict(berth_env, BERTH_DRIVER="vfs")
    berth(env, "import", busybox_tar, "bb")
    cp = berth(dict(env, BERTH_DRIVER="overlay"), "images", check=False)
    assert cp.returncode == 1
    assert "initialised with the vfs driver" in cp.stderr
    env.pop("BERTH_DRIVER")
    info = json.loads(berth(env, "info", "--format", "json").stdout)
    assert info["driver"] == "vfs" and "recorded" in info["driver_reason"]


def test_config_file(berth_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.yml"
    cfg.write_text("driver: vfs\n")
    info = json.loads(berth(berth_env, "--config", str(cfg), "info", "--format", "json").stdout)
    assert info["driver"] == "vfs" and str(cfg) in info["driver_reason"]
    cfg.write_text("drvier: vfs\n")
    cp = berth(berth_env, "--config", str(cfg), "info", check=False)
    assert cp.returncode == 1 and "unknown setting(s) drvier" in cp.stderr
    cfg.write_text("driver: [unclosed\n")
    cp = berth(berth_env, "--config", str(cfg), "info", check=False)
    assert cp.returncode == 1 and "not valid YAML" in cp.stderr


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_info_and_host_check(berth_env: dict[str, str], fmt: str) -> None:
    if fmt == "json":
        info = json.loads(berth(berth_env, "info", "--format", "json").stdout)
        for key in ("driver", "driver_reason", "drivers", "kernel", "backing_fs", "cgroup_version", "runtimes", "root"):
            assert key in info, key
        assert set(info["drivers"]) == {"vfs", "overlay", "btrfs", "devicemapper", "aufs"}
        for d in info["drivers"].values():
            assert isinstance(d["supported"], bool) and d["reason"]
        assert info["drivers"]["vfs"]["supported"] is True
        assert any(r["works"] for r in info["runtimes"])
        checks = json.loads(berth(berth_env, "host", "check", "--format", "json").stdout)
        assert {c["name"] for c in checks} >= {"namespaces", "cgroups", "overlay", "conmon", "runtime (any)"}
    else:
        out = berth(berth_env, "info").stdout
        assert "Storage driver:" in out and "Runtimes:" in out
        cp = berth(berth_env, "host", "check")
        assert all(line.startswith(("[pass]", "[warn]", "[FAIL]")) for line in cp.stdout.splitlines())
        cp = berth(berth_env, "host", "check", "--driver", "aufs", check=False)
        assert cp.returncode == 1
        assert "[FAIL] driver aufs" in cp.stdout and "overlay" in cp.stdout
