"""Reaching registries: a manifest whose bytes do not hash to the digest the registry sent is refused
(a tiny hostile registry serves one), berth login/logout keep credentials that pull and push use
(docker-registry with htpasswd basic auth), a default registry takes references without a host."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import berth
from tests.peers import registry


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["echo", "hi"]', busybox_tar, "local/bb:1")
    return e


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image() -> tuple[bytes, dict[str, bytes]]:
    """A one-file image: its manifest and its blobs by digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(raw.getvalue())]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(layer),
                    "size": len(layer)}]}).encode()
    return manifest, {_digest(config): config, _digest(layer): layer}


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Serves one image under x/y:v1 (what `image` holds); `lie` sends its manifest with another
    digest than its bytes hash to; `token` makes it ask for a bearer token from /token, given for
    fleet:s3cret (basic auth)."""

    image: tuple[bytes, dict[str, bytes]]
    served: list[str]
    lie = False
    token = False

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.served.append(self.path)
        manifest, blobs = self.image
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.token and self.path.startswith("/token"):
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"fleet:s3cret").decode():
                self._send(401, b'{"errors": [{"code": "DENIED", "message": "bad credentials"}]}', {})
                return
            self._send(200, b'{"token": "t0ken"}', {"Content-Type": "application/json"})
            return
        if self.token and self.headers.get("Authorization") != "Bearer t0ken":
            challenge = f'Bearer realm="http://{host}/token",service="fake",scope="repository:x/y:pull"'
            self._send(401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "token needed"}]}',
                       {"WWW-Authenticate": challenge})
            return
        if self.path == "/v2/":
            self._send(200, b"{}", {"Content-Type": "application/json"})
        elif self.path == "/v2/x/y/manifests/v1":
            self._send(200, manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                       "Docker-Content-Digest": _digest(manifest + b" " if self.lie else manifest)})
        elif self.path.startswith("/v2/x/y/blobs/") and self.path.rsplit("/", 1)[1] in blobs:
            self._send(200, blobs[self.path.rsplit("/", 1)[1]], {"Content-Type": "application/octet-stream"})
        else:
            self._send(404, b"{}", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def fake_registry(**behaviour: bool) -> Iterator[tuple[str, list[str]]]:
    served: list[str] = []
    handler = type("Handler", (FakeRegistry,), dict(behaviour, image=_image(), served=served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def hostile() -> Iterator[tuple[str, list[str]]]:
    """A registry that serves a valid image under x/y:v1, but sends its manifest with another digest
    (Docker-Content-Digest) than the bytes hash to; yields HOST:PORT and the paths it served."""
    yield from fake_registry(lie=True)


@pytest.fixture
def token_registry() -> Iterator[tuple[str, list[str]]]:
    yield from fake_registry(token=True)


def test_pull_by_tag_refuses_a_manifest_that_is_not_the_digest_sent(env: dict[str, str], hostile) -> None:  # type: ignore[no-untyped-def]
    reg, served = hostile
    cp = berth(env, "pull", "--tls-verify=false", f"{reg}/x/y:v1", check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1 and "refusing it" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr
    assert not [p for p in served if "/blobs/" in p], served  # refused before any blob was fetched
    assert berth(env, "inspect", f"{reg}/x/y:v1", check=False).returncode != 0  # nothing kept


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[str]:
    bcrypt = pytest.importorskip("bcrypt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("fleet:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode() + "\n")
    with registry(str(tmp_path / "registry"), htpasswd=str(htpasswd)) as reg:
        yield reg


def test_login_logout_and_default_registry(env: dict[str, str], secured: str, tmp_path: Path) -> None:
    reg = secured
    Path(env["BERTH_CONFIG"]).write_text(f"default_registry: '{reg}'\ninsecure_registries: ['{reg}']\n")
    auth = tmp_path / "auth.json"  # next to the config file
    cp = berth(env, "push", "local/bb:1", "team/bb:1", check=False)
    assert cp.returncode == 1 and f"berth login {reg}" in cp.stderr, cp.stderr

    cp = berth(env, "login", "-u", "fleet", "--password-stdin", reg, input=b"wrong\n", check=False)
    assert cp.returncode == 1 and "authentication" in cp.stderr and len(cp.stderr.splitlines()) == 1, cp.stderr
    assert not auth.exists()
    cp = berth(env, "login", "-u", "fleet", "--password-stdin", reg, check=False)
    assert cp.returncode != 0 and "password is empty" in cp.stderr
    out = berth(env, "login", "-u", "fleet", "--password-stdin", reg, input=b"s3cret\n").stdout
    assert "Login Succeeded" in out
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600
    assert json.loads(auth.read_text()) == {"auths": {reg: {"auth": base64.b64encode(b"fleet:s3cret").decode()}}}

    # references without a registry host go to the default registry (one-word names under library/)
    digest = berth(env, "push", "local/bb:1", "team/bb:1").stdout.strip()
    assert berth(env, "push", "local/bb:1", "busybox:1").stdout.strip() == digest
    other = dict(env, BERTH_ROOT=str(tmp_path / "other" / "root"), BERTH_RUNROOT=str(tmp_path / "other" / "run"))
    berth(other, "pull", "-q", "busybox:1")
    assert berth(other, "run", "--rm", "busybox:1").stdout == "hi\n"
    log = (tmp_path / "registry" / "registry.log").read_text(errors="replace")
    assert "GET /v2/library/busybox/manifests/1 " in log
    berth(other, "pull", "-q", f"{reg}/team/bb:1")

    assert "Removed login credentials" in berth(env, "logout", reg).stdout
    assert json.loads(auth.read_text()) == {"auths": {}}
    cp = berth(other, "pull", "-q", "team/bb:1", check=False)
    assert cp.returncode == 1 and "authentication required" in cp.stderr
    assert "Not logged in" in berth(env, "logout", reg).stdout
    cp = berth(env, "login", "-u", "fleet", "--password-stdin", "not a host!", input=b"x\n", check=False)
    assert cp.returncode != 0 and "not a registry address" in cp.stderr and "Traceback" not in cp.stderr


def test_login_with_the_bearer_token_flow(env: dict[str, str], token_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg, served = token_registry
    Path(env["BERTH_CONFIG"]).write_text(f"insecure_registries: ['{reg}']\n")
    cp = berth(env, "pull", "-q", f"{reg}/x/y:v1", check=False)
    assert cp.returncode == 1 and "authentication required" in cp.stderr, cp.stderr
    cp = berth(env, "login", "-u", "fleet", "--password-stdin", reg, input=b"nope\n", check=False)
    assert cp.returncode == 1 and "token" in cp.stderr and len(cp.stderr.splitlines()) == 1, cp.stderr
    assert "Login Succeeded" in berth(env, "login", "-u", "fleet", "--password-stdin", reg, input=b"s3cret\n").stdout
    served.clear()
    berth(env, "pull", "-q", f"{reg}/x/y:v1")
    assert served[0].startswith("/v2/x/y/manifests/v1") and any(p.startswith("/token") for p in served), served
    assert berth(env, "inspect", f"{reg}/x/y:v1").returncode == 0
