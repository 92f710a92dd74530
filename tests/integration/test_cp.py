"""berth cp through the real CLI on running and stopped containers: both directions, tar streams,
docker's path rules, ownership and modes, and containers whose paths are symlinks to /etc or
`..`-relative: nothing on the host outside the given path changes."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile

import pytest

from tests.conftest import BERTH, BERTH_TIMEOUT, berth

SETUP = ("mkdir -p /d/sub && echo inner > /d/sub/f && chown 5:6 /d/sub/f && chmod 0640 /d/sub/f && "
         "ln -s /etc /d/abs && ln -s ../../../../../../etc /d/rel && ln /d/sub/f /d/sub/hard && "
         "mkdir -p /srv && ln -s /etc /srv/abs && ln -s ../../../../../../etc /srv/rel")


@pytest.fixture(params=["running", "stopped"])
def ctr(request: pytest.FixtureRequest, berth_env: dict[str, str], busybox_tar: str) -> tuple[dict[str, str], str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    if request.param == "running":
        berth(e, "run", "-d", "--name", "c", "--network", "none", "-v", "vol:/vol", "busybox", "sh", "-c",
              SETUP + " && touch /d/ready && sleep 600")
        import time

        deadline = time.monotonic() + 20
        while berth(e, "exec", "c", "test", "-e", "/d/ready", check=False).returncode != 0:
            assert time.monotonic() < deadline, "the container did not set up its files"
            time.sleep(0.1)
    else:
        berth(e, "run", "--name", "c", "--network", "none", "busybox", "sh", "-c", SETUP)
    return e, request.param


def in_ctr(env: dict[str, str], state: str, script: str) -> str:
    """Run a shell script in the container (exec while it runs, else a start of a copy of it)."""
    if state == "running":
        return berth(env, "exec", "c", "sh", "-c", script).stdout
    berth(env, "commit", "c", "snap")
    return berth(env, "run", "--rm", "--network", "none", "snap", "sh", "-c", script).stdout


def host_etc() -> dict[str, tuple[int, float]]:
    out = {}
    for n in os.listdir("/etc"):
        st = os.lstat(os.path.join("/etc", n))
        out[n] = (st.st_ino, st.st_mtime)
    return out


def raw(env: dict[str, str], *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """berth with bytes in and out (tar streams)."""
    return subprocess.run([BERTH, *args], env=env, input=data, capture_output=True, timeout=BERTH_TIMEOUT)


def test_out_of_the_container(ctr: tuple[dict[str, str], str], tmp_path: str) -> None:
    env, _state = ctr
    t = str(tmp_path)
    berth(env, "cp", "c:/d", os.path.join(t, "d"))  # a new name: the directory itself
    f = os.lstat(os.path.join(t, "d", "sub", "f"))
    assert stat.S_IMODE(f.st_mode) == 0o640 and (f.st_uid, f.st_gid) == (0, 0)  # the caller's without -a
    assert f.st_ino == os.lstat(os.path.join(t, "d", "sub", "hard")).st_ino  # hard links stay links
    assert os.readlink(os.path.join(t, "d", "abs")) == "/etc"
    os.mkdir(os.path.join(t, "into"))
    berth(env, "cp", "-a", "c:/d/sub", os.path.join(t, "into"))  # an existing directory: under its name
    f = os.lstat(os.path.join(t, "into", "sub", "f"))
    assert (f.st_uid, f.st_gid) == (5, 6)
    berth(env, "cp", "c:/d/sub/.", os.path.join(t, "into"))  # /. : the content
    assert sorted(os.listdir(os.path.join(t, "into"))) == ["f", "hard", "sub"]
    # a symlink source is copied as the link; -L or a trailing / copies what it points to, in the container
    berth(env, "cp", "c:/d/abs", os.path.join(t, "link"))
    assert os.readlink(os.path.join(t, "link")) == "/etc"
    berth(env, "cp", "-L", "c:/d/rel", os.path.join(t, "ctr-etc"))
    assert sorted(os.listdir(os.path.join(t, "ctr-etc"))) != sorted(os.listdir("/etc"))
    assert os.path.exists(os.path.join(t, "ctr-etc", "passwd"))
    with open(os.path.join(t, "ctr-etc", "passwd")) as fh, open("/etc/passwd") as host:
        assert fh.read() != host.read()
    # a tar stream on stdout
    data = raw(env, "cp", "-a", "c:/d/sub", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert set(members) == {"sub", "sub/f", "sub/hard"} and members["sub/f"].uid == 5
    assert members["sub/hard"].islnk() and members["sub/f"].mode == 0o640
    cp = berth(env, "cp", "c:/nowhere", os.path.join(t, "x"), check=False)
    assert cp.returncode == 1 and "no such file or directory in the container c: /nowhere" in cp.stderr
    with open(os.path.join(t, "plain"), "w") as fh:
        fh.write("x")
    cp = berth(env, "cp", "c:/d", os.path.join(t, "plain"), check=False)
    assert cp.returncode == 1 and "cannot copy a directory to a file" in cp.stderr


def test_into_the_container(ctr: tuple[dict[str, str], str], tmp_path: str) -> None:
    env, state = ctr
    t = str(tmp_path)
    src = os.path.join(t, "src")
    os.makedirs(os.path.join(src, "deep"))
    with open(os.path.join(src, "deep", "file"), "w") as fh:
        fh.write("from the host\n")
    os.chmod(os.path.join(src, "deep", "file"), 0o604)
    os.chown(os.path.join(src, "deep", "file"), 77, 88)
    etc_before = host_etc()
    # destinations that are symlinks to /etc, absolute and ..-relative, resolve in the container
    berth(env, "cp", os.path.join(src, "deep", "file"), "c:/srv/abs/berth-cp-abs")
    berth(env, "cp", src, "c:/srv/rel/")
    berth(env, "cp", "-a", src + "/.", "c:/d/rel/berth-cp-content")
    assert host_etc() == etc_before and not os.path.exists("/etc/berth-cp-abs")
    out = in_ctr(env, state, "cat /etc/berth-cp-abs; stat -c '%a %u %g' /etc/berth-cp-abs "
                             "/etc/src/deep/file /etc/berth-cp-content/deep/file")
    assert out.splitlines() == ["from the host", "604 0 0", "604 0 0", "604 77 88"]


def test_hostile_tar_streams(ctr: tuple[dict[str, str], str]) -> None:
    env, state = ctr
    etc_before = host_etc()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("esc")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../../etc"
        tf.addfile(link)
        body = b"in the container\n"
        f = tarfile.TarInfo("esc/berth-cp-stream")
        f.size = len(body)
        tf.addfile(f, io.BytesIO(body))
    assert raw(env, "cp", "-", "c:/srv/abs", data=buf.getvalue()).returncode == 0
    assert host_etc() == etc_before
    assert in_ctr(env, state, "cat /etc/berth-cp-stream") == "in the container\n"
    for name in ("../../berth-cp-up", "/../berth-cp-up"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            f = tarfile.TarInfo(name)
            tf.addfile(f, io.BytesIO(b""))
        cp = raw(env, "cp", "-", "c:/d", data=buf.getvalue())
        assert cp.returncode == 1 and b"points outside the destination" in cp.stderr
    cp = raw(env, "cp", "-", "c:/d", data=b"not a tar at all" * 64)
    assert cp.returncode == 1 and b"not a valid tar stream" in cp.stderr and b"Traceback" not in cp.stderr
    assert host_etc() == etc_before


def test_host_destination_with_the_containers_links(ctr: tuple[dict[str, str], str], tmp_path: str) -> None:
    """Copying a tree that holds links to /etc onto an existing host directory changes nothing
    outside that directory, even where the host directory has a symlink of the same name."""
    env, _state = ctr
    t = str(tmp_path)
    dest = os.path.join(t, "dest")
    os.makedirs(dest)
    os.symlink("/etc", os.path.join(dest, "sub"))  # the container's sub/ must not go through this
    etc_before = host_etc()
    cp = berth(env, "cp", "c:/d/.", dest, check=False)
    assert cp.returncode == 1 and "cannot overwrite non-directory sub" in cp.stderr
    assert host_etc() == etc_before and not os.path.exists("/etc/f")
    assert os.readlink(os.path.join(dest, "sub")) == "/etc"


def test_running_container_sees_its_volumes(berth_env: dict[str, str], busybox_tar: str, tmp_path: str) -> None:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    berth(e, "run", "-d", "--name", "v", "--network", "none", "-v", "data:/data", "busybox", "sleep", "600")
    src = os.path.join(str(tmp_path), "note")
    with open(src, "w") as fh:
        fh.write("note\n")
    berth(e, "cp", src, "v:/data/")
    with open(os.path.join(e["BERTH_ROOT"], "volumes", "data", "_data", "note")) as fh:
        assert fh.read() == "note\n"
