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
