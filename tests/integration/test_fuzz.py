"""Property-based fuzzing of every input berth parses (issue 18 item 16): desired-state files,
docker-archive and OCI archives (truncations, byte flips, JSON field mutations, with and without
the digests re-pointed so deeper checks are reached), image references, CLI flag values, trust
policies and signatures. Whatever the input: the exit code is success or berth's error code, the
error is exactly one line and never a traceback or an internal error, and a refused input leaves
nothing half-made in the store (the files under the root, the image list, `storage check`).

The commands run in-process through berth.cli.main.main (the same code as the `berth` script,
many times faster than a process per example), on a vfs root: nothing is mounted, no container
runs. `make test` runs few examples, derandomized (the same ones every run);
`make test-fuzz` runs BERTH_FUZZ_EXAMPLES of each (default there: 2000)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (make setup installs it)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from berth import config as config_keys  # noqa: E402
from berth.cli.main import main  # noqa: E402
from berth.container import options  # noqa: E402
from berth.declare import schema  # noqa: E402
from tests import archive_mutations as mut  # noqa: E402

EXAMPLES = int(os.environ.get("BERTH_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, derandomize="BERTH_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                database=None, suppress_health_check=list(HealthCheck), print_blob=True)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Root:
    """A vfs root driven in-process."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.root = os.path.join(base, "root")
        with open(os.path.join(base, "none.yml"), "w", encoding="utf-8") as f:
            f.write("{}\n")
        self.flags = ["--root", self.root, "--runroot", os.path.join(base, "run"), "--config",
                      os.path.join(base, "none.yml"), "--driver", "vfs"]

    def run(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([*self.flags, *argv])
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 2
        return Result(code, out.getvalue(), err.getvalue())

    def files(self) -> set[str]:
        found = set()
        for dirpath, dirs, files in os.walk(self.root):
            for n in dirs + files:
                p = os.path.relpath(os.path.join(dirpath, n), self.root)
                if not p.startswith(("berth.db", "locks")):
                    found.add(p)
        return found

    def state(self) -> tuple[set[str], str, str]:
        return self.files(), self.run("images", "-a", "-q").out, self.run("ps", "-a", "-q").out

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.base, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


def one_line_error(r: Result, codes: tuple[int, ...], what: object) -> None:
    """The property every input must keep."""
    assert r.code in codes, (what, r)
    assert "Traceback" not in r.err and "internal error" not in r.err, (what, r.err)
    if r.code != 0:
        assert len(r.err.splitlines()) == 1 and r.err.startswith("berth: error: "), (what, r.err)


def tiny_rootfs() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data, mode in (("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", 0o644),
                                 ("etc/group", b"root:x:0:\nstaff:x:50:app\n", 0o644),
                                 ("bin/true", b"#!/bin/sh\n", 0o755)):
            m = tarfile.TarInfo(name)
            m.size, m.mode, m.mtime = len(data), mode, 1700000000
            t.addfile(m, io.BytesIO(data))
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "true", 1700000000
        t.addfile(link)
    return out.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    r = Root(str(tmp_path_factory.mktemp("fuzz")))
    rootfs = r.file("rootfs.tar", tiny_rootfs())
    assert r.run("import", rootfs, "bb:fuzz").code == 0
    yield r
    for cid in r.run("ps", "-a", "-q").out.split():
        r.run("rm", "-f", cid)


@pytest.fixture(scope="module")
def archives(root: Root) -> dict[str, bytes]:
    """The tiny image as a docker-archive and an OCI archive, and a store without it."""
    out = {}
    for fmt in ("docker-archive", "oci-archive"):
        path = os.path.join(root.base, fmt + ".tar")
        assert root.run("save", "-q", "--format", fmt, "-o", path, "bb:fuzz").code == 0
        with open(path, "rb") as f:
            out[fmt] = f.read()
    return out


# ---------------------------------------------------------------- JSON values and mutations
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=10)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    if value is _DROP:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return doc


_DROP = object()


@st.composite
def json_mutation(draw: st.DrawFn, doc: Any) -> Any:
    path = draw(st.sampled_from(_paths(doc)))
    value = draw(st.one_of(JSON, st.just(_DROP) if path else JSON))
    return _set(doc, path, value)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _with_members(archive: bytes, changes: dict[str, bytes | None], renames: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for m, data in mut.members(archive):
            if m.name in changes:
                data = changes[m.name]
                if data is None:
                    continue
            m.name = renames.get(m.name, m.name)
            if data is None:
                t.addfile(m)
            else:
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))
    return out.getvalue()


