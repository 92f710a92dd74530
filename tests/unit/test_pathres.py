"""Paths inside a container's rootfs never lead out of it (issue 18 items 7 and 14): users and
groups, the working directory and the command check resolve through file descriptors, with the
kernel's openat2(RESOLVE_IN_ROOT) and with the per-step O_NOFOLLOW walk."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from berth.container import pathres, users
from berth.container.manager import ContainerManager
from berth.errors import InvalidInput

HOST_PASSWD = "app:x:4242:4242::/host-home:/bin/sh\n"
CTR_PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(pathres, "_use_openat2", False)
    elif not pathres._use_openat2:
        pytest.skip("this kernel or architecture has no openat2")
    return str(request.param)


@pytest.fixture
def rootfs(tmp_path: str) -> str:
    root = os.path.join(str(tmp_path), "rootfs")
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(os.path.join(root, "usr", "lib"))
    os.makedirs(os.path.join(root, "bin"))
    return root


@pytest.fixture
def host_file(tmp_path: str) -> str:
    path = os.path.join(str(tmp_path), "host-passwd")
    with open(path, "w") as f:
        f.write(HOST_PASSWD)
    return path


def write(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def test_absolute_symlink_in_the_image_resolves_inside_the_root(rootfs: str, mode: str) -> None:
    """/etc/passwd -> /usr/lib/passwd (item 14): read from the image, not treated as missing."""
    write(os.path.join(rootfs, "usr", "lib", "passwd"), CTR_PASSWD)
    write(os.path.join(rootfs, "etc", "group"), "root:x:0:\nstaff:x:50:app\n")
    os.symlink("/usr/lib/passwd", os.path.join(rootfs, "etc", "passwd"))
    assert users.resolve(rootfs, "app") == (1000, 1000, [50], "/home/app")
    os.unlink(os.path.join(rootfs, "etc", "passwd"))
    os.symlink("../usr/./lib/../lib/passwd", os.path.join(rootfs, "etc", "passwd"))
    assert users.resolve(rootfs, "app:staff")[:2] == (1000, 50)


def test_links_to_host_files_are_resolved_inside_the_root(rootfs: str, host_file: str, mode: str) -> None:
    etc = os.path.join(rootfs, "etc")
    for target in (host_file, "../../../../../../../.." + host_file, "/../../.." + host_file):
        os.symlink(target, os.path.join(etc, "passwd"))
        assert pathres.read_in_root(rootfs, "/etc/passwd") is None
        with pytest.raises(InvalidInput, match="unable to find user app"):
            users.resolve(rootfs, "app")
        os.unlink(os.path.join(etc, "passwd"))
    # /etc a link to a host directory: the directory of that name inside the root is what is read
    host_dir = os.path.dirname(host_file)
    write(os.path.join(host_dir, "passwd"), HOST_PASSWD)
    os.makedirs(os.path.join(rootfs, host_dir.lstrip("/")))
    write(os.path.join(rootfs, host_dir.lstrip("/"), "passwd"), CTR_PASSWD)
    os.rename(etc, etc + ".old")
    os.symlink(host_dir, etc)
    assert users.resolve(rootfs, "app")[0] == 1000


def test_loops_devices_and_fifos_are_not_read(rootfs: str, mode: str) -> None:
    etc = os.path.join(rootfs, "etc")
    os.symlink("passwd", os.path.join(etc, "passwd"))
    assert pathres.read_in_root(rootfs, "/etc/passwd") is None
    os.unlink(os.path.join(etc, "passwd"))
    os.mkfifo(os.path.join(etc, "passwd"))  # opening a FIFO for reading would block forever
    assert pathres.read_in_root(rootfs, "/etc/passwd") is None
    assert users.resolve(rootfs, None) == (0, 0, [], "/")
    os.unlink(os.path.join(etc, "passwd"))
    os.symlink("/dev/zero", os.path.join(etc, "passwd"))  # the host's device is not inside the root
    assert pathres.read_in_root(rootfs, "/etc/passwd") is None


def test_command_check_follows_links_inside_the_root(rootfs: str, host_file: str, mode: str) -> None:
    write(os.path.join(rootfs, "bin", "busybox"), "#!/bin/sh\n", 0o755)
    os.symlink("/bin/busybox", os.path.join(rootfs, "bin", "sh"))
    pathres.check_executable(rootfs, "sh", ["PATH=/usr/bin:/bin"], "/")
    os.chmod(host_file, 0o755)
    os.symlink(host_file, os.path.join(rootfs, "bin", "escape"))  # executable on the host only
    with pytest.raises(pathres.ExecError) as err:
        pathres.check_executable(rootfs, "/bin/escape", [], "/")
    assert err.value.exit_code == 127


SWAPPER = """
import os, sys
etc, host, text = sys.argv[1], sys.argv[2], sys.argv[3]
tmp_l, tmp_f, dst = os.path.join(etc, ".l"), os.path.join(etc, ".f"), os.path.join(etc, "passwd")
print("ready", flush=True)
while True:
    with open(tmp_f, "w") as f:
        f.write(text)
    os.rename(tmp_f, dst)
    os.symlink(host, tmp_l)
    os.rename(tmp_l, dst)
