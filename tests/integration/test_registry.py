"""push / pull against a real registry (docker-registry on 127.0.0.1), with skopeo as the peer."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import BERTH, berth
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
    cp = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["Digest"]


class RegistryLog:
    """The registry's access log from a mark on: the requests it really served."""

    def __init__(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        self.path = tmp_path / "registry" / "registry.log"
        self.mark()

    def mark(self) -> None:
        self.start = len(self.path.read_bytes())

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request served since the mark."""
        text = self.path.read_bytes()[self.start:].decode(errors="replace")
        return [(m[1], m[2], int(m[3])) for m in re.finditer(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ', text)]


def test_push_pull_round_trip_keeps_digests(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d1 = berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/team/bb:v1").stdout.strip()
    assert skopeo_digest(f"{reg}/team/bb:v1") == d1
    # a second repository on the same registry: blobs are mounted, nothing re-uploaded
    log = RegistryLog(tmp_path)
    out = berth(env, "push", "--tls-verify=false", "busybox:bb", f"{reg}/other/bb:v1")
    assert out.stdout.strip() == d1
    served = log.requests()
    mounts = [(p, st) for m, p, st in served if m == "POST" and "mount=" in p and "from=team%2Fbb" in p]
    assert mounts and all(st == 201 for _, st in mounts), served  # the registry mounted the blob
    assert not [r for r in served if r[0] in ("PATCH", "PUT") and "/blobs/" in r[1]], served  # nothing uploaded
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
    assert shutil.which("skopeo"), "skopeo is not installed (make setup)"
    layout = str(tmp_path / "layout")
    berth(env, "save", "--format", "oci-dir", "-o", layout, "busybox:bb")
    # skopeo compresses the layer itself (gzip), so the blob digests are skopeo's, not berth's
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-compress", f"oci:{layout}:bb",
                    f"docker://{reg}/from/skopeo:v1"], check=True, capture_output=True, timeout=120)
    original = skopeo_digest(f"{reg}/from/skopeo:v1")
    env2 = other_root(env, tmp_path, "puller")
    berth(env2, "pull", "--tls-verify=false", f"{reg}/from/skopeo:v1")
    pushed = berth(env2, "push", "--tls-verify=false", f"{reg}/from/skopeo:v1", f"{reg}/to/berth:v1").stdout.strip()
    assert pushed == original == skopeo_digest(f"{reg}/to/berth:v1")


def test_large_layer_uses_chunked_upload(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(env, "run", "--name", "big", "busybox:bb", "sh", "-c",
          "head -c 20000000 /dev/urandom > /blob && echo done")
    berth(env, "commit", "big", "bigimg:1")
    log = RegistryLog(tmp_path)
    digest = berth(env, "push", "--tls-verify=false", "bigimg:1", f"{reg}/big/img:1").stdout.strip()
    assert skopeo_digest(f"{reg}/big/img:1") == digest
    served = log.requests()
    patches = [st for m, p, st in served if m == "PATCH" and p.startswith("/v2/big/img/blobs/uploads/")]
    # the 20 MB layer went up in chunks (16 MiB each), then one PUT closed the upload
    assert len(patches) >= 2 and set(patches) == {202}, served
    assert [st for m, p, st in served if m == "PUT" and "/blobs/uploads/" in p and "digest=" in p].count(201) >= 1
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
                   check=True, capture_output=True, timeout=60)
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
                r = urllib.request.urlopen(req, timeout=60)
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


class HalfwayProxy:
    """A proxy in front of the registry that serves the big blob's first half, then holds the
    connection open (as a stalled network would) until released."""

    def __init__(self, reg: str, blob_digest: str, half: int) -> None:
        import http.server
        import threading
        import urllib.request

        self.half_sent = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                req = urllib.request.Request(f"http://{reg}{self.path}", method=self.command,
                                             headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    r = urllib.request.urlopen(req, timeout=60)
                except urllib.error.HTTPError as e:
                    r = e
                body = r.read()
                self.send_response(r.status if hasattr(r, "status") else r.code)
                for k, v in r.headers.items():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if self.path.endswith(f"/blobs/{blob_digest}") and "Range" not in self.headers:
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    proxy.half_sent.set()
                    proxy.release.wait(120)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *a: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_killed_pull_resumes_the_blob(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real pull, killed (SIGKILL) half-way through the layer blob, then pulled again: only
    the rest of the blob is fetched (206), and the image is whole."""
    berth(env, "run", "--name", "big", "busybox:bb", "sh", "-c", "head -c 6000000 /dev/urandom > /blob")
    berth(env, "commit", "big", "bigimg:1")
    berth(env, "push", "--tls-verify=false", "bigimg:1", f"{reg}/resume/img:1")
    data_root = tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    layer = max(data_root.rglob("data"), key=lambda p: p.stat().st_size)
    digest = "sha256:" + layer.parent.name
    size = layer.stat().st_size
    half = size // 2
    env2 = other_root(env, tmp_path, "resumed")
    partial = os.path.join(env2["BERTH_ROOT"], "blobs", "incoming", f"{digest[7:]}.partial")
    proxy = HalfwayProxy(reg, digest, half)
    try:
        p = subprocess.Popen([BERTH, "pull", "--tls-verify=false", f"{proxy.addr}/resume/img:1"], env=env2,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # the progress marker: the proxy sent half the blob and berth has part of it on disk
            assert proxy.half_sent.wait(120), "the pull never reached the blob"
            deadline = time.monotonic() + 60
            while not (os.path.exists(partial) and os.path.getsize(partial) >= 1 << 20):
                assert p.poll() is None and time.monotonic() < deadline, "berth kept nothing of the blob"
                time.sleep(0.01)
            p.send_signal(signal.SIGKILL)
        finally:
            p.kill()
            p.wait(timeout=30)
    finally:
        proxy.close()
    kept = os.path.getsize(partial)
    assert 0 < kept <= half
    log = RegistryLog(tmp_path)
    out = berth(env2, "pull", "--tls-verify=false", f"{reg}/resume/img:1")
    assert f"Resuming blob {digest[7:19]} at byte {kept}" in out.stderr
    blob_gets = [st for m, path, st in log.requests() if m == "GET" and path.endswith(f"/blobs/{digest}")]
    assert blob_gets == [206]  # the registry served the rest of the blob only
    got = berth(env2, "run", "--rm", "--network", "none", f"{reg}/resume/img:1", "sh", "-c", "wc -c < /blob")
    assert got.stdout.strip() == "6000000"
    assert os.listdir(os.path.dirname(partial)) == []


def test_resume_with_a_foreign_partial_refetches_whole(env, reg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Kept bytes that are not a prefix of the blob: detected, fetched once more whole, nothing bad kept."""
    berth(env, "run", "--name", "big", "busybox:bb", "sh", "-c", "head -c 6000000 /dev/urandom > /blob")
    berth(env, "commit", "big", "bigimg:1")
    berth(env, "push", "--tls-verify=false", "bigimg:1", f"{reg}/resume/img:1")
    data_root = tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    layer = max(data_root.rglob("data"), key=lambda p: p.stat().st_size)
    digest = "sha256:" + layer.parent.name
    env2 = other_root(env, tmp_path, "garbage")
    incoming = os.path.join(env2["BERTH_ROOT"], "blobs", "incoming")
    os.makedirs(incoming)
    with open(os.path.join(incoming, f"{digest[7:]}.partial"), "wb") as f:
        f.write(os.urandom(layer.stat().st_size // 3))
    log = RegistryLog(tmp_path)
    berth(env2, "pull", "--tls-verify=false", f"{reg}/resume/img:1")
    blob_gets = [st for m, path, st in log.requests() if m == "GET" and path.endswith(f"/blobs/{digest}")]
    assert blob_gets == [206, 200]
    got = berth(env2, "run", "--rm", "--network", "none", f"{reg}/resume/img:1", "sh", "-c", "wc -c < /blob")
    assert got.stdout.strip() == "6000000"
    assert os.listdir(incoming) == []


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
