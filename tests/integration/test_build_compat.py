"""berth build beyond the differential test: memory stays bounded on huge ADDs, archives are applied
with import's hostile-tar checks, RUN steps are isolated like docker's, and bad Dockerfiles give one
line, never a traceback, and leave nothing behind."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import BERTH, berth


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def _gzip_bomb(path: str, size: int) -> None:
    """A tar.gz of one file of `size` zero bytes, written without holding it in memory."""
    ti = tarfile.TarInfo("zero")
    ti.size = size
    with gzip.open(path, "wb", compresslevel=9) as gz:
        gz.write(ti.tobuf(tarfile.GNU_FORMAT))
        block = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            gz.write(block)
        gz.write(b"\0" * 1024)


def _max_rss_kib(env: dict[str, str], *args: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run berth as the only child of a small Python process and report its peak RSS."""
    probe = ("import resource, subprocess, sys\n"
             "cp = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=600)\n"
             "sys.stderr.write(cp.stderr)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.exit(cp.returncode)\n")
    cp = subprocess.run([sys.executable, "-c", probe, BERTH, *args], env=env, capture_output=True, text=True,
                        timeout=600)
    return int(cp.stdout.strip().splitlines()[-1]), cp


def test_add_of_a_gzip_bomb_streams_with_bounded_memory(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "bomb"
    ctx.mkdir()
    size = int(os.environ.get("BERTH_BUILD_BOMB_MB", "300")) << 20  # 1229 for the 1.2 GiB variant
    _gzip_bomb(str(ctx / "bomb.tar.gz"), size)
    assert os.path.getsize(ctx / "bomb.tar.gz") < size // 700  # 300 KB that unpack to 300 MB
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nADD bomb.tar.gz /x/\nCOPY bomb.tar.gz /copied\n")
    rss, cp = _max_rss_kib(env, "build", "-q", "-t", "bomb:1", str(ctx))
    assert cp.returncode == 0, cp.stderr
    print(f"berth build of a {size >> 20} MiB ADD: peak RSS {rss >> 10} MiB")
    assert rss < 100 << 10, f"berth build peaked at {rss >> 10} MiB RSS"
    out = berth(env, "run", "--rm", "--network", "none", "bomb:1", "stat", "-c", "%s", "/x/zero").stdout
    assert out == f"{size}\n"


def _tar(members: list[tuple[str, bytes, str]]) -> bytes:
    """(name, type, link target) members: b'f' file, b'd' dir, b'l' symlink, b'h' hard link."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, kind, link in members:
            ti = tarfile.TarInfo(name)
            data = None
            if kind == b"f":
                data = b"content\n"
                ti.size = len(data)
            elif kind == b"d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == b"l":
                ti.type, ti.linkname = tarfile.SYMTYPE, link
            else:
                ti.type, ti.linkname = tarfile.LNKTYPE, link
            t.addfile(ti, io.BytesIO(data) if data else None)
    return raw.getvalue()


def test_add_of_a_tar_keeps_links_and_refuses_what_import_refuses(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "links"
    ctx.mkdir()
    (ctx / "good.tar").write_bytes(_tar([("d", b"d", ""), ("d/f", b"f", ""), ("d/hard", b"h", "d/f"),
                                         ("d/sym", b"l", "f"), ("d/abs", b"l", "/etc/passwd")]))
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nADD good.tar /t/\n")
    berth(env, "build", "-q", "-t", "links:1", str(ctx))
    out = berth(env, "run", "--rm", "--network", "none", "links:1", "sh", "-c",
                "stat -c '%h %F' /t/d/f /t/d/hard; readlink /t/d/sym; readlink /t/d/abs; "
                "[ /t/d/f -ef /t/d/hard ] && echo same").stdout
    assert out == "2 regular file\n2 regular file\nf\n/etc/passwd\nsame\n"
    hostile = {
        "through-symlink.tar": [("evil", b"l", "/etc"), ("evil/passwd", b"f", "")],
        "hardlink-out.tar": [("x", b"h", "../../etc/shadow")],
        "climb.tar": [("../../escape", b"f", "")],
        "hardlink-missing.tar": [("x", b"h", "nothere")],
    }
    for name, members in hostile.items():
        (ctx / name).write_bytes(_tar(members))
        (ctx / "Dockerfile").write_text(f"FROM busybox:bb\nADD {name} /t/\n")
        cp = berth(env, "build", "-q", str(ctx), check=False)
        imp = berth(env, "import", str(ctx / name), "refused:1", check=False)
        assert cp.returncode == 1 and imp.returncode != 0, (name, cp.stderr, imp.stderr)
        assert "Traceback" not in cp.stderr and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert not os.path.exists("/escape")
    assert berth(env, "ps", "-aq").stdout.strip() == ""


def test_run_steps_are_isolated_like_docker(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "iso"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nRUN hostname > /h && ls /sys/class/net > /n\n"
                                    "RUN echo second > /second\n")
    berth(env, "build", "-q", "-t", "iso:1", str(ctx))
    out = berth(env, "run", "--rm", "--network", "none", "iso:1", "cat", "/h", "/n").stdout.split()
    assert out[0] != os.uname().nodename and len(out[0]) == 12
    assert out[1:] == ["lo"]
    # no RUN layer carries the runtime's mount points (/etc/resolv.conf, hosts, hostname)
    saved = str(tmp_path / "iso.tar")
    berth(env, "save", "-o", saved, "iso:1")
    with tarfile.open(saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        for layer in manifest["Layers"][1:]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as lt:  # type: ignore[arg-type]
                names = {m.name.lstrip("./") for m in lt}
            assert not names & {"etc/resolv.conf", "etc/hosts", "etc/hostname", "etc"}, names
    # --network host gives RUN the host's interfaces
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nRUN ls /sys/class/net > /n\n")
    berth(env, "build", "-q", "--network", "host", "-t", "iso:2", str(ctx))
    out = berth(env, "run", "--rm", "--network", "none", "iso:2", "cat", "/n").stdout.split()
    assert sorted(out) == sorted(os.listdir("/sys/class/net"))


def test_dockerfile_on_stdin_and_exit_codes(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = b"FROM busybox:bb\nCOPY a.txt /a\nCMD [\"cat\", \"/a\"]\n"
    ctx = tmp_path / "stdin"
    ctx.mkdir()
    (ctx / "a.txt").write_text("from the context\n")
    berth(env, "build", "-q", "-t", "stdin:1", "-f", "-", str(ctx), input=text)
    assert berth(env, "run", "--rm", "--network", "none", "stdin:1").stdout == "from the context\n"
    cp = berth(env, "build", "-q", "-", input=text, check=False)  # no context: a.txt is missing
    assert cp.returncode == 1 and "a.txt: does not exist in the build context" in cp.stderr
    cp = berth(env, "build", "-q", "-", input=b"FROM busybox:bb\nRUN exit 7\n", check=False)
    assert cp.returncode == 7 and "non-zero code: 7" in cp.stderr


BAD = [
    b"FROM busybox:bb\nENV\n",
    b'FROM busybox:bb\nCOPY ["a"\n',
    b"FROM busybox:bb\nCOPY [1, 2]\n",
    b"FROM busybox:bb\nRUN echo \xff\xfe\n",
    b"FROM busybox:bb\nFROOB x\n",
    b"FROM busybox:bb\nENV A=${B\n",
    b"FROM busybox:bb\nUSER ${U:?needs U}\n",
    b"FROM busybox:bb\nHEALTHCHECK --interval=fast CMD true\n",
    b"FROM busybox:bb\nSTOPSIGNAL SIGNOPE\n",
    b"FROM busybox:bb\nEXPOSE 99999\n",
    b"FROM busybox:bb\nCOPY --chown=nobody:nosuchgroup a /a\n",
    b"FROM busybox:bb\nCOPY nothere* /x/\n",
    b"FROM busybox:bb\nCOPY a b /notadir\n",
    b"FROM busybox:bb\nWORKDIR /etc/passwd\n",
    b"FROM busybox:bb\nCOPY [a /x\n",
    b"FROM busybox:bb\nADD https://example.invalid/x /x\n",
    b"ONBUILD RUN x\n",
    b"\x00\x01\x02",
    b"",
]
SEED = b"""\
# escape=\\
ARG BASE=busybox:bb
FROM $BASE AS one
ENV A=1 B="two words"
LABEL x=$A
WORKDIR /w
COPY a b /w/
COPY --chown=nobody a /o
EXPOSE 80/tcp
VOLUME ["/v"]
HEALTHCHECK --interval=1s CMD ["true"]
ONBUILD COPY a /a
STOPSIGNAL SIGTERM
FROM one
COPY --from=one /w /w2
CMD ["true"]
"""


def _mutations(count: int, seed: int) -> list[bytes]:
    """Seeded mutations of a Dockerfile without RUN steps (so every build is quick)."""
    rng = random.Random(seed)
    alphabet = b"[]{}$\"'\\`=:-+?*# \n\t\xff\x00ENVCOPYFROM"
    out = []
    for _ in range(count):
        data = bytearray(SEED)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randrange(len(data))
            if op == 0:
                del data[pos:pos + rng.randint(1, 8)]
            elif op == 1:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            elif op == 2:
                lines = data.split(b"\n")
                rng.shuffle(lines)
                data = bytearray(b"\n".join(lines))
            else:
                data = data[:pos]
        out.append(bytes(data))
    return out


def test_bad_dockerfiles_give_one_line_and_leave_nothing(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "bad"
    ctx.mkdir()
    (ctx / "a").write_text("a\n")
    (ctx / "b").write_text("b\n")
    fuzzed = _mutations(int(os.environ.get("BERTH_FUZZ_BUILDS", "25")), seed=19)
    failures = []
    for data in BAD + fuzzed:
        (ctx / "Dockerfile").write_bytes(data)
        cp = berth(env, "build", "-q", str(ctx), check=False)
        errors = [ln for ln in cp.stderr.splitlines() if ln.strip()]
        if "Traceback" in cp.stderr or (cp.returncode != 0 and (len(errors) != 1 or cp.returncode != 1)):
            failures.append((data, cp.returncode, cp.stderr))
        if data in BAD and cp.returncode == 0:
            failures.append((data, 0, "accepted"))
    assert not failures, failures
    assert berth(env, "ps", "-aq").stdout.strip() == ""
    # nothing half-made: no build container, no view of an image left mounted, the store consistent
    with open("/proc/mounts") as f:
        assert not [ln for ln in f if env["BERTH_ROOT"] in ln or env["BERTH_RUNROOT"] in ln]
    check = berth(env, "storage", "check")
    assert "Traceback" not in check.stderr
