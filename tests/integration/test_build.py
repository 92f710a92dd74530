"""berth build: a Dockerfile subset with a layer cache."""

from __future__ import annotations

import json

import pytest

from tests.conftest import berth

DOCKERFILE = """\
# a five-step build
FROM busybox:bb
ARG GREETING=hello
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY app/ ./
RUN echo "$GREETING from build" > greeting \\
    && cat version
ADD files.tar /srv/extracted/
LABEL org.example.role=test
CMD ["cat", "/srv/app/greeting", "/srv/app/version"]
"""


@pytest.fixture
def ctx(tmp_path):  # type: ignore[no-untyped-def]
    import tarfile

    d = tmp_path / "ctx"
    (d / "app").mkdir(parents=True)
    (d / "app" / "version").write_text("v1\n")
    (d / "app" / "secret.key").write_text("do not ship\n")
    (d / ".dockerignore").write_text("app/*.key\n")
    (d / "Dockerfile").write_text(DOCKERFILE)
    payload = tmp_path / "payload.txt"
    payload.write_text("from a tar\n")
    with tarfile.open(d / "files.tar", "w") as t:
        t.add(payload, arcname="inner/payload.txt")
    return d


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    return e


def test_build_cache_and_rebuild(env, ctx) -> None:  # type: ignore[no-untyped-def]
    first = berth(env, "build", "-t", "app:1", str(ctx))
    image_id = first.stdout.strip().splitlines()[-1]
    assert "Successfully tagged app:1" in first.stderr
    assert berth(env, "run", "--rm", "app:1").stdout == "hello from build\nv1\n"
    info = json.loads(berth(env, "inspect", "app:1").stdout)[0]
    assert info["Config"]["Labels"] == {"org.example.role": "test"}
    assert info["Config"]["WorkingDir"] == "/srv/app" and "APP_HOME=/srv/app" in info["Config"]["Env"]
    out = berth(env, "run", "--rm", "app:1", "sh", "-c", "ls /srv/app; cat /srv/extracted/inner/payload.txt").stdout
    assert "secret.key" not in out and "version" in out and "from a tar" in out
    again = berth(env, "build", "-t", "app:1", str(ctx))
    assert again.stdout.strip().splitlines()[-1] == image_id
    assert again.stderr.count("Using cache") == 7  # every step after FROM and ARG
    (ctx / "app" / "version").write_text("v2\n")
    third = berth(env, "build", "-t", "app:2", "--build-arg", "GREETING=hi", str(ctx))
    steps = third.stderr.split("Step ")
    cached = [s.split(" :")[0] for s in steps if "Using cache" in s]
    assert cached == ["3/9", "4/9"]  # ENV and WORKDIR; COPY changed, so everything after it rebuilt
    assert berth(env, "run", "--rm", "app:2").stdout == "hi from build\nv2\n"


def test_failing_run_names_the_step(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "bad"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM busybox:bb\nRUN echo before-failure && exit 4\n")
    cp = berth(env, "build", "-t", "bad:1", str(d), check=False)
    assert cp.returncode == 4  # docker: the step's own code
    assert "line 2: RUN echo before-failure && exit 4: the command returned a non-zero code: 4" in cp.stderr
    assert "before-failure" in cp.stdout
    assert berth(env, "ps", "-aq").stdout.strip() == ""
    (d / "Dockerfile").write_text("FROM busybox:bb\nCOPY ../../etc/passwd /x\n")
    cp = berth(env, "build", str(d), check=False)
    assert cp.returncode == 1 and "outside the build context" in cp.stderr
    (d / "Dockerfile").write_text("FROM busybox:bb\nFROOB true\n")
    cp = berth(env, "build", str(d), check=False)
    assert cp.returncode == 1 and "unknown instruction: FROOB" in cp.stderr and "line 2" in cp.stderr


MULTISTAGE = """\
FROM busybox:bb AS builder
RUN mkdir -p /out && echo built > /out/artifact && ln -s /etc/passwd /out/link
FROM busybox:bb AS unused
RUN echo never copied > /x
FROM scratch
COPY --from=builder /out /app/
COPY --from=builder /out/link /passwd-copy
COPY --from=0 /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/app/artifact"]
"""


def test_multi_stage_build(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "multi"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(MULTISTAGE)
    first = berth(env, "build", "-t", "slim:1", str(ctx))
    image_id = first.stdout.strip().splitlines()[-1]
    assert berth(env, "run", "--rm", "--network", "none", "slim:1").stdout == "built\n"
    info = json.loads(berth(env, "inspect", "slim:1").stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 3  # the three COPY layers on scratch, nothing of busybox:bb's
    # links inside a copied directory stay links; a link named as the source is followed, inside the
    # stage's file system, never onto the host's
    out = berth(env, "run", "--rm", "--network", "none", "slim:1", "readlink", "/app/link").stdout
    assert out == "/etc/passwd\n"
    copied = berth(env, "run", "--rm", "--network", "none", "slim:1", "cat", "/passwd-copy").stdout
    assert copied == berth(env, "run", "--rm", "--network", "none", "busybox:bb", "cat", "/etc/passwd").stdout
    assert copied != open("/etc/passwd").read()
    assert berth(env, "run", "--rm", "--network", "none", "slim:1", "ls", "/x", check=False).returncode != 0
    again = berth(env, "build", "-t", "slim:1", str(ctx))
    assert again.stdout.strip().splitlines()[-1] == image_id and again.stderr.count("Using cache") == 7
    # --target stops at a stage
    builder = berth(env, "build", "--target", "builder", "-t", "builder:1", str(ctx)).stdout.strip().splitlines()[-1]
    out = berth(env, "run", "--rm", "--network", "none", builder, "cat", "/out/artifact").stdout
    assert out == "built\n"
    # errors name the problem: an unknown stage, a path missing in the stage, an unknown target
    for text, want in (("FROM busybox:bb\nCOPY --from=nosuch /x /x\n", "nosuch"),
                       ("FROM busybox:bb AS a\nFROM busybox:bb\nCOPY --from=a /../../etc/shadow /s\n",
                        "does not exist in the image"),
                       ("FROM busybox:bb\nCOPY --from=3 /x /x\n", "finished stage")):
        (ctx / "Dockerfile").write_text(text)
        cp = berth(env, "build", str(ctx), check=False)
        assert cp.returncode != 0 and want in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    (ctx / "Dockerfile").write_text(MULTISTAGE)
    cp = berth(env, "build", "--target", "nope", str(ctx), check=False)
    assert cp.returncode != 0 and "--target nope" in cp.stderr


def test_arg_scopes_follow_docker(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "args"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE=busybox:bb\nARG WHO=global\n"
        "FROM $BASE AS first\nARG WHO\nRUN echo \"first:$WHO\" > /who\n"
        "FROM $BASE\nCOPY --from=first /who /who\nRUN echo \"second:[$WHO]\" >> /who\nCMD [\"cat\", \"/who\"]\n")
    berth(env, "build", "-t", "args:1", str(ctx))
    assert berth(env, "run", "--rm", "--network", "none", "args:1").stdout == "first:global\nsecond:[]\n"
    berth(env, "build", "-t", "args:2", "--build-arg", "WHO=cli", str(ctx))
    assert berth(env, "run", "--rm", "--network", "none", "args:2").stdout == "first:cli\nsecond:[]\n"