@st.composite
def docker_archive_mutant(draw: st.DrawFn, da: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "json"]))
    if kind == "truncate":
        return da[:draw(st.integers(0, len(da) - 1))]
    if kind == "flip":
        for at in draw(st.lists(st.integers(0, len(da) - 1), min_size=1, max_size=4)):
            da = mut.flip(da, at)
        return da
    by_name = {m.name: d for m, d in mut.members(da) if d is not None}
    name = draw(st.sampled_from(sorted(n for n in by_name if n.endswith(".json") or n == "repositories")))
    new = draw(json_mutation(json.loads(by_name[name])))  # type: ignore[arg-type]
    return _with_members(da, {name: json.dumps(new).encode()}, {})


@st.composite
def oci_mutant(draw: st.DrawFn, oci: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "json", "json-repointed"]))
    if kind == "truncate":
        return oci[:draw(st.integers(0, len(oci) - 1))]
    if kind == "flip":
        for at in draw(st.lists(st.integers(0, len(oci) - 1), min_size=1, max_size=4)):
            oci = mut.flip(oci, at)
        return oci
    blobs = mut.oci_blobs(oci)
    by_name = {m.name: d for m, d in mut.members(oci) if d is not None}
    which = draw(st.sampled_from(["index.json", "manifest", "config"]))
    name = which if which == "index.json" else blobs[which]
    new = json.dumps(draw(json_mutation(json.loads(by_name[name])))).encode()  # type: ignore[arg-type]
    if kind == "json" or which == "index.json":
        return _with_members(oci, {name: new}, {})
    # re-point the digests up to the index, so the mutated document is read, not refused for its digest
    changes: dict[str, bytes | None] = {name: new}
    renames = {name: "blobs/sha256/" + _digest(new)[7:]}
    manifest = json.loads(by_name[blobs["manifest"]])  # type: ignore[arg-type]
    if which == "config":
        manifest["config"].update(digest=_digest(new), size=len(new))
        mdata = json.dumps(manifest).encode()
        changes[blobs["manifest"]] = mdata
        renames[blobs["manifest"]] = "blobs/sha256/" + _digest(mdata)[7:]
    else:
        mdata = new
    index = json.loads(by_name["index.json"])  # type: ignore[arg-type]
    index["manifests"][0].update(digest=_digest(mdata), size=len(mdata))
    changes["index.json"] = json.dumps(index).encode()
    return _with_members(oci, changes, renames)


def loads_or_refuses_cleanly(root: Root, data: bytes, argv: list[str]) -> None:
    path = root.file("fuzz.tar", data)
    before = root.state()
    r = root.run(*argv, path)
    one_line_error(r, (0, 1), argv)
    if r.code == 0:  # a harmless change (padding, an unused field): take it out again
        for ref in root.run("images", "-a", "-q").out.split():
            if ref not in before[1]:
                root.run("rmi", "-f", ref)
        return
    assert root.state() == before, ("half-made", argv, r.err)
    check = root.run("storage", "check")
    assert check.code == 0, check


def test_fuzz_docker_archives(root: Root, archives: dict[str, bytes]) -> None:
    root.run("rmi", "bb:fuzz")  # loads must bring every layer themselves

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        loads_or_refuses_cleanly(root, data.draw(docker_archive_mutant(archives["docker-archive"])),
                                 ["load", "-q", "-i"])

    try:
        run()
    finally:
        root.run("load", "-q", "-i", os.path.join(root.base, "docker-archive.tar"))


def test_fuzz_oci_archives(root: Root, archives: dict[str, bytes]) -> None:
    root.run("rmi", "bb:fuzz")

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        loads_or_refuses_cleanly(root, data.draw(oci_mutant(archives["oci-archive"])), ["load", "-q", "-i"])

    try:
        run()
    finally:
        root.run("load", "-q", "-i", os.path.join(root.base, "docker-archive.tar"))


