"""Differential build test: the same Dockerfiles built by docker (classic builder, its own dockerd)
and by berth from the same busybox base give the same file trees (names, types, modes, owners,
sizes, link targets) and the same image configs. Each remaining difference is listed in DELIBERATE
with its reason."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile

import pytest

from tests.conftest import berth
from tests.peers import dockerd

BASE = "bb:base"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Volumes", "StopSignal", "Healthcheck", "Labels",
               "ExposedPorts", "Shell", "OnBuild")
# differences kept on purpose: (case, what) -> why
DELIBERATE: dict[tuple[str, str], str] = {}

CASES: dict[str, str] = {
    # 19.1 into an existing directory; 19.2 wildcards and several sources; 19.5 symlink names, --chown
    # by name with created directories, numeric --chown, WORKDIR creating its directories
    "copy": """\
FROM bb:base
RUN echo 'app:x:1001:1002::/home/app:/bin/sh' >> /etc/passwd && printf 'staff2:x:1002:\\napp:x:1003:\\n' >> /etc/group
WORKDIR /app
COPY a.txt .
ADD a.txt /etc
COPY a.txt /tmp
COPY *.txt /t1/
COPY [ab].txt /w/
COPY ?.txt dir /multi/
COPY link /linkcopy/
COPY link /named
COPY dir /d2
COPY dir/ /d3/
COPY --chown=app:staff2 a.txt /owned/new/dir/
COPY --chown=app dir /owned-dir
COPY --chown=1234:5678 dir /numeric/
WORKDIR /w1
WORKDIR w2/w3
RUN pwd > /pwd
""",
    # 19.3 expansion and where it applies
    "vars": """\
FROM bb:base
ARG U
ARG PORT
ARG ARGV=fromarg
ENV A=one B="two words" C=${A:-x} D=${UNSET:-dflt} E=${A:+alt} F=${UNSET:+alt} G=\\$A H='$A' I="$A" J=$ARGV
ENV PATH=/opt/bin:$PATH
ENV ARGV=fromenv
USER ${U:-nobody}
WORKDIR /${D}/sub
LABEL l1=$A "l2"="${B}" l3='$A'
EXPOSE ${PORT:-8080} 53/udp 7000-7002
VOLUME ["/data", "/${D}/vol"]
STOPSIGNAL ${SIG:-SIGTERM}
RUN echo "$ARGV $A" > /tmp/seen
COPY ${D}.txt /${D}/
""",
    # 19.4 SHELL, HEALTHCHECK, ONBUILD (recorded), STOPSIGNAL, VOLUME (what a later RUN writes into it is
    # dropped), the escape directive
    "meta": """\
