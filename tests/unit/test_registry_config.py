"""Registry settings of the config file, references without a registry host, and berth logout's
edits of the auth file (pure: no registry is contacted)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from berth import config
from berth.errors import InvalidInput
from berth.image import credentials
from berth.image.registry import Registries, load_auth, qualified, split_reference


def _load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return config.load(str(path))


def test_registry_settings_are_read_and_checked(tmp_path: Path) -> None:
    s = _load(tmp_path, "default_registry: reg.internal:5000\ninsecure_registries: [127.0.0.1:5000]\n")
    assert s.default_registry == "reg.internal:5000" and s.insecure_registries == ["127.0.0.1:5000"]
    assert s.auth_file == str(tmp_path / "auth.json")
    assert _load(tmp_path, "auth_file: creds/a.json\n").auth_file == str(tmp_path / "creds" / "a.json")
    for bad in ("default_registry: 5\n", "default_registry: 'http://x/y'\n", "insecure_registries: x\n",
                "insecure_registries: ['a b']\n"):
        with pytest.raises(InvalidInput, match="registr"):
            _load(tmp_path, bad)


def test_short_names_go_to_the_default_registry() -> None:
    assert split_reference("busybox", "reg:5000") == ("reg:5000", "library/busybox", "latest")
    assert split_reference("team/app:v1", "reg:5000") == ("reg:5000", "team/app", "v1")
    assert split_reference("other:5000/team/app:v1", "reg:5000") == ("other:5000", "team/app", "v1")
    assert qualified("busybox:1", "reg:5000") == "reg:5000/library/busybox:1"
    with pytest.raises(InvalidInput, match="default_registry"):
        split_reference("busybox")


def test_logout_edits_only_its_registry(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    entry = {"auth": base64.b64encode(b"u:p").decode()}
    auth.write_text(json.dumps({"auths": {"a:5000": entry, "https://b:5000": entry}, "other": 1}))
    regs = Registries(auth_file=str(auth))
    assert load_auth("b:5000", None, str(auth)) == ("u", "p")
    assert credentials.logout(regs, "b:5000") is True
    assert json.loads(auth.read_text()) == {"auths": {"a:5000": entry}, "other": 1}
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600
    assert credentials.logout(regs, "b:5000") is False
    with pytest.raises(InvalidInput, match="not a registry address"):
        credentials.logout(regs, "a b")
    auth.write_text(json.dumps({"auths": {"a:5000": {"auth": "%%%"}}}))
    with pytest.raises(InvalidInput, match="not base64"):
        load_auth("a:5000", None, str(auth))
