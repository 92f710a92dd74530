"""berth_container `pull: always` and berth_image `force_source` / push against a real registry
(docker-registry on 127.0.0.1, spoken to over plain http because berth's config file lists it in
insecure_registries): the registry is asked for manifests only, a pull happens (and changed is
reported, and the container recreated) only when the tag names another image; check mode predicts it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, berth
from tests.peers import registry

ADHOC = os.path.join(REPO, ".venv", "bin", "ansible")
pytestmark = pytest.mark.skipif(not os.path.exists(ADHOC), reason="ansible-core is not installed in .venv")


def _fqcn(module: str) -> str:
    with open(os.path.join(REPO, "ansible.cfg"), encoding="utf-8") as f:
        return f"berth.runtime.{module}" if "collections_path" in f.read() else module


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    with registry(str(tmp_path / "registry")) as r:
        yield r


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str, reg: str) -> dict[str, str]:
    e = dict(berth_env, ANSIBLE_NOCOLOR="1", BERTH_DRIVER="overlay")
    Path(e["BERTH_CONFIG"]).write_text(f"insecure_registries: ['{reg}']\n")
    berth(e, "import", "-c", 'CMD ["sleep", "1000"]', busybox_tar, "local/app:v1")
    berth(e, "import", "-c", 'CMD ["sleep", "1000"]', "-c", "ENV VERSION=2", busybox_tar, "local/app:v2")
    return e


def task(env: dict[str, str], module: str, args: dict[str, Any], *flags: str) -> dict[str, Any]:
    """Run a module once (ad hoc) and return its result."""
    args = dict(args, root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"])
    cp = subprocess.run([ADHOC, "localhost", "-i", "inventory/local", "-m", _fqcn(module), "-a", json.dumps(args),
                         *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"^localhost \| ([A-Z!]+) => ", cp.stdout, re.MULTILINE)
    assert m, cp.stdout + cp.stderr
    result: dict[str, Any] = json.loads(cp.stdout[m.end():])
    result["failed"] = m[1] == "FAILED!"
    assert not result["failed"], result
    return result


def image_id(env: dict[str, str], ref: str) -> str:
    return str(json.loads(berth(env, "inspect", ref).stdout)[0]["Id"])


def served(tmp_path: Path, since: int) -> list[tuple[str, str]]:
    """(method, path) of the requests the registry served since a byte offset of its log."""
    text = (tmp_path / "registry" / "registry.log").read_bytes()[since:].decode(errors="replace")
    return [(m[1], m[2]) for m in re.finditer(r'"([A-Z]+) (\S+) HTTP/[\d.]+" \d{3} ', text)]


def log_size(tmp_path: Path) -> int:
    return len((tmp_path / "registry" / "registry.log").read_bytes())


def test_container_pull_always_follows_the_tag(env: dict[str, str], reg: str, tmp_path: Path) -> None:
    ref = f"{reg}/team/app:stable"
    berth(env, "push", "local/app:v1", ref)
    app = {"name": "app", "image": ref, "pull": "always", "network_mode": "none"}
    first = task(env, "berth_container", app)
    assert first["changed"] and [a["action"] for a in first["actions"]] == ["image", "create"], first
    assert image_id(env, ref) == image_id(env, "local/app:v1")
    cid = first["container"]["Id"]

    mark = log_size(tmp_path)
    again = task(env, "berth_container", app)
    assert not again["changed"], again
    requests = served(tmp_path, mark)
    assert requests and all("/manifests/" in p for _m, p in requests), requests  # no blob was fetched

    berth(env, "push", "local/app:v2", ref)  # the tag moves to another image
    predicted = task(env, "berth_container", app, "--check")
    assert predicted["changed"] and [a["action"] for a in predicted["actions"]] == ["image", "recreate"], predicted
    assert image_id(env, ref) == image_id(env, "local/app:v1")  # check mode pulled nothing
    moved = task(env, "berth_container", app)
    assert [a["action"] for a in moved["actions"]] == ["image", "recreate"], moved
    assert moved["container"]["Id"] != cid
    assert moved["container"]["Image"] == image_id(env, "local/app:v2") == image_id(env, ref)
    assert moved["container"]["State"]["Running"] is True
    assert not task(env, "berth_container", app)["changed"]
    # pull: missing keeps what is here even when the registry has another image
    berth(env, "push", "local/app:v1", ref)
    assert not task(env, "berth_container", dict(app, pull="missing"))["changed"]


def both(env: dict[str, str], module: str, args: dict[str, Any]) -> dict[str, Any]:
    """Check mode, then the real run: check mode must have predicted the real run's actions."""
    predicted = task(env, module, args, "--check")
    done = task(env, module, args)
    assert [(a["action"], a["target"]) for a in predicted["actions"]] == \
        [(a["action"], a["target"]) for a in done["actions"]], (predicted, done)
    assert predicted["changed"] == done["changed"]
    return done


