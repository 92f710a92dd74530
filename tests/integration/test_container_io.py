"""What users type every day: `logs -f`, `--env-file`, `--entrypoint`, `run -t` on a real
pseudo-terminal, and a container that merely exits (no rm) giving back its mount and cgroup."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from tests.conftest import BERTH, CGROUP_PARENT, berth, wait_for


@pytest.fixture
def ovl(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return e


def mounts_below(path: str) -> list[str]:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(real + "/")]


def cgroup_dirs(cid: str) -> list[str]:
    return [d for d in (f"/sys/fs/cgroup/{ctrl}/{CGROUP_PARENT}/{cid}" for ctrl in os.listdir("/sys/fs/cgroup"))
            if os.path.isdir(d)]


@pytest.mark.timeout(120)
def test_logs_follow_copies_new_output_until_exit(ovl: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    sync = tmp_path / "sync"
    sync.mkdir()
    berth(ovl, "run", "-d", "--name", "chatty", "--network", "none", "-v", f"{sync}:/sync", "busybox", "sh", "-c",
          "echo before; echo err-before >&2; while [ ! -e /sync/go ]; do sleep 0.05; done; "
          "echo after; echo err-after >&2; exit 0")
    wait_for(lambda: berth(ovl, "logs", "chatty").stdout == "before\n", what="the first line logged")
    p = subprocess.Popen([BERTH, "logs", "-f", "chatty"], env=ovl, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "before\n"  # the log so far, then follows
        assert p.poll() is None
        (sync / "go").touch()
        out, err = p.communicate(timeout=60)  # returns by itself once the container has exited
    finally:
        p.kill()
        p.wait(timeout=30)
    assert (p.returncode, out, err) == (0, "after\n", "err-before\nerr-after\n")
    assert berth(ovl, "inspect", "chatty").stdout.count('"Running": false') == 1
    # on a stopped container -f prints the log and returns
    cp = berth(ovl, "logs", "-f", "chatty", timeout=60)
    assert cp.stdout == "before\nafter\n"


def test_env_file(ovl: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    envf = tmp_path / "app.env"
    envf.write_text("# a comment\n\nGREETING=hello world\nEMPTY=\nPATH_LIKE=/a:/b\n")
    out = berth(ovl, "run", "--rm", "--env-file", str(envf), "-e", "EXTRA=1", "busybox", "sh", "-c",
                'echo "$GREETING|$EMPTY|$PATH_LIKE|$EXTRA"; env | grep -c "^#" || true').stdout
    assert out.splitlines() == ["hello world||/a:/b|1", "0"]
    cp = berth(ovl, "run", "--rm", "--env-file", str(tmp_path / "missing.env"), "busybox", "true", check=False)
    assert cp.returncode != 0 and "missing.env" in cp.stderr and "Traceback" not in cp.stderr
    assert berth(ovl, "ps", "-aq").stdout.strip() == ""


def test_entrypoint_override_and_reset(ovl: dict[str, str], busybox_tar: str) -> None:
    berth(ovl, "import", "-c", 'ENTRYPOINT ["echo", "from-entrypoint"]', "-c", 'CMD ["default-arg"]', busybox_tar,
          "ep:1")
    assert berth(ovl, "run", "--rm", "ep:1").stdout == "from-entrypoint default-arg\n"
    assert berth(ovl, "run", "--rm", "ep:1", "given").stdout == "from-entrypoint given\n"
    # --entrypoint replaces the image's entrypoint and drops its CMD (docker does the same)
    assert berth(ovl, "run", "--rm", "--entrypoint", "/bin/echo", "ep:1", "a", "b").stdout == "a b\n"
    assert berth(ovl, "run", "--rm", "--entrypoint", "/bin/hostname", "--hostname", "h1", "ep:1").stdout == "h1\n"
    # an empty --entrypoint resets it: the command runs on its own
    assert berth(ovl, "run", "--rm", "--entrypoint", "", "ep:1", "echo", "plain").stdout == "plain\n"
    berth(ovl, "create", "--name", "c", "--entrypoint", "/bin/true", "ep:1")
    info = json.loads(berth(ovl, "inspect", "c").stdout)[0]
    assert info["Config"]["Entrypoint"] == ["/bin/true"]


def run_on_pty(env: dict[str, str], argv: list[str], stdin: bytes = b"", timeout: float = 60) -> tuple[int, bytes]:
    """Run berth with a fresh pseudo-terminal as its stdin/stdout/stderr; its exit code and output."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: berth on the terminal
        try:
            os.execve(BERTH, [BERTH, *argv], env)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        if stdin:
            os.write(fd, stdin)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"berth {' '.join(argv)} on a terminal did not finish in {timeout:.0f} s: {out!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        pid = 0
        return os.waitstatus_to_exitcode(status), out
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.timeout(120)
def test_run_tty_gives_the_container_a_terminal(ovl: dict[str, str]) -> None:
    code, out = run_on_pty(ovl, ["run", "--rm", "-t", "--network", "none", "busybox", "sh", "-c",
                                 "[ -t 0 ] && [ -t 1 ] && echo both-ttys; tty; exit 5"])
    text = out.decode(errors="replace")
    assert code == 5, text
    assert "both-ttys\r\n" in text and "/dev/pts/" in text, text  # a terminal turns \n into \r\n
    # the same without -t: no terminal inside, though berth's own stdin is one
    code, out = run_on_pty(ovl, ["run", "--rm", "--network", "none", "busybox", "sh", "-c",
                                 "[ -t 1 ] && echo tty || echo no-tty"])
    assert code == 0 and b"no-tty" in out, out
    # -it: what is typed on the terminal reaches the container's shell
    code, out = run_on_pty(ovl, ["run", "--rm", "-i", "-t", "--network", "none", "busybox", "sh", "-c",
                                 "read line; echo \"got:$line\""], stdin=b"typed\n")
    assert code == 0 and b"got:typed" in out, out


def test_exited_container_gives_back_mount_and_cgroup(ovl: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without rm, and without any other berth command looking at it afterwards."""

    def held() -> list[str]:  # mounts below the root and the runroot (where the rootfs is mounted)
        return mounts_below(ovl["BERTH_ROOT"]) + mounts_below(ovl["BERTH_RUNROOT"])

    sync = tmp_path / "sync"
    sync.mkdir()
    assert held() == []
    cid = berth(ovl, "run", "-d", "-m", "16m", "--network", "none", "-v", f"{sync}:/sync", "busybox", "sh", "-c",
                "while [ ! -e /sync/go ]; do sleep 0.05; done").stdout.strip()
    assert held() and cgroup_dirs(cid)  # held while it runs
    (sync / "go").touch()
    wait_for(lambda: not held() and not cgroup_dirs(cid), timeout=60,
             what="the rootfs unmounted and the cgroup removed after the exit")
    # the foreground form too
    berth(ovl, "run", "--name", "fg", "-m", "16m", "--network", "none", "busybox", "true")
    fg = json.loads(berth(ovl, "inspect", "fg").stdout)[0]
    assert fg["State"]["Status"] == "exited"
    assert held() == [] and cgroup_dirs(fg["Id"]) == []
    # and both start again from what is kept
    assert berth(ovl, "start", "-a", "fg").returncode == 0
