"""push / pull against a real registry (docker-registry on 127.0.0.1), with skopeo as the peer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import berth
from tests.peers import registry


@pytest.fixture
def reg(tmp_path) -> str:  # type: ignore[no-untyped-def]
    with registry(str(tmp_path / "registry")) as r:
        yield r


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["echo", "hi"]', busybox_tar, "busybox:bb")
    return e


def other_root(env: dict[str, str], tmp_path, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(env, BERTH_ROOT=str(tmp_path / name / "root"), BERTH_RUNROOT=str(tmp_path / name / "run"))


def skopeo_digest(ref: str) -> str:
    cp = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["Digest"]


def test_push_pull_round_trip_keeps_digests(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d1 = berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/team/bb:v1").stdout.strip()
    assert skopeo_digest(f"{reg}/team/bb:v1") == d1
    # a second repository on the same registry: blobs are mounted, nothing re-uploaded
    out = berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/other/bb:v1")
    assert out.stdout.strip() == d1 and "mounted from team/bb" in out.stderr
    env2 = other_root(env, tmp_path, "second")
    pulled = berth(env2, "pull", "--tls-verify=false", f"{reg}/team/bb:v1")
    assert "Copying blob" in pulled.stderr
    assert berth(env2, "run", "--rm", f"{reg}/team/bb:v1").stdout == "hi\n"
    d2 = berth(env2, "push", "--tls-verify=false", f"{reg}/team/bb:v1", f"{reg}/third/bb:v1").stdout.strip()
    assert d2 == d1
    # pulling again: everything is already there
    again = berth(env2, "pull", "--tls-verify=false", f"{reg}/team/bb:v1")
    assert "Copying blob" not in again.stderr
    by_digest = berth(env2, "pull", "--tls-verify=false", f"{reg}/team/bb@{d1}")
    assert by_digest.returncode == 0


def test_image_pushed_by_skopeo_survives_berth_pull_push(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    layout = str(tmp_path / "layout")
    berth(env, "save", "--format", "oci-dir", "-o", layout, "busybox:bb")
    # skopeo compresses the layer itself (gzip), so the blob digests are skopeo's, not berth's
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-compress", f"oci:{layout}:bb",
                    f"docker://{reg}/from/skopeo:v1"], check=True, capture_output=True)
    original = skopeo_digest(f"{reg}/from/skopeo:v1")
    env2 = other_root(env, tmp_path, "puller")
    berth(env2, "pull", "--tls-verify=false", f"{reg}/from/skopeo:v1")
    pushed = berth(env2, "push", "--tls-verify=false", f"{reg}/from/skopeo:v1", f"{reg}/to/berth:v1").stdout.strip()
    assert pushed == original == skopeo_digest(f"{reg}/to/berth:v1")


def test_large_layer_uses_chunked_upload(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "run", "--name", "big", "busybox:bb", "sh", "-c",
          "head -c 20000000 /dev/urandom > /blob && echo done")
    berth(env, "commit", "big", "bigimg:1")
    digest = berth(env, "push", "--tls-verify=false", "bigimg:1", f"{reg}/big/img:1").stdout.strip()
    assert skopeo_digest(f"{reg}/big/img:1") == digest
    env2 = other_root(env, tmp_path, "bigpull")
    berth(env2, "pull", "--tls-verify=false", f"{reg}/big/img:1")
    out = berth(env2, "run", "--rm", f"{reg}/big/img:1", "sh", "-c", "wc -c < /blob").stdout.strip()
    assert out == "20000000"


def test_corrupt_blob_is_refused_and_nothing_kept(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/victim/bb:v1")
    data_root = tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    blobs = sorted((p for p in data_root.rglob("data")), key=lambda p: p.stat().st_size)
    layer = blobs[-1]
    raw = bytearray(layer.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    layer.write_bytes(bytes(raw))
    env2 = other_root(env, tmp_path, "victim")
    cp = berth(env2, "pull", "--tls-verify=false", f"{reg}/victim/bb:v1", check=False)
    assert cp.returncode == 1 and "digest" in cp.stderr and "Traceback" not in cp.stderr
    assert json.loads(berth(env2, "images", "--format", "json").stdout) == []
    blobdir = os.path.join(env2["BERTH_ROOT"], "blobs", "sha256")
    assert not os.path.isdir(blobdir) or [n for n in os.listdir(blobdir) if n.startswith(".tmp")] == []
    assert [n for n in os.listdir(os.path.join(env2["BERTH_ROOT"], "overlay")) if n != "l"] == []


def test_registry_errors_are_one_line(env, reg) -> None:  # type: ignore[no-untyped-def]
    cp = berth(env, "pull", "--tls-verify=false", f"{reg}/nothing/here:v1", check=False)
    assert cp.returncode == 1 and "not found" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    cp = berth(env, "pull", "--tls-verify=false", "127.0.0.1:1/x/y:z", check=False)
    assert cp.returncode == 1 and "failed" in cp.stderr and "Traceback" not in cp.stderr
    cp = berth(env, "push", "busybox:bb", check=False)
    assert cp.returncode == 1 and "names no registry" in cp.stderr


def test_basic_auth_over_tls(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import base64

    bcrypt = pytest.importorskip("bcrypt")
    certs = tmp_path / "certs"
    certs.mkdir()
    cert, key = str(certs / "cert.pem"), str(certs / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    htpasswd = certs / "htpasswd"
    htpasswd.write_text("fleet:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode() + "\n")
    with registry(str(tmp_path / "secure"), tls=(cert, key), htpasswd=str(htpasswd)) as reg:
        ref = f"{reg}/private/bb:v1"
        cp = berth(env, "push", "--ca-file", cert, "busybox:bb", ref, check=False)
        assert cp.returncode == 1 and "authentication required" in cp.stderr
        cp = berth(env, "push", "busybox:bb", ref, check=False)  # no CA: the certificate is not trusted
        assert cp.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in cp.stderr.upper().replace(" ", "_")
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"auths": {reg: {"auth": base64.b64encode(b"fleet:s3cret").decode()}}}))
        digest = berth(env, "push", "--ca-file", cert, "--authfile", str(auth), "busybox:bb", ref).stdout.strip()
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({"auths": {reg: {"auth": base64.b64encode(b"fleet:nope").decode()}}}))
        env2 = other_root(env, tmp_path, "securepull")
        cp = berth(env2, "pull", "--ca-file", cert, "--authfile", str(wrong), ref, check=False)
        assert cp.returncode == 1 and "authentication" in cp.stderr
        berth(env2, "pull", "--ca-file", cert, "--authfile", str(auth), ref)
        assert berth(env2, "push", "--ca-file", cert, "--authfile", str(auth), ref,
                     f"{reg}/private/copy:v1").stdout.strip() == digest


def test_retries_on_5xx_and_dropped_connections(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through a proxy that answers 503 or drops the connection on every other request."""
    import http.server
    import threading
    import urllib.request

    berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/flaky/bb:v1")
    failures = {"n": 0, "calls": 0}

    class Flaky(http.server.BaseHTTPRequestHandler):
        def _proxy(self) -> None:
            failures["calls"] += 1
            if failures["calls"] % 2 == 1:
                failures["n"] += 1
                if failures["n"] % 2:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.close_connection = True
                    self.connection.shutdown(2)
                return
            req = urllib.request.Request(f"http://{reg}{self.path}", method=self.command,
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            try:
                r = urllib.request.urlopen(req)
            except urllib.error.HTTPError as e:
                r = e
            body = r.read()
            self.send_response(r.status if hasattr(r, "status") else r.code)
            for k, v in r.headers.items():
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = _proxy

        def log_message(self, *a: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.server_address[1]
        env2 = other_root(env, tmp_path, "flaky")
        cp = berth(env2, "pull", "--tls-verify=false", f"127.0.0.1:{port}/flaky/bb:v1")
        assert cp.returncode == 0
        assert failures["n"] >= 3
        assert berth(env2, "run", "--rm", f"127.0.0.1:{port}/flaky/bb:v1").stdout == "hi\n"
    finally:
        server.shutdown()
        server.server_close()


def test_interrupted_pull_resumes_the_blob(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "run", "--name", "big", "busybox:bb", "sh", "-c", "head -c 6000000 /dev/urandom > /blob")
    berth(env, "commit", "big", "bigimg:1")
    berth(env, "push", "--tls-verify=false", "bigimg:1", f"{reg}/resume/img:1")
    data_root = tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    layer = max(data_root.rglob("data"), key=lambda p: p.stat().st_size)
    digest = "sha256:" + layer.parent.name
    raw = layer.read_bytes()
    log = tmp_path / "registry" / "registry.log"

    def pull_with_partial(name: str, prefix: bytes) -> tuple[dict[str, str], str]:
        env2 = other_root(env, tmp_path, name)
        incoming = os.path.join(env2["BERTH_ROOT"], "blobs", "incoming")
        os.makedirs(incoming)
        # what a pull killed half-way through the blob leaves behind
        with open(os.path.join(incoming, f"{digest[7:]}.partial"), "wb") as f:
            f.write(prefix)
        before = log.read_text(errors="replace")
        out = berth(env2, "pull", "--tls-verify=false", f"{reg}/resume/img:1")
        served = log.read_text(errors="replace")[len(before):]
        got = berth(env2, "run", "--rm", "--network", "none", f"{reg}/resume/img:1", "sh", "-c",
                    "wc -c < /blob").stdout.strip()
        assert got == "6000000"
        assert os.listdir(incoming) == []
        return env2, out.stderr + served

    _env2, text = pull_with_partial("resumed", raw[: len(raw) // 2])
    assert f"Resuming blob {digest[7:19]} at byte {len(raw) // 2}" in text
    assert '" 206 ' in text  # the registry served the rest of the blob only
    # kept bytes that are not a prefix of the blob: detected, fetched once more whole, nothing bad kept
    _env3, text = pull_with_partial("garbage", os.urandom(len(raw) // 3))
    assert '" 206 ' in text and '" 200 ' in text


def test_storage_check_drops_abandoned_partial_downloads(env) -> None:  # type: ignore[no-untyped-def]
    incoming = os.path.join(env["BERTH_ROOT"], "blobs", "incoming")
    os.makedirs(incoming)
    old, fresh = os.path.join(incoming, "a" * 64 + ".partial"), os.path.join(incoming, "b" * 64 + ".partial")
    for p in (old, fresh):
        with open(p, "wb") as f:
            f.write(b"half a blob")
    os.utime(old, (0, os.path.getmtime(old) - 8 * 86400))
    out = berth(env, "storage", "check").stdout
    assert f"incoming/{'a' * 64}.partial" in out and "storage is consistent" in out
    assert not os.path.exists(old) and os.path.exists(fresh)  # a recent one may still be resumed