def test_image_push_is_idempotent(env: dict[str, str], reg: str, tmp_path: Path) -> None:
    target = f"{reg}/team/img:1"
    args = {"name": "local/app:v1", "push": True, "repository": target}
    first = both(env, "berth_image", args)
    assert [a["action"] for a in first["actions"]] == ["tag", "push"], first
    assert image_id(env, target) == image_id(env, "local/app:v1")
    mark = log_size(tmp_path)
    assert not both(env, "berth_image", args)["changed"]
    assert not [r for r in served(tmp_path, mark) if r[0] in ("PUT", "POST", "PATCH")]  # nothing sent
    # another image under the same repository tag: tagged and pushed again, then nothing
    moved = both(env, "berth_image", dict(args, name="local/app:v2"))
    assert [a["action"] for a in moved["actions"]] == ["tag", "push"], moved
    other = dict(env, BERTH_ROOT=str(tmp_path / "other" / "root"), BERTH_RUNROOT=str(tmp_path / "other" / "run"))
    berth(other, "pull", "-q", target)
    assert image_id(other, target) == image_id(env, "local/app:v2")
    assert not both(env, "berth_image", dict(args, name="local/app:v2"))["changed"]


def test_image_force_source_pull_follows_the_registry(env: dict[str, str], reg: str, tmp_path: Path) -> None:
    ref = f"{reg}/team/follow:1"
    berth(env, "push", "local/app:v1", ref)
    args = {"name": ref, "source": "pull", "force_source": True}
    first = both(env, "berth_image", args)
    assert first["changed"] and image_id(env, ref) == image_id(env, "local/app:v1")
    mark = log_size(tmp_path)
    assert not both(env, "berth_image", args)["changed"]
    assert not [p for _m, p in served(tmp_path, mark) if "/blobs/" in p]  # manifests only
    berth(env, "push", "local/app:v2", ref)
    assert both(env, "berth_image", args)["changed"]
    assert image_id(env, ref) == image_id(env, "local/app:v2")


def _rootfs(path: Path, content: bytes) -> str:
    import io
    import tarfile

    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("etc/motd")
        info.size, info.mtime = len(content), 1700000000
        t.addfile(info, io.BytesIO(content))
    return str(path)


def test_image_force_source_import_and_load_predicted(env: dict[str, str], tmp_path: Path) -> None:
    one, two = _rootfs(tmp_path / "one.tar", b"one\n"), _rootfs(tmp_path / "two.tar", b"two\n")
    args = {"name": "imp:1", "import_from": one, "changes": ['CMD ["sh"]'], "force_source": True}
    assert both(env, "berth_image", args)["changed"]
    first_id = image_id(env, "imp:1")
    assert not both(env, "berth_image", args)["changed"]  # the same tarball gives the same image
    assert both(env, "berth_image", dict(args, import_from=two))["changed"]
    assert not both(env, "berth_image", dict(args, import_from=two))["changed"]
    assert both(env, "berth_image", dict(args, changes=['CMD ["true"]'], import_from=two))["changed"]

    archive = str(tmp_path / "imp.tar")
    assert both(env, "berth_image", dict(args, changes=['CMD ["sh"]'], import_from=one))["changed"]
    berth(env, "save", "-o", archive, "imp:1")
    load = {"name": "imp:1", "load": archive, "force_source": True}
    assert not both(env, "berth_image", load)["changed"]
    assert both(env, "berth_image", dict(args, import_from=two))["changed"]  # imp:1 is another image now
    assert both(env, "berth_image", load)["changed"] and image_id(env, "imp:1") == first_id
    assert not both(env, "berth_image", load)["changed"]
    missing = subprocess.run([ADHOC, "localhost", "-i", "inventory/local", "-m", _fqcn("berth_image"), "-a",
                              json.dumps(dict(load, name="nothere:1", root=env["BERTH_ROOT"],
                                              runroot=env["BERTH_RUNROOT"])), "--check"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert "FAILED!" in missing.stdout and "no image named nothere:1" in missing.stdout, missing.stdout
