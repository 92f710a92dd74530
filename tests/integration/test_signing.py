"""Signatures and trust policy, checked against skopeo standalone-sign/verify."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import berth, wait_for
from tests.peers import registry

pytestmark = pytest.mark.skipif(not shutil.which("gpg") or not shutil.which("skopeo"),
                                reason="gpg and skopeo are needed")


def make_key(home: str, name: str) -> tuple[str, bytes]:
    os.makedirs(home, mode=0o700, exist_ok=True)
    subprocess.run(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key",
                    f"{name} <{name}@example.invalid>", "rsa2048", "sign", "1d"], check=True, capture_output=True,
                   timeout=300)
    out = subprocess.run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    pub = subprocess.run(["gpg", "--homedir", home, "--batch", "--export", fpr], check=True,
                         capture_output=True, timeout=300).stdout
    return fpr, pub


@pytest.fixture
def keys(tmp_path):  # type: ignore[no-untyped-def]
    good_home, other_home = str(tmp_path / "gpg-good"), str(tmp_path / "gpg-other")
    good = make_key(good_home, "fleet")
    other = make_key(other_home, "intruder")
    yield {"good": (good_home, *good), "other": (other_home, *other)}
    for home in (good_home, other_home):
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=300)


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    e = dict(berth_env, BERTH_DRIVER="overlay", BERTH_SIGSTORE=str(tmp_path / "sigstore"),
             BERTH_POLICY=str(tmp_path / "no-policy.json"))
    (tmp_path / "no-policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    berth(e, "import", "-c", 'CMD ["echo", "trusted"]', busybox_tar, "busybox:bb")
    return e


def policy(path, key: bytes, **identity: object) -> str:  # type: ignore[no-untyped-def]
    req: dict[str, object] = {"type": "signedBy", "keyType": "GPGKeys", "keyData": base64.b64encode(key).decode()}
    if identity:
        req["signedIdentity"] = identity
    path.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {"": [req]}}}))
    return str(path)


def test_sign_verify_interop_and_policy(env, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home, fpr, pub = keys["good"]
    ohome, ofpr, opub = keys["other"]
    with registry(str(tmp_path / "reg")) as reg:
        ref = f"{reg}/team/bb:v1"
        berth(env, "tag", "busybox:bb", ref)
        sigpath = berth(env, "sign", "--sign-by", fpr, "--gpg-home", home, ref).stdout.strip()
        assert sigpath.endswith("signature-1") and "team/bb@sha256=" in sigpath
        digest = berth(env, "push", "--tls-verify=false", ref).stdout.strip()
        manifest = tmp_path / "manifest.json"
        manifest.write_bytes(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                                            check=True, capture_output=True, timeout=300).stdout)
        # berth's signature passes skopeo
        pubfile = tmp_path / "pub.gpg"
        pubfile.write_bytes(pub)
        cp = subprocess.run(["skopeo", "standalone-verify", str(manifest), ref, fpr, sigpath], capture_output=True,
                            text=True, env=dict(os.environ, GNUPGHOME=home), timeout=300)
        assert cp.returncode == 0, cp.stderr
        assert digest in cp.stdout
        # skopeo's signature passes berth
        ref2 = f"{reg}/team/bb:v2"
        berth(env, "push", "--tls-verify=false", "busybox:bb", ref2)
        skosig = tmp_path / "skopeo.sig"
        subprocess.run(["skopeo", "standalone-sign", str(manifest), ref2, fpr, "--output", str(skosig)], check=True,
                       capture_output=True, env=dict(os.environ, GNUPGHOME=home), timeout=300)
        sigdir = os.path.join(env["BERTH_SIGSTORE"], f"team/bb@sha256={digest[7:]}")
        shutil.copy(str(skosig), os.path.join(sigdir, "signature-2"))
        env_p = dict(env, BERTH_POLICY=policy(tmp_path / "policy.json", pub))
        berth(env, "tag", "busybox:bb", ref2)
        out = berth(env_p, "verify", ref2).stdout
        assert "accepted" in out and fpr in out

        # push --sign-by signs the destination name
        ref4 = f"{reg}/team/signed-on-push:v1"
        berth(env, "push", "--tls-verify=false", "--sign-by", fpr, "--gpg-home", home, "busybox:bb", ref4)
        assert "accepted" in berth(env_p, "verify", ref4).stdout
        # signed -> save -> load (another root, own sigstore) -> push -> pull (a third root): still verifies
        archive = str(tmp_path / "signed.tar")
        berth(env, "save", "-q", "-o", archive, ref)
        env_l = dict(env_p, BERTH_ROOT=str(tmp_path / "rl" / "root"), BERTH_RUNROOT=str(tmp_path / "rl" / "run"),
                     BERTH_SIGSTORE=str(tmp_path / "rl" / "sigstore"))
        assert f"Loaded image: {ref}" in berth(env_l, "load", "-i", archive).stdout
        assert "accepted" in berth(env_l, "verify", ref).stdout
        ref5 = f"{reg}/moved/bb:v1"
        berth(env_l, "tag", ref, ref5)
        pushed = berth(env_l, "push", "--tls-verify=false", ref, ref5).stdout.strip()
        assert pushed == digest
        env_t = dict(env_l, BERTH_ROOT=str(tmp_path / "rt" / "root"), BERTH_RUNROOT=str(tmp_path / "rt" / "run"))
        berth(env_t, "pull", "--tls-verify=false", ref)
        assert berth(env_t, "run", "--rm", ref).stdout == "trusted\n"
        # an unsigned archive is refused on load under the policy, and nothing of it stays
        berth(env, "tag", "busybox:bb", "unsigned/thing:v1")
        plain = str(tmp_path / "plain.tar")
        berth(env, "save", "-q", "-o", plain, "unsigned/thing:v1")
        env_u = dict(env_p, BERTH_ROOT=str(tmp_path / "ru" / "root"), BERTH_RUNROOT=str(tmp_path / "ru" / "run"))
        cp = berth(env_u, "load", "-i", plain, check=False)
        assert cp.returncode == 1 and "signature" in cp.stderr
        assert json.loads(berth(env_u, "images", "--format", "json").stdout) == []
        # with signedBy: a signed image pulls and runs on another root sharing the sigstore
        env2 = dict(env_p, BERTH_ROOT=str(tmp_path / "r2" / "root"), BERTH_RUNROOT=str(tmp_path / "r2" / "run"))
        berth(env2, "pull", "--tls-verify=false", ref)
        assert berth(env2, "run", "--rm", ref).stdout == "trusted\n"

        def refused(e: dict[str, str], image: str, text: str) -> None:
            cp = berth(e, "pull", "--tls-verify=false", image, check=False)
            assert cp.returncode == 1, cp.stdout
            assert text in cp.stderr and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
            root = e["BERTH_ROOT"]
            assert json.loads(berth(e, "images", "--format", "json").stdout) == [] or image not in \
                berth(e, "images").stdout
            blobdir = os.path.join(root, "blobs", "sha256")
            assert not os.path.isdir(blobdir) or not [n for n in os.listdir(blobdir) if n.startswith(".tmp")]

        env3 = dict(env_p, BERTH_ROOT=str(tmp_path / "r3" / "root"), BERTH_RUNROOT=str(tmp_path / "r3" / "run"))
        # unsigned
        berth(env, "run", "--name", "c", "busybox:bb", "sh", "-c", "echo changed > /f")
        berth(env, "commit", "c", f"{reg}/team/unsigned:v1")
        berth(env, "push", "--tls-verify=false", f"{reg}/team/unsigned:v1")
        refused(env3, f"{reg}/team/unsigned:v1", "has none")
        # a signature for another manifest (the image was changed after signing)
        udigest = berth(env, "push", "--tls-verify=false", f"{reg}/team/unsigned:v1").stdout.strip()
        tdir = os.path.join(env["BERTH_SIGSTORE"], f"team/unsigned@sha256={udigest[7:]}")
        os.makedirs(tdir)
        shutil.copy(sigpath, os.path.join(tdir, "signature-1"))
        refused(env3, f"{reg}/team/unsigned:v1", "not " + udigest)
        # the wrong key
        env_o = dict(env3, BERTH_POLICY=policy(tmp_path / "other.json", opub))
        refused(env_o, ref, "does not trust")
        # the wrong reference: a valid signature for team/bb:v1 used for team/bb:v3
        ref3 = f"{reg}/team/bb:v3"
        berth(env, "tag", "busybox:bb", ref3)
        berth(env, "push", "--tls-verify=false", ref3)
        refused(env3, ref3, "not " + ref3)
        # cleartext signature
        shutil.rmtree(tdir)
        os.makedirs(tdir)
        clear = subprocess.run(["gpg", "--homedir", home, "--batch", "--clearsign", "--output", "-"],
                               input=b"hello", check=True, capture_output=True, timeout=300).stdout
        with open(os.path.join(tdir, "signature-1"), "wb") as f:
            f.write(clear)
        refused(env3, f"{reg}/team/unsigned:v1", "cleartext")
        # run refuses an unsigned local image under the policy
        cp = berth(env_p, "run", "--rm", f"{reg}/team/unsigned:v1", check=False)
        assert cp.returncode == 125 and "signature" in cp.stderr


def test_invalid_policy_stops_everything(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything", "surprise": 1}]}))
    cp = berth(dict(env, BERTH_POLICY=str(bad)), "run", "--rm", "busybox:bb", check=False)
    assert cp.returncode == 125 and "unknown field" in cp.stderr
    bad.write_text("{not json")
    cp = berth(dict(env, BERTH_POLICY=str(bad)), "verify", "busybox:bb", check=False)
    assert cp.returncode == 1 and "not valid JSON" in cp.stderr
    reject = tmp_path / "reject.json"
    reject.write_text(json.dumps({"default": [{"type": "reject"}]}))
    cp = berth(dict(env, BERTH_POLICY=str(reject)), "run", "--rm", "busybox:bb", check=False)
    assert cp.returncode == 125 and "rejects" in cp.stderr


def test_expired_and_revoked_keys_are_refused_and_key_paths(env, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home, fpr, pub = keys["good"]
    ref = "registry.example:5000/team/bb:v1"
    berth(env, "tag", "busybox:bb", ref)
    berth(env, "sign", "--sign-by", fpr, "--gpg-home", home, ref)
    # keyPaths with the good key: accepted
    keyfile = tmp_path / "good.gpg"
    keyfile.write_bytes(pub)
    pol = tmp_path / "paths.json"
    pol.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": [str(keyfile)]}]}))
    assert "accepted" in berth(dict(env, BERTH_POLICY=str(pol)), "verify", ref).stdout
    sigs = json.loads(berth(env, "inspect", ref).stdout)[0]["Berth"]["Signatures"]
    assert len(sigs) == 1 and sigs[0]["Identity"] == ref and os.path.exists(sigs[0]["Path"])
    # exactReference identity that does not match
    pol2 = tmp_path / "exact.json"
    pol2.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(keyfile),
                                             "signedIdentity": {"type": "exactReference",
                                                                "dockerReference": "registry.example:5000/x/y:z"}}]}))
    cp = berth(dict(env, BERTH_POLICY=str(pol2)), "verify", ref, check=False)
    assert cp.returncode == 1 and "not registry.example:5000/team/bb:v1" in cp.stderr
    # the key expires: the same signature is refused
    subprocess.run(["gpg", "--homedir", home, "--batch", "--quick-set-expire", fpr, "seconds=1"], check=True,
                   capture_output=True, timeout=300)
    wait_for(lambda: subprocess.run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys", fpr],
                                    capture_output=True, text=True, timeout=60).stdout.count("\npub:e:") == 1,
             what="gpg to see the key expired")
    expired = subprocess.run(["gpg", "--homedir", home, "--batch", "--export", fpr], check=True,
                             capture_output=True, timeout=300).stdout
    cp = berth(dict(env, BERTH_POLICY=policy(tmp_path / "exp.json", expired)), "verify", ref, check=False)
    assert cp.returncode == 1 and "expired" in cp.stderr
    # the key is revoked (gpg wrote a revocation certificate when it made the key)
    subprocess.run(["gpg", "--homedir", home, "--batch", "--quick-set-expire", fpr, "0"], check=True,
                   capture_output=True, timeout=300)
    rev = open(os.path.join(home, "openpgp-revocs.d", f"{fpr}.rev")).read().replace(":-----BEGIN", "-----BEGIN")
    subprocess.run(["gpg", "--homedir", home, "--batch", "--import"], input=rev.encode(), check=True,
                   capture_output=True, timeout=300)
    revoked = subprocess.run(["gpg", "--homedir", home, "--batch", "--export", fpr], check=True,
                             capture_output=True, timeout=300).stdout
    cp = berth(dict(env, BERTH_POLICY=policy(tmp_path / "rev.json", revoked)), "verify", ref, check=False)
    assert cp.returncode == 1 and "revoked" in cp.stderr


def test_signatures_read_from_an_http_lookaside(env, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import functools
    import http.server
    import threading

    home, fpr, pub = keys["good"]
    ref = "registry.example:5000/team/web:v1"
    berth(env, "tag", "busybox:bb", ref)
    berth(env, "sign", "--sign-by", fpr, "--gpg-home", home, ref)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=env["BERTH_SIGSTORE"])
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        env_h = dict(env, BERTH_SIGSTORE=url, BERTH_POLICY=policy(tmp_path / "p.json", pub))
        assert "accepted" in berth(env_h, "verify", ref).stdout
        cp = berth(env_h, "sign", "--sign-by", fpr, "--gpg-home", home, ref, check=False)
        assert cp.returncode == 1 and "read-only" in cp.stderr
        berth(env, "tag", "busybox:bb", "registry.example:5000/team/other:v1")
        cp = berth(env_h, "verify", "registry.example:5000/team/other:v1", check=False)
        assert cp.returncode == 1 and "has none" in cp.stderr
    finally:
        server.shutdown()
        server.server_close()