@FUZZ
@given(data=st.data())
def test_fuzz_import(root: Root, data: st.DataObject) -> None:
    rootfs = tiny_rootfs()
    kind = data.draw(st.sampled_from(["truncate", "flip", "bytes"]))
    if kind == "truncate":
        blob = rootfs[:data.draw(st.integers(0, len(rootfs) - 1))]
    elif kind == "flip":
        blob = rootfs
        for at in data.draw(st.lists(st.integers(0, len(rootfs) - 1), min_size=1, max_size=4)):
            blob = mut.flip(blob, at)
    else:
        blob = data.draw(st.binary(max_size=3000))
    path = root.file("import.tar", blob)
    before = root.state()
    r = root.run("import", path, "fuzz:import")
    one_line_error(r, (0, 1), kind)
    if r.code == 0:
        root.run("rmi", "-f", "fuzz:import")
    else:
        assert root.state() == before


# ---------------------------------------------------------------- desired-state files
SCALAR = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30)
VALUE = st.recursive(SCALAR, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(sorted(schema.CONTAINER_KEYS)), kids, max_size=3), max_leaves=8)
CONTAINER = st.dictionaries(st.sampled_from(sorted(schema.CONTAINER_KEYS)) | st.text(max_size=8), VALUE, max_size=6)
IMAGE = st.dictionaries(st.sampled_from(sorted(schema.IMAGE_KEYS)) | st.text(max_size=8), VALUE, max_size=4)
DOC = st.dictionaries(st.sampled_from(["images", "containers", "volumes"]) | st.text(max_size=8),
                      st.lists(CONTAINER, max_size=3) | st.lists(IMAGE, max_size=3) | VALUE, max_size=3)
VALID = ("containers:\n  - name: web\n    image: bb:fuzz\n    command: [sleep, '9']\n    memory: 64m\n"
         "    env: {A: b}\n    ports: ['8080:80']\n    user: app\n    restart: on-failure:3\n"
         "images:\n  - name: bb:other\n    pull: bb:other\n    tls_verify: false\n")


@st.composite
def state_text(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["structured", "edited", "bytes"]))
    if kind == "structured":
        return yaml.safe_dump(draw(DOC), allow_unicode=True).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=5)) + text[at + draw(st.integers(0, 5)):]
    return text.encode("utf-8", errors="surrogatepass")


@FUZZ
@given(text=state_text())
def test_fuzz_state_files(root: Root, text: bytes) -> None:
    path = root.file("state.yml", text)
    before = root.state()
    one_line_error(root.run("plan", "-f", path), (0, 1), text)
    assert root.state() == before  # planning writes nothing


# ---------------------------------------------------------------- references, flags, policies, signatures
REF = st.text(alphabet="abcAZ019._-/:@+ \t", max_size=40) | st.text(max_size=20) | st.builds(
    lambda h, p, r, t: f"{h}{p}/{r}:{t}", st.sampled_from(["", "localhost", "reg.example", "[::1]"]),
    st.sampled_from(["", ":5000", ":99999", ":x"]), st.text("ab/._-", max_size=12), st.text("a1.-_", max_size=8))


@FUZZ
@given(ref=REF.filter(lambda r: not r.startswith("-")),  # argparse's: an option
       verb=st.sampled_from(["tag", "inspect", "history", "rmi", "save"]))
def test_fuzz_references(root: Root, ref: str, verb: str) -> None:
    argv = {"tag": ["tag", "bb:fuzz", ref], "inspect": ["inspect", "--type", "image", ref],
            "history": ["history", ref], "rmi": ["rmi", ref],
            "save": ["save", "-q", "-o", os.path.join(root.base, "out.tar"), ref]}[verb]
    before = root.state()
    r = root.run(*argv)
    one_line_error(r, (0, 1), argv)
    if verb == "tag" and r.code == 0:
        root.run("rmi", ref)  # the tag only
    if verb == "rmi" and r.code == 0:
        root.run("load", "-q", "-i", os.path.join(root.base, "docker-archive.tar"))
    if r.code != 0:
        assert root.state() == before


VALUED_FLAGS = sorted(o.cli[-1] for o in options.OPTIONS
                      if o.cli and o.cli[0].startswith("-") and o.kind != "bool" and o.name not in ("network",))
FLAG_VALUE = st.text(max_size=30).filter(lambda v: "\0" not in v) | st.sampled_from(
    ["-1", "0", "1", "99999999999999999999", "1e309", "nan", "-5", "64m", "1g", "a=b", "a", ":", "/x:/y:ro",
     "/x:size=1m", "app:staff", "80", "1.2.3.4:80:80/udp", "type=bind,source=/tmp,target=/t", "size=1g"])


