"""`-u` and `--group-add` resolve inside the image, as docker does (issue 19 item 7; runc's
libcontainer/user GetExecUser, which dockerd uses): a uid without a passwd entry runs with gid 0;
a named user gets the groups whose member list names it; an explicit group replaces the primary
group and then no groups come from /etc/group; --group-add adds names (looked up in the image) and
gids. The files are read inside the rootfs: an absolute in-image symlink /etc/passwd ->
/usr/lib/passwd resolves to the image's file (issue 18 item 14, second half), never the host's."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import pytest

from tests.conftest import berth

PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"app:x:1000:1000:app:/home/app:/bin/sh\n"
          b"svc:x:1001:1001:svc:/srv:/bin/sh\n")
GROUP = (b"root:x:0:\n"
         b"wheel:x:10:\n"
         b"audio:x:29:app,svc\n"
         b"staff:x:50:app\n"
         b"app:x:1000:\n"
         b"svc:x:1001:\n")


def _image_tar(busybox_tar: str, out: str, linked: bool) -> None:
    """busybox with PASSWD and GROUP as /etc/passwd and /etc/group, or (linked) as
    /usr/lib/passwd and /usr/lib/group with absolute symlinks to them in /etc."""
    with tarfile.open(busybox_tar) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            if m.name.lstrip("./") in ("etc/passwd", "etc/group"):
                continue
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        for name, data in (("passwd", PASSWD), ("group", GROUP)):
            f = tarfile.TarInfo(f"usr/lib/{name}" if linked else f"etc/{name}")
            f.size, f.mode = len(data), 0o644
            dst.addfile(f, io.BytesIO(data))
            if linked:
                link = tarfile.TarInfo(f"etc/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, f"/usr/lib/{name}"
                dst.addfile(link)


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    e = dict(berth_env, BERTH_DRIVER="overlay")
    for tag, linked in (("users:plain", False), ("users:linked", True)):
        path = str(tmp_path / f"{tag.replace(':', '-')}.tar")
        _image_tar(busybox_tar, path, linked)
        berth(e, "import", path, tag)
    return e


def ids(env: dict[str, str], image: str, *flags: str) -> tuple[int, int, set[int]]:
    """uid, gid and the supplementary groups the container's process has (from the kernel)."""
    out = berth(env, "run", "--rm", "--network", "none", *flags, image, "cat", "/proc/self/status").stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return (int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]),
            {int(g) for g in fields["Groups"].split()})


CASES: list[tuple[list[str], tuple[int, int, set[int]]]] = [
    (["-u", "4242"], (4242, 0, set())),  # no passwd entry: gid 0, as docker
    (["-u", "app"], (1000, 1000, {29, 50})),  # the groups that list app
    (["-u", "1000"], (1000, 1000, {29, 50})),  # the same user by uid
    (["-u", "svc"], (1001, 1001, {29})),
    (["-u", "app:staff"], (1000, 50, set())),  # an explicit group: no groups from /etc/group
    (["-u", "app:10"], (1000, 10, set())),
    (["-u", "1000:1000"], (1000, 1000, set())),
    (["-u", "4242:4343"], (4242, 4343, set())),  # neither need exist when numeric
    (["-u", "app", "--group-add", "wheel", "--group-add", "777"], (1000, 1000, {10, 29, 50, 777})),
    (["-u", "4242", "--group-add", "audio"], (4242, 0, {29})),
    ([], (0, 0, set())),
]


@pytest.mark.parametrize("image", ["users:plain", "users:linked"])
def test_users_and_groups_resolve_in_the_image(env: dict[str, str], image: str) -> None:
    for flags, want in CASES:
        assert ids(env, image, *flags) == want, (image, flags)


@pytest.mark.parametrize("flags,why", [
    (["-u", "nosuch"], "unable to find user nosuch"),
    (["-u", "app:nosuch"], "unable to find group nosuch"),
    (["--group-add", "nosuch"], "unable to find group nosuch"),
    (["--group-add", "a b"], "invalid --group-add"),
    (["--group-add", "99999999999"], "invalid --group-add"),
])
def test_unknown_names_are_one_line(env: dict[str, str], flags: list[str], why: str) -> None:
    cp = berth(env, "run", "--rm", "--network", "none", *flags, "users:plain", "true", check=False)
    assert cp.returncode == 125 and why in cp.stderr and len(cp.stderr.splitlines()) == 1, cp


def test_declared_group_add_is_compared(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "s.yml"
    write: Callable[[str], int] = state.write_text
    write("containers:\n  - name: g\n    image: users:plain\n    command: [sleep, '100']\n    network: none\n"
          "    user: app\n    group_add: [wheel]\n")
    berth(env, "apply", "-f", str(state))
    status = berth(env, "exec", "g", "cat", "/proc/1/status").stdout  # the container's own process
    assert "\nGroups:\t10 29 50 \n" in status, status
    assert berth(env, "plan", "-f", str(state)).stdout.startswith("no changes")
    write(state.read_text().replace("[wheel]", "[wheel, audio]"))
    assert "group audio added" in berth(env, "plan", "-f", str(state)).stdout


def exec_ids(env: dict[str, str], container: str, *flags: str) -> tuple[int, int, set[int]]:
    out = berth(env, "exec", *flags, container, "cat", "/proc/self/status").stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return (int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]),
            {int(g) for g in fields["Groups"].split()})


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_exec_user_gets_the_groups_run_gives(env: dict[str, str], runtime: str) -> None:
    """Issue 18: `exec -u NAME` runs with the user's supplementary groups from the container's
    /etc/group, as `run -u` does (crun's exec flags cannot pass them, runc's kept the container
    user's); without -u, exec runs as the container's process does, --group-add included."""
    berth(env, "run", "-d", "--network", "none", "--runtime", runtime, "--name", "x", "users:linked", "sleep", "1000")
    for flags, want in CASES:
        if flags and "--group-add" not in flags:
            assert exec_ids(env, "x", *flags) == want, (runtime, flags)
    berth(env, "run", "-d", "--network", "none", "--runtime", runtime, "--name", "y", "-u", "app",
          "--group-add", "wheel", "users:plain", "sleep", "1000")
    assert exec_ids(env, "y") == (1000, 1000, {10, 29, 50})
    assert exec_ids(env, "y", "-u", "svc") == (1001, 1001, {10, 29})  # --group-add applies to every exec
    assert exec_ids(env, "y", "-u", "root") == (0, 0, {10})
    berth(env, "rm", "-f", "x", "y")
