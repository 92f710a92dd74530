"""Reporting writes nothing: `berth info` and the *_info modules on a root that does not exist
create no root, run root, database or driver directory (and pin no driver)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO, berth

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")


def _absent(berth_env: dict[str, str], tmp_path) -> tuple[dict[str, str], str]:  # type: ignore[no-untyped-def]
    base = os.path.join(str(tmp_path), "absent")
    return dict(berth_env, BERTH_ROOT=os.path.join(base, "root"), BERTH_RUNROOT=os.path.join(base, "run")), base


def test_info_on_a_missing_root_creates_nothing(berth_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    env, base = _absent(berth_env, tmp_path)
    info = json.loads(berth(env, "info", "--format", "json").stdout)
    assert info["root"] == env["BERTH_ROOT"] and info["images"] == 0 and info["layers"] == 0
    assert info["drivers"][info["driver"]]["supported"] is True
    assert any(r["works"] for r in info["runtimes"])
    assert "Storage driver:" in berth(env, "info").stdout
    assert not os.path.exists(base)
    # reporting pinned nothing: the first real command records the driver it is given
    other = "vfs" if info["driver"] != "vfs" else "overlay"
    berth(dict(env, BERTH_DRIVER=other), "images")
    assert os.path.exists(os.path.join(env["BERTH_ROOT"], "berth.db"))
    again = json.loads(berth(env, "info", "--format", "json").stdout)
    assert again["driver"] == other and "recorded" in again["driver_reason"]


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible-core is not installed in .venv")
@pytest.mark.parametrize("module", ["berth_host_info", "berth_image_info", "berth_container_info"])
def test_info_modules_on_a_missing_root_create_nothing(berth_env: dict[str, str], tmp_path,  # type: ignore[no-untyped-def]
                                                       module: str) -> None:
    env, base = _absent(berth_env, tmp_path)
    args = {"root": env["BERTH_ROOT"], "runroot": env["BERTH_RUNROOT"]}
    cp = subprocess.run([ANSIBLE, "localhost", "-i", "inventory/local", "-m", f"berth.runtime.{module}",
                         "-a", json.dumps(args)],
                        cwd=REPO, env=dict(env, ANSIBLE_FORCE_COLOR="0"), capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 0 and '"changed": false' in cp.stdout, cp.stdout + cp.stderr
    assert not os.path.exists(base)
