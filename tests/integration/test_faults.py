"""Every mutating command killed with SIGKILL at its fault points (tests/faultharness.py): after
each kill `storage check` is clean, the host holds nothing a running container does not account
for, and the command succeeds when repeated; at the end, removing everything leaves nothing.

`make test` kills each command at a few moments spread over its run; `make test-faults`
(BERTH_FAULTS_LONG=1) at every one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Callable

import pytest

from tests.conftest import BERTH, BERTH_TIMEOUT, berth
from tests.faultharness import Case, assert_consistent, assert_empty, exercise, moments, spool_leftovers
from tests.peers import registry

pytestmark = pytest.mark.timeout(1800)
RUN = ["--network", "none"]


def _exists(env: dict[str, str], *what: str) -> bool:
    return berth(env, *what, check=False).returncode == 0


def _small_tar(env: dict[str, str], k: int) -> str:
    """A one-file rootfs tar whose content depends on k (each import makes a new layer)."""
    d = os.path.dirname(env["BERTH_ROOT"])
    path = os.path.join(d, f"small-{k}.tar")
    src = os.path.join(d, f"small-{k}")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "k"), "w") as f:
        f.write(f"{k}\n" * 1000)
    with tarfile.open(path, "w") as t:
        t.add(src, arcname=".")
    return path


def _once(fn):  # type: ignore[no-untyped-def]
    """setup that runs before the first run only (k == 0)."""
    def setup(env: dict[str, str], k: int) -> None:
        if k == 0:
            fn(env)
    return setup


def _run_again(env: dict[str, str], k: int) -> None:
    if _exists(env, "inspect", f"r{k}"):
        berth(env, "start", f"r{k}")  # an interrupted start is undone: start works
    else:
        berth(env, "run", "-d", *RUN, "--name", f"r{k}", "busybox", "sleep", "1000")
    berth(env, "rm", "-f", f"r{k}")


def _archive(env: dict[str, str]) -> str:
    return os.path.join(os.path.dirname(env["BERTH_ROOT"]), "ld.tar")


def _make_archive(env: dict[str, str]) -> None:
    berth(env, "import", _small_tar(env, 999), "ld:1")
    berth(env, "save", "-o", _archive(env), "ld:1")
    berth(env, "rmi", "ld:1")


def _unload(env: dict[str, str], k: int) -> None:
    if k == 0:
        _make_archive(env)
    berth(env, "rmi", "ld:1", check=False)


def _load_again(env: dict[str, str], k: int) -> None:
    berth(env, "load", "-i", _archive(env))
    assert "ld" in berth(env, "images").stdout


def _context(env: dict[str, str], k: int) -> None:
    d = os.path.join(os.path.dirname(env["BERTH_ROOT"]), f"ctx{k}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write(f"FROM busybox\nRUN echo {k} > /k\nCOPY . /ctx\n")


def _ctx(env_root_parent: str, k: int) -> str:
    return os.path.join(env_root_parent, f"ctx{k}")


def _volume_with_data(env: dict[str, str], k: int) -> None:
    berth(env, "volume", "create", f"w{k}")
    data = os.path.join(env["BERTH_ROOT"], "volumes", f"w{k}", "_data")
    for i in range(3):
        os.makedirs(os.path.join(data, f"d{i}"), exist_ok=True)
        with open(os.path.join(data, f"d{i}", "f"), "w") as f:
            f.write(f"{i}\n")


def _cp_source(base: str) -> str:
    """A small host tree to copy into a container."""
    src = os.path.join(base, "cpsrc")
    for i in range(3):
        os.makedirs(os.path.join(src, f"d{i}"), exist_ok=True)
        with open(os.path.join(src, f"d{i}", "f"), "w") as f:
            f.write(f"{i}\n")
    return src


def _cp_in_again(env: dict[str, str], k: int) -> None:
    base = os.path.dirname(env["BERTH_ROOT"])
    berth(env, "cp", _cp_source(base) + "/.", f"cpc:/in{k}")
    berth(env, "cp", f"cpc:/in{k}/d2/f", os.path.join(base, f"back-{k}"))
    with open(os.path.join(base, f"back-{k}")) as f:
        assert f.read() == "2\n"


def _probe_runtimes(env: dict[str, str]) -> None:
    """The runtime probe that the first command on a runroot makes (its trial containers, then
    remembered): made before the harness counts a command's points, so that every run passes
    the same points and every moment's kill lands (test_runtime_probe_killed_leaves_no_trial_bundle
    kills the probe itself)."""
    os.makedirs(env["BERTH_RUNROOT"], exist_ok=True)
    berth(env, "info")


CASES = [
    Case("run", lambda k: ["run", "-d", *RUN, "--name", f"r{k}", "busybox", "sleep", "1000"], again=_run_again),
    Case("start", lambda k: ["start", f"s{k}"],
         setup=lambda env, k: berth(env, "create", *RUN, "--name", f"s{k}", "busybox", "sleep", "1000") and None,
         again=lambda env, k: berth(env, "start", f"s{k}") and None),
    Case("create", lambda k: ["create", *RUN, "--name", f"c{k}", "busybox", "true"],
         again=lambda env, k: None if _exists(env, "inspect", f"c{k}")
         else berth(env, "create", *RUN, "--name", f"c{k}", "busybox", "true") and None),
    Case("commit", lambda k: ["commit", "cc", f"x:{k}"],
         setup=_once(lambda env: berth(env, "run", *RUN, "--name", "cc", "busybox", "sh", "-c",
                                       "echo hi > /f; mkdir -p /d; echo x > /d/x"))),
    Case("snapshot-create", lambda k: ["snapshot", "create", "sn", f"s{k}"],
         setup=_once(lambda env: berth(env, "create", *RUN, "--name", "sn", "busybox", "true")),
         again=lambda env, k: None if _exists(env, "snapshot", "ls", "sn") and f"s{k}" in
         berth(env, "snapshot", "ls", "sn").stdout else berth(env, "snapshot", "create", "sn", f"s{k}") and None),
    Case("snapshot-restore", lambda k: ["snapshot", "restore", "sr", "base"],
         setup=_once(lambda env: (berth(env, "create", *RUN, "--name", "sr", "busybox", "true"),
                                  berth(env, "snapshot", "create", "sr", "base")))),
    Case("import", lambda k: ["import", "IMPORT", f"imp:{k}"]),
    Case("load-file", lambda k: ["load", "-i", "ARCHIVE"], setup=_unload, again=_load_again),
    Case("load-stdin", lambda k: ["load"], setup=_unload, again=_load_again),
    Case("rm", lambda k: ["rm", "-f", f"d{k}"],
         setup=lambda env, k: berth(env, "run", "-d", *RUN, "--name", f"d{k}", "busybox", "sleep", "1000") and None,
         again=lambda env, k: berth(env, "rm", "-f", f"d{k}") and None if _exists(env, "inspect", f"d{k}") else None),
    Case("rmi", lambda k: ["rmi", f"m:{k}"],
         setup=lambda env, k: berth(env, "import", _small_tar(env, k), f"m:{k}") and None,
         again=lambda env, k: berth(env, "rmi", f"m:{k}") and None if _exists(env, "inspect", f"m:{k}") else None),
    Case("build", lambda k: ["build", "-q", "-t", f"b:{k}", "CTX"], setup=_context),
    Case("network-create", lambda k: ["network", "create", f"n{k}"],
         again=lambda env, k: None if _exists(env, "network", "inspect", f"n{k}")
         else berth(env, "network", "create", f"n{k}") and None),
    Case("network-rm", lambda k: ["network", "rm", f"m{k}"],
         setup=lambda env, k: berth(env, "network", "create", f"m{k}") and None,
         again=lambda env, k: berth(env, "network", "rm", f"m{k}") and None
         if _exists(env, "network", "inspect", f"m{k}") else None),
    Case("volume-create", lambda k: ["volume", "create", f"v{k}"]),
    Case("volume-rm", lambda k: ["volume", "rm", f"w{k}"], setup=_volume_with_data,
         again=lambda env, k: berth(env, "volume", "rm", f"w{k}") and None
         if _exists(env, "volume", "inspect", f"w{k}") else None),
    Case("cp-in", lambda k: ["cp", "CPSRC", f"cpc:/in{k}"],
         setup=_once(lambda env: berth(env, "create", *RUN, "--name", "cpc", "busybox", "true")), again=_cp_in_again),
    Case("cp-out", lambda k: ["cp", "cpc:/etc", "CPDST"],
         setup=_once(lambda env: berth(env, "create", *RUN, "--name", "cpc", "busybox", "true"))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kill_every_command(berth_env: dict[str, str], busybox_tar: str, case: Case) -> None:
    env = dict(berth_env, BERTH_DRIVER=case.driver)
    base = os.path.dirname(env["BERTH_ROOT"])
    berth(env, "import", busybox_tar, "busybox")
    _probe_runtimes(env)
    argv = case.argv

    def resolved(k: int) -> list[str]:
        out = []
        for a in argv(k):
            a = {"IMPORT": busybox_tar, "ARCHIVE": _archive(env), "CPSRC": _cp_source(base) + "/.",
                 "CPDST": os.path.join(base, f"out-{k}")}.get(a, a)
            out.append(_ctx(base, k) if a == "CTX" else a)
        return out

    case.argv = resolved
    if case.name == "load-stdin":
        case.stdin = _archive(env)
    n, kills = exercise(env, case)
    print(f"{case.name}: {n} fault points, killed at {kills}")  # the figures of the run (pytest -rP)
    assert kills == len(moments(n)), f"{case.name}: {kills} of {len(moments(n))} kills landed in {n} points"
    assert_empty(env, case.driver)


@pytest.fixture
def reg(tmp_path) -> str:  # type: ignore[no-untyped-def]
    with registry(str(tmp_path / "registry")) as r:
        yield r


def _unpull(reg: str) -> Callable[[dict[str, str], int], None]:
    def setup(env: dict[str, str], k: int) -> None:
        if k == 0:
            berth(env, "push", "--tls-verify=false", "busybox", f"{reg}/faults/bb:1")
        # the pull must fetch and unpack again: the image and every blob it had go first
        berth(env, "rmi", f"{reg}/faults/bb:1", check=False)
        berth(env, "rmi", "busybox", check=False)
    return setup


def _pull_again(reg: str) -> Callable[[dict[str, str], int], None]:
    def again(env: dict[str, str], k: int) -> None:
        berth(env, "pull", "--tls-verify=false", f"{reg}/faults/bb:1")
        assert berth(env, "run", "--rm", *RUN, f"{reg}/faults/bb:1", "true").returncode == 0
    return again


@pytest.mark.parametrize("what", ["pull", "push"])
def test_kill_registry_commands(berth_env: dict[str, str], busybox_tar: str, reg: str, what: str) -> None:
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", busybox_tar, "busybox")
    _probe_runtimes(env)
    if what == "pull":
        case = Case("pull", lambda k: ["pull", "--tls-verify=false", f"{reg}/faults/bb:1"], setup=_unpull(reg),
                    again=_pull_again(reg))
    else:
        # a new image each time: every push compresses and records its layer, as the first one does
        case = Case("push", lambda k: ["push", "--tls-verify=false", f"pk:{k}", f"{reg}/faults/p:{k}"],
                    setup=lambda env, k: berth(env, "import", _small_tar(env, k), f"pk:{k}") and None)
    n, kills = exercise(env, case)
    print(f"{what}: {n} fault points, killed at {kills}")  # the figures of the run (pytest -rP)
    assert kills == len(moments(n)), f"{what}: {kills} of {len(moments(n))} kills landed in {n} points"
    assert_empty(env, case.driver)


def _killed_at(env: dict[str, str], point: str, *argv: str, stdin: str | None = None) -> None:
    with open(stdin or os.devnull, "rb") as f:
        rc = subprocess.run([BERTH, *argv], env=dict(env, BERTH_FAULT_AT=point), stdin=f, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=BERTH_TIMEOUT).returncode
    assert rc == -9, f"{' '.join(argv)} was not killed at {point!r} (rc {rc})"


def test_run_killed_once_conmon_runs_the_container(berth_env: dict[str, str], busybox_tar: str) -> None:
    """Issue 18 item 1: `run -d` killed after conmon has started the container, before berth
    recorded it as running. rm -f stops it all (process, conmon, runtime state, cgroups, mount);
    a second such container starts again after recovery."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", busybox_tar, "busybox")
    for name in ("k1", "k2"):
        _killed_at(env, "conmon: reported", "run", "-d", *RUN, "--name", name, "busybox", "sleep", "1000")
    berth(env, "rm", "-f", "k1")
    assert berth(env, "inspect", "k1", check=False).returncode != 0
    berth(env, "start", "k2")
    assert '"Running": true' in berth(env, "inspect", "k2").stdout
    assert_consistent(env, "overlay", "after rm -f of one and start of the other")
    berth(env, "rm", "-f", "k2")
    assert_empty(env, "overlay")