"""


@pytest.fixture
def swapper(rootfs: str, host_file: str) -> Iterator[subprocess.Popen[str]]:
    """A process swapping the container's /etc/passwd between a file and a link to a host file."""
    p = subprocess.Popen([sys.executable, "-c", SWAPPER, os.path.join(rootfs, "etc"), host_file, CTR_PASSWD],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
        yield p
    finally:
        p.kill()
        p.wait(timeout=10)
        if p.stdout:
            p.stdout.close()


def test_user_lookup_never_reads_the_host_file_while_passwd_is_swapped(rootfs: str, swapper: object,
                                                                       mode: str) -> None:
    """Item 7: check-then-open read the host's file; a descriptor walk cannot."""
    seen: dict[object, int] = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            uid = users.resolve(rootfs, "app")[0]
        except InvalidInput:
            uid = "missing"
        seen[uid] = seen.get(uid, 0) + 1
    assert 4242 not in seen, seen
    assert seen.get(1000), seen  # the lookups did run while the file was there


def test_working_directory_is_never_created_outside_the_root(rootfs: str, tmp_path: str) -> None:
    """The workdir is made with mkdirat below descriptors: a link, even one swapped in between
    two steps, stops the creation instead of leading it out."""
    outside = os.path.join(str(tmp_path), "outside")
    os.makedirs(outside)
    ContainerManager._ensure_dir(rootfs, "/srv/app/data")
    assert os.path.isdir(os.path.join(rootfs, "srv", "app", "data"))
    os.symlink(outside, os.path.join(rootfs, "w"))
    ContainerManager._ensure_dir(rootfs, "/w/sub")
    assert os.listdir(outside) == []
    swap = subprocess.Popen([sys.executable, "-c", """
import os, shutil, sys
dst, outside = os.path.join(sys.argv[1], "x"), sys.argv[2]
print("ready", flush=True)
def step(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass  # berth made or left something there meanwhile
while True:
    step(os.mkdir, dst)
    step(shutil.rmtree, dst)
    step(os.symlink, outside, dst)
    step(os.unlink, dst)
""", rootfs, outside], stdout=subprocess.PIPE, text=True)
    try:
        assert swap.stdout is not None and swap.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not os.listdir(outside):
            try:
                ContainerManager._ensure_dir(rootfs, "/x/made-by-berth")
            except OSError:
                pass  # the directory vanished under the walk: the swapper removes it
    finally:
        swap.kill()
        swap.wait(timeout=10)
        if swap.stdout:
            swap.stdout.close()
    assert os.listdir(outside) == []
