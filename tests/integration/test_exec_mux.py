"""`berth exec-mux`: one exec channel kept open into a running container (the Ansible
connection's ControlPersist). Commands through it run with the isolation `berth exec` gives
(same user, cgroup, namespaces, capabilities), and the channel ends with its container."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable

from tests.conftest import BERTH, berth


def _call(path: str, cmd: str, data: bytes = b"") -> tuple[int, bytes, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(path)
        assert s.recv(1) == b"\x01"
        s.sendall(struct.pack(">I", len(cmd)) + cmd.encode() + struct.pack(">Q", len(data)) + data)

        def rd(n: int) -> bytes:
            b = b""
            while len(b) < n:
                chunk = s.recv(n - len(b))
                assert chunk, "the channel closed"
                b += chunk
            return b

        rc, size = struct.unpack(">iQ", rd(12))
        out = rd(size)
        err = rd(struct.unpack(">Q", rd(8))[0])
        return rc, out, err


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _start_mux(env: dict[str, str], sock: str, *args: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([BERTH, "exec-mux", "--socket", sock, *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None
    line = p.stdout.readline()
    if line != b"ready\n":
        p.wait(timeout=30)
        raise AssertionError(f"exec-mux did not start: {p.stderr.read().decode() if p.stderr else ''}")
    return p


def test_exec_mux_runs_commands_as_exec_does(berth_env: dict[str, str], busybox_tar: str, tmp_path: str) -> None:
    env = berth_env
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    # busybox plus the host's python3, read-only (the agent needs python3, as Ansible does)
    berth(env, "run", "-d", "--name", "py", "--network", "none", "-e", "GREETING=hi", "-v", "/usr:/usr:ro",
          "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "bb", "sleep", "100000")
    sock = os.path.join(str(tmp_path), "py.sock")
    mux = _start_mux(env, sock, "--idle", "60", "py")
    try:
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        assert _call(sock, "cat; echo $GREETING; echo oops >&2; exit 3", b"in\n") == (3, b"in\nhi\n", b"oops\n")
        # the same process view and cgroup as berth exec
        via_exec = berth(env, "exec", "py", "cat", "/proc/self/cgroup").stdout.encode()
        assert _call(sock, "cat /proc/self/cgroup")[1] == via_exec
        assert _call(sock, "cat /proc/1/cmdline")[1] == b"sleep\x00100000\x00"
        assert _call(sock, "grep CapEff /proc/self/status")[1] == \
            berth(env, "exec", "py", "grep", "CapEff", "/proc/self/status").stdout.encode()
        # one mux per socket
        second = subprocess.run([BERTH, "exec-mux", "--socket", sock, "py"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1 and "another exec mux serves" in second.stderr
        # the channel ends with its container, and takes its socket with it
        berth(env, "stop", "-t", "0", "py")
        mux.wait(timeout=30)
        assert mux.returncode == 0 and not os.path.exists(sock) and not os.path.exists(sock + ".lock")
    finally:
        if mux.poll() is None:
            mux.kill()
            mux.wait()


def test_exec_mux_as_user_and_idle_exit(berth_env: dict[str, str], busybox_tar: str, tmp_path: str) -> None:
    env = berth_env
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    berth(env, "run", "-d", "--name", "py", "--network", "none", "-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro",
          "-v", "/lib64:/lib64:ro", "bb", "sleep", "100000")
    sock = os.path.join(str(tmp_path), "u.sock")
    mux = _start_mux(env, sock, "--idle", "1", "-u", "1000:1000", "py")
    try:
        assert _call(sock, "id -u; id -g")[1] == b"1000\n1000\n"
        mux.wait(timeout=30)  # a second without a request: gone
        assert not os.path.exists(sock)
    finally:
        if mux.poll() is None:
            mux.kill()
            mux.wait()


def test_exec_mux_refusals(berth_env: dict[str, str], busybox_tar: str, tmp_path: str) -> None:
    env = berth_env
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    berth(env, "run", "-d", "--name", "bare", "--network", "none", "bb", "sleep", "100000")
    sock = os.path.join(str(tmp_path), "b.sock")
    cp = subprocess.run([BERTH, "exec-mux", "--socket", sock, "bare"], env=env, capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 1 and cp.stderr.strip().endswith("no python3 for the exec agent (use berth exec instead)")
    assert len(cp.stderr.strip().splitlines()) == 1 and not os.path.exists(sock)
    berth(env, "stop", "-t", "0", "bare")
    cp = subprocess.run([BERTH, "exec-mux", "--socket", sock, "bare"], env=env, capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 1 and "is not running" in cp.stderr