@FUZZ
@given(flags=st.lists(st.tuples(st.sampled_from(VALUED_FLAGS), FLAG_VALUE), min_size=1, max_size=3))
def test_fuzz_container_flags(root: Root, flags: list[tuple[str, str]]) -> None:
    argv = ["create", "--network", "none"] + [f"{f}={v}" for f, v in flags] + ["bb:fuzz", "true"]
    r = root.run(*argv)
    one_line_error(r, (0, 1, 125), argv)  # 125: a value refused; 1: create's other errors (as docker)
    if r.code == 0:
        assert root.run("rm", "-f", r.out.strip()).code == 0


@pytest.fixture(scope="module")
def gpg_key(root: Root) -> str:
    """A signing key's public half (exported to a file a signedBy policy names)."""
    home = os.path.join(root.base, "gnupg")
    os.makedirs(home, mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key", "fuzz <fuzz@x>",
                    "ed25519", "sign", "never"], check=True, capture_output=True, timeout=60)
    pub = subprocess.run(["gpg", "--batch", "--homedir", home, "--export"], check=True, capture_output=True,
                         timeout=60).stdout
    path = root.file("key.gpg", pub)
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=60)
    return path


POLICY = st.recursive(
    st.sampled_from([{"type": "insecureAcceptAnything"}, {"type": "reject"},
                     {"type": "signedBy", "keyType": "GPGKeys", "keyData": base64.b64encode(b"junk").decode()}])
    | JSON,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["default", "transports", "docker", "", "type", "keyType", "keyPath", "signedIdentity",
                         "dockerReference", "prefix"]) | st.text(max_size=6), kids, max_size=3),
    max_leaves=8)


@FUZZ
@given(policy=POLICY | st.binary(max_size=200))
def test_fuzz_policies(root: Root, policy: Any) -> None:
    data = policy if isinstance(policy, bytes) else json.dumps(policy).encode()
    path = root.file("policy.json", data)
    one_line_error(root.run("trust", "show", "--policy", path), (0, 1), policy)
    one_line_error(root.run("verify", "--policy", path, "bb:fuzz"), (0, 1), policy)


@FUZZ
@given(sig=st.binary(max_size=400), identity=st.sampled_from(["matchRepoDigestOrExact", "matchRepository"]))
def test_fuzz_signatures(root: Root, gpg_key: str, sig: bytes, identity: str) -> None:
    from berth.image.signing import Lookaside, normalize

    policy = root.file("signed.json", json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys",
                                                              "keyPath": gpg_key,
                                                              "signedIdentity": {"type": identity}}]}).encode())
    sigstore = os.path.join(root.base, "sigstore")
    digest = _manifest_digest(root)
    d = Lookaside(sigstore).dir_for(normalize("bb:fuzz"), digest)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "signature-1"), "wb") as f:
        f.write(sig)
    r = root.run("verify", "--policy", policy, "--sigstore", sigstore, "bb:fuzz")
    one_line_error(r, (1,), sig)  # random bytes are never a good signature


def _manifest_digest(root: Root) -> str:
    from berth import config
    from berth.engine import Engine

    with Engine(config.load(os.path.join(root.base, "none.yml"), root.root, os.path.join(root.base, "run"), "vfs",
                            None)) as e:
        return e.manifest_digest(e.images.resolve("bb:fuzz").id)


CONFIG = st.dictionaries(st.sampled_from(sorted(config_keys.CONFIG_KEYS)) | st.text(max_size=6), VALUE, max_size=4)


@FUZZ
@given(text=st.builds(lambda d: yaml.safe_dump(d, allow_unicode=True).encode(), CONFIG) | st.binary(max_size=300))
def test_fuzz_config_files(root: Root, text: bytes) -> None:
    """berth's own config file (a fresh root each time: the config may name another root or driver)."""
    path = root.file("config.yml", text)
    fresh = os.path.join(root.base, "fresh")
    try:
        r = root.run("--config", path, "--root", fresh, "--runroot", fresh + "-run", "images")
    finally:
        for d in (fresh, fresh + "-run"):
            shutil.rmtree(d, ignore_errors=True)
    one_line_error(r, (0, 1), text)