# escape=`
FROM bb:base
SHELL ["/bin/sh", "-ec"]
RUN echo one > /shell-test && `
    echo two >> /shell-test
HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=4 CMD wget -q -O- http://localhost/ || exit 1
ONBUILD RUN echo triggered > /onbuild
ONBUILD COPY a.txt /from-onbuild/
STOPSIGNAL SIGUSR1
VOLUME /vol
RUN echo lost > /vol/written && echo kept > /kept
CMD echo shell form
""",
    # ONBUILD triggered in a child; 19.5 ENTRYPOINT in a child clears the parent's CMD
    "child": """\
FROM meta
ENTRYPOINT ["/bin/echo"]
HEALTHCHECK NONE
""",
    # 19.5 CMD not JSON is the shell form; ENTRYPOINT after CMD in one stage keeps it
    "cmd": """\
FROM bb:base
CMD ['echo','x']
ENTRYPOINT ["/bin/sh", "-c"]
""",
    # 19.5 / 18.14: ADD of archives and COPY --from keep owners, hard links and symlinks
    "owners": """\
FROM bb:base AS src
RUN mkdir -p /o/sub && echo x > /o/sub/f && chown -R 1000:1001 /o && chmod 0700 /o/sub && ln -s sub/f /o/l
FROM bb:base
ADD tree.tar /t/
ADD tree.tar.gz /tgz
COPY --from=src /o /copied
COPY --from=src /o/l /copied-link
""",
    # 19.6 RUN: no network, the container's own hostname, no /etc mount points left in the layers
    "run": """\
FROM bb:base
RUN hostname > /hostname-seen && cat /proc/net/dev | wc -l > /interfaces && ls /sys/class/net > /netdevs
RUN test ! -s /etc/resolv.conf || cat /etc/resolv.conf > /dev/null
""",
}


def make_context(d: str) -> None:
    os.makedirs(os.path.join(d, "dir", "sub"))
    for name, text in (("a.txt", "a\n"), ("b.txt", "bb\n"), ("c.txt", "ccc\n"), ("dflt.txt", "d\n"),
                       ("dir/in.txt", "in\n"), ("dir/sub/deep.txt", "deep\n")):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(d, "dir", "in.txt"), 0o640)
    os.symlink("a.txt", os.path.join(d, "link"))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, kind, mode, owner in (("top", tarfile.DIRTYPE, 0o750, 1000), ("top/sub", tarfile.DIRTYPE, 0o700, 0),
                                        ("top/f", tarfile.REGTYPE, 0o4755, 1000),
                                        ("top/hard", tarfile.LNKTYPE, 0o4755, 1000),
                                        ("top/sym", tarfile.SYMTYPE, 0o777, 33)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, owner, owner + 1, 1_700_000_000
            data = None
            if kind == tarfile.REGTYPE:
                data = b"payload\n"
                ti.size = len(data)
            elif kind == tarfile.LNKTYPE:
                ti.linkname = "top/f"
            elif kind == tarfile.SYMTYPE:
                ti.linkname = "f"
            t.addfile(ti, io.BytesIO(data) if data else None)
    with open(os.path.join(d, "tree.tar"), "wb") as f:
        f.write(raw.getvalue())
    with open(os.path.join(d, "tree.tar.gz"), "wb") as f:
        f.write(gzip.compress(raw.getvalue()))


def tree_of(archive: str) -> tuple[dict[str, tuple[object, ...]], dict[str, object]]:
    """The file tree and the container config of the image in a docker-archive."""
    files: dict[str, tuple[object, ...]] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(outer.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as lt:  # type: ignore[arg-type]
                for m in lt:
                    name = os.path.normpath(m.name.lstrip("./") or ".")
                    base, parent = os.path.basename(name), os.path.dirname(name)
                    if base == ".wh..wh..opq":
                        for k in [k for k in files if k.startswith(parent + "/")]:
                            del files[k]
                        continue
                    if base.startswith(".wh."):
                        gone = os.path.join(parent, base[4:])
                        for k in [k for k in files if k == gone or k.startswith(gone + "/")]:
                            del files[k]
                        continue
                    if name in files and not (m.isdir() and files[name][0] == "dir"):
                        for k in [k for k in files if k.startswith(name + "/")]:
                            del files[k]
                    kind = ("dir" if m.isdir() else "file" if m.isreg() else "sym" if m.issym() else
                            "hard" if m.islnk() else "other")
                    size = m.size if m.isreg() else 0
                    if m.islnk():
                        size = files.get(os.path.normpath(m.linkname.lstrip("./")), (0, 0, 0, 0, 0))[4]
                    link = m.linkname if m.issym() else ""
                    files[name] = (kind, oct(m.mode & 0o7777), m.uid, m.gid, size, link)
    return files, config.get("config") or {}


def _normal(v: object) -> object:
    return None if v in ([], {}, "", None) else v


def compare(case: str, docker_archive: str, berth_archive: str) -> list[str]:
    d_files, d_cfg = tree_of(docker_archive)
    b_files, b_cfg = tree_of(berth_archive)
    diffs = []
    for name in sorted(set(d_files) | set(b_files)):
        if d_files.get(name) != b_files.get(name) and (case, name) not in DELIBERATE:
            diffs.append(f"{case}: {name}: docker {d_files.get(name)} berth {b_files.get(name)}")
    for key in CONFIG_KEYS:
        if _normal(d_cfg.get(key)) != _normal(b_cfg.get(key)) and (case, key) not in DELIBERATE:
            diffs.append(f"{case}: config {key}: docker {d_cfg.get(key)!r} berth {b_cfg.get(key)!r}")
    return diffs


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, BASE)
    return e


def test_builds_match_docker(env, tmp_path, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    ctx = str(tmp_path / "ctx")
    make_context(ctx)
    denv = dict(os.environ, DOCKER_BUILDKIT="0")
    diffs: list[str] = []
    with dockerd(str(tmp_path / "docker")) as docker:
        def dock(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
            cp = subprocess.run([*docker, *args], input=data, capture_output=True, env=denv, timeout=300)
            assert cp.returncode == 0, (args, cp.stderr.decode(errors="replace"))
            return cp

        dock("import", "-c", 'CMD ["sh"]', busybox_tar, BASE)
        for case, text in CASES.items():
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write(text)
            dock("build", "--network", "none", "-q", "-t", case, ctx)
            berth(env, "build", "-q", "-t", case, ctx)
            d_out, b_out = str(tmp_path / f"{case}-docker.tar"), str(tmp_path / f"{case}-berth.tar")
            dock("save", "-o", d_out, case)
            berth(env, "save", "-o", b_out, case)
            diffs += compare(case, d_out, b_out)
        # the Dockerfile on stdin, no context (build -)
        text = b"FROM bb:base\nRUN echo from-stdin > /stdin\nCMD [\"cat\", \"/stdin\"]\n"
        dock("build", "--network", "none", "-q", "-t", "stdin", "-", data=text)
        berth(env, "build", "-q", "-t", "stdin", "-", input=text)
        dock("save", "-o", str(tmp_path / "stdin-docker.tar"), "stdin")
        berth(env, "save", "-o", str(tmp_path / "stdin-berth.tar"), "stdin")
        diffs += compare("stdin", str(tmp_path / "stdin-docker.tar"), str(tmp_path / "stdin-berth.tar"))
        # a failing RUN: the step's exit code
        bad = b"FROM bb:base\nRUN exit 3\n"
        d_bad = subprocess.run([*docker, "build", "--network", "none", "-"], input=bad, capture_output=True,
                               env=denv, timeout=300)
        b_bad = berth(env, "build", "-", input=bad, check=False)
        assert (d_bad.returncode, b_bad.returncode) == (3, 3), b_bad.stderr
    assert not diffs, "\n".join(diffs)