def test_commit_killed_with_the_rootfs_mounted(berth_env: dict[str, str], busybox_tar: str) -> None:
    """Issue 18 item 2: `commit` killed while it has the container's rootfs mounted: the next
    command unmounts it (no user is left), and the commit then works."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", busybox_tar, "busybox")
    berth(env, "run", *RUN, "--name", "cc", "busybox", "sh", "-c", "echo hi > /f")
    _killed_at(env, "mount: mounted", "commit", "cc", "x:1")
    assert_consistent(env, "overlay", "commit killed with the rootfs mounted")  # no mount left
    berth(env, "commit", "cc", "x:1")
    assert berth(env, "run", "--rm", *RUN, "x:1", "cat", "/f").stdout.strip() == "hi"
    assert_empty(env, "overlay")


def test_load_from_stdin_killed_leaves_no_spool(berth_env: dict[str, str], busybox_tar: str) -> None:
    """Issue 18 item 3: `load` from stdin killed while its spool file is in the root: the next
    start removes it."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    _make_archive(env)
    _killed_at(env, "layer: recorded", "load", stdin=_archive(env))
    berth(env, "images")
    assert not spool_leftovers(env)
    berth(env, "load", "-i", _archive(env))
    assert_empty(env, "overlay")


def _image_id(env: dict[str, str], ref: str) -> str:
    return berth(env, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def _two_image_archive(env: dict[str, str]) -> str:
    """A docker-archive holding a:1 then b:1, b's layer replaced by one that does not match its
    DiffID (the load fails on the second image, after the first one is in)."""
    base = os.path.dirname(env["BERTH_ROOT"])
    berth(env, "import", _small_tar(env, 101), "a:1")
    berth(env, "import", _small_tar(env, 102), "b:1")
    good, bad = os.path.join(base, "ab.tar"), os.path.join(base, "ab-bad.tar")
    berth(env, "save", "-o", good, "a:1", "b:1")
    with tarfile.open(good) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        b_layer = next(e for e in manifest if "b:1" in " ".join(e["RepoTags"]))["Layers"][-1]
        assert manifest.index(next(e for e in manifest if "b:1" in " ".join(e["RepoTags"]))) == 1
        with tarfile.open(bad, "w") as out:
            for m in t.getmembers():
                data = t.extractfile(m) if m.isfile() else None
                if m.name == b_layer:
                    data = open(_small_tar(env, 103), "rb")  # noqa: SIM115 - closed with the tar
                    m.size = os.fstat(data.fileno()).st_size
                out.addfile(m, data)
    berth(env, "rmi", "a:1", "b:1")
    return bad


def test_failed_load_leaves_names_where_they_were(berth_env: dict[str, str]) -> None:
    """Issue 18: a load whose archive names an image the root already has under that name, and
    that then fails on a later image's bad layer, leaves the name on the image it named before."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    bad = _two_image_archive(env)
    berth(env, "import", _small_tar(env, 104), "a:1")
    old = _image_id(env, "a:1")
    cp = berth(env, "load", "-i", bad, check=False)
    assert cp.returncode != 0 and "Traceback" not in cp.stderr, cp.stderr
    assert _image_id(env, "a:1") == old
    assert berth(env, "inspect", "b:1", check=False).returncode != 0
    assert_consistent(env, "overlay", "after the failed load")
    assert_empty(env, "overlay")


def test_load_refused_by_policy_gives_names_back(berth_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: a load the trust policy refuses takes out the images it added and gives the
    names it moved back to the images that had them."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", _small_tar(env, 105), "a:1")
    berth(env, "save", "-o", str(tmp_path / "a.tar"), "a:1")
    berth(env, "rmi", "a:1")
    berth(env, "import", _small_tar(env, 106), "a:1")
    old = _image_id(env, "a:1")
    (tmp_path / "reject.json").write_text(json.dumps({"default": [{"type": "reject"}]}))
    cp = berth(dict(env, BERTH_POLICY=str(tmp_path / "reject.json")), "load", "-i", str(tmp_path / "a.tar"),
               check=False)
    assert cp.returncode != 0 and "Traceback" not in cp.stderr, cp.stderr
    assert _image_id(env, "a:1") == old
    assert len(berth(env, "images", "-q").stdout.split()) == 1
    assert_empty(env, "overlay")


def test_volume_commands_killed_before_their_record(berth_env: dict[str, str]) -> None:
    """`volume rm` killed after moving the data aside, before removing the record, and `volume
    create` killed after making the directory, before recording it: `storage check` finishes the
    removal and undoes the creation (no record without its directory, no directory without its
    record), and both commands work again."""
    env = berth_env
    berth(env, "volume", "create", "w1")
    _killed_at(env, "db: before commit", "volume", "rm", "w1")
    _killed_at(env, "db: before commit", "volume", "create", "v1")
    assert_consistent(env, "overlay", "volume rm and volume create killed before their records")
    assert berth(env, "volume", "inspect", "w1", check=False).returncode != 0
    berth(env, "volume", "create", "v1")
    berth(env, "volume", "rm", "v1")
    assert_empty(env, "overlay")


def test_runtime_probe_killed_leaves_no_trial_bundle(berth_env: dict[str, str]) -> None:
    """The first command on a runroot probes the runtimes with trial containers (later ones read
    the answer, so the harness's repeated commands never pass these points): killed at its
    points, it leaves no trial bundle behind once the next command has probed again, whether the
    bundle was in the runroot or (no runroot yet: `info` writes none) in the temp dir."""
    base = os.path.dirname(berth_env["BERTH_ROOT"])
    tmp = os.path.join(base, "tmpdir")
    os.makedirs(tmp)
    env = dict(berth_env, TMPDIR=tmp)
    for with_runroot in (False, True):
        trace = os.path.join(base, f"probe-trace-{with_runroot}")
        first = os.path.join(base, f"run-{with_runroot}")
        if with_runroot:
            os.makedirs(first)
        berth(dict(env, BERTH_RUNROOT=first, BERTH_FAULT_TRACE=trace), "info")
        with open(trace) as f:
            n = sum(1 for _ in f)
        for p in moments(n):
            runroot = os.path.join(base, f"run-{with_runroot}-{p}")
            if with_runroot:
                os.makedirs(runroot)
            _killed_at(dict(env, BERTH_RUNROOT=runroot), str(p), "info")
            berth(dict(env, BERTH_RUNROOT=runroot), "info")
            left = os.listdir(tmp) + (os.listdir(runroot) if os.path.isdir(runroot) else [])
            assert [e for e in left if "trial" in e or e.startswith("berth-rt-")] == [], (with_runroot, p, n, left)
