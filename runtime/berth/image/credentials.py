"""berth login / logout: registry credentials kept in berth's auth file (docker's config.json shape,
`{"auths": {"HOST[:PORT]": {"auth": base64("USER:PASSWORD")}}}`, mode 0600), where pull and push find them."""

from __future__ import annotations

import base64
import json
import os
import re

from berth.config import REGISTRY_HOST_RE
from berth.errors import InvalidInput
from berth.image.registry import Client, Registries


def registry_host(registry: str) -> str:
    """HOST[:PORT] of what a user gives login/logout (an http(s):// prefix and a path are dropped)."""
    host = re.sub(r"^https?://", "", registry.strip()).split("/")[0]
    if not REGISTRY_HOST_RE.match(host):
        raise InvalidInput(f"{registry!r} is not a registry address: use HOST[:PORT]")
    return host


def _auth_file(registries: Registries) -> str:
    if not registries.auth_file:
        raise InvalidInput("no auth file is configured (auth_file in berth's config file)")
    return registries.auth_file


def _read(path: str) -> dict[str, object]:
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        raise InvalidInput(f"auth file {path} is not valid JSON in the docker config.json format") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise InvalidInput(f"auth file {path}: expected a mapping with an auths mapping")
    return data


def _write(path: str, data: dict[str, object]) -> None:
    """Replace the file atomically; it is created 0600 and never readable by others, even briefly."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def login(registries: Registries, registry: str, username: str, password: str, tls_verify: bool = True,
          ca_file: str | None = None) -> str:
    """Check the credentials with the registry (GET /v2/, answering its basic or bearer challenge),
    then keep them; returns the auth file's path."""
    host = registry_host(registry)
    if not username or ":" in username:
        raise InvalidInput("the username must not be empty or contain ':'")
    if not password:
        raise InvalidInput("the password is empty")
    Client(host, tls_verify, ca_file, registries=registries, creds=(username, password)).request("GET", "/v2/").close()
    path = _auth_file(registries)
    data = _read(path)
    auths = data.setdefault("auths", {})
    assert isinstance(auths, dict)
    auths[host] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _write(path, data)
    return path


def logout(registries: Registries, registry: str) -> bool:
    """Forget a registry's credentials; False when berth's auth file had none for it."""
    host = registry_host(registry)
    path = _auth_file(registries)
    data = _read(path)
    auths = data.get("auths", {})
    assert isinstance(auths, dict)
    keys = [k for k in auths if registry_host_or_none(k) == host]
    if not keys:
        return False
    for k in keys:
        del auths[k]
    _write(path, data)
    return True


def registry_host_or_none(key: str) -> str | None:
    try:
        return registry_host(key)
    except InvalidInput:
        return None
