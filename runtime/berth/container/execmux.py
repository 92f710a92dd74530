"""One exec channel kept open into a running container, for many short commands: the Ansible
connection's equivalent of SSH's ControlPersist.

Each `berth exec` pays a Python start, the store, and the runtime's exec (namespaces, cgroup,
capabilities and seccomp set up anew). The mux pays that once: it starts a small agent inside the
container through the runtime's exec — the very command `berth exec` would run, so the agent has
the container's user, capabilities, seccomp profile, cgroup and environment — and every command
after that is a child of the agent, with the same isolation. The mux listens on a unix socket
(mode 0600) and ends after `idle` seconds without a request, when the agent ends (the container
stopped or was removed), or on SIGTERM. One mux per socket: a second one started for the same
socket sees the lock taken and leaves.

Frames, on the socket (one request per connection) and on the agent's stdin/stdout alike:
  request:  >I length + command (run with /bin/sh -c), >Q length + the command's stdin
  response: >i exit code, >Q length + stdout, >Q length + stderr
On the socket the mux first sends one byte (ACK) when it takes a connection: a client that sees
the connection close before it knows that its command never ran and may run it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
from typing import BinaryIO

from berth.errors import BerthError
from berth.locks import FileLock

ACK = b"\x01"
# Runs inside the container with python3 (which Ansible needs there anyway).
AGENT = r"""
import struct, subprocess, sys
i, o = sys.stdin.buffer, sys.stdout.buffer
def rd(n):
    b = b""
    while len(b) < n:
        c = i.read(n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
while True:
    cmd = rd(struct.unpack(">I", rd(4))[0])
    data = rd(struct.unpack(">Q", rd(8))[0])
    p = subprocess.run(["/bin/sh", "-c", cmd], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    o.write(struct.pack(">iQ", p.returncode, len(p.stdout)) + p.stdout + struct.pack(">Q", len(p.stderr)) + p.stderr)
    o.flush()
"""
# the agent's command line: a clear exit code when the container has no python3
AGENT_ARGS = ["/bin/sh", "-c", 'command -v python3 >/dev/null 2>&1 || exit 127; exec python3 -u -c "$1"',
              "berth-exec-agent", AGENT]


def read_exact(f: BinaryIO | socket.socket, n: int) -> bytes:
    """n bytes from a file or socket; fewer only at end of stream."""
    chunks, got = [], 0
    while got < n:
        chunk = f.recv(n - got) if isinstance(f, socket.socket) else f.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_request(conn: socket.socket) -> bytes | None:
    """A whole request frame as bytes (to pass on unchanged), None if the client went away."""
    head = read_exact(conn, 4)
    if len(head) < 4:
        return None
    cmd = read_exact(conn, struct.unpack(">I", head)[0])
    size = read_exact(conn, 8)
    if len(size) < 8:
        return None
    data = read_exact(conn, struct.unpack(">Q", size)[0])
    return head + cmd + size + data


def read_response(agent_out: BinaryIO) -> bytes | None:
    """A whole response frame from the agent, None if it ended."""
    head = read_exact(agent_out, 12)
    if len(head) < 12:
        return None
    out = read_exact(agent_out, struct.unpack(">Q", head[4:])[0])
    size = read_exact(agent_out, 8)
    if len(size) < 8:
        return None
    err = read_exact(agent_out, struct.unpack(">Q", size)[0])
    return head + out + size + err


def serve(agent_argv: list[str], socket_path: str, idle: float, ready: BinaryIO | None = None) -> int:
    """Start the agent with agent_argv, then relay requests from socket_path until idle seconds pass
    without one or the agent ends. Writes b"ready\\n" to `ready` once requests are taken."""
    lock = FileLock(socket_path + ".lock")
    if not lock.acquire(blocking=False):
        raise BerthError(f"another exec mux serves {socket_path}")
    try:
        agent = subprocess.Popen(agent_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        assert agent.stdin is not None and agent.stdout is not None
        _check_agent(agent, agent.stdin, agent.stdout)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)  # we hold the lock: a socket left here is a dead mux's
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            srv.bind(socket_path)
        finally:
            os.umask(old_umask)
        srv.listen(8)
        signal.signal(signal.SIGTERM, lambda *_: srv.close())
        if ready is not None:
            ready.write(b"ready\n")
            ready.close()
        try:
            return _relay(srv, agent.stdin, agent.stdout, idle)
        finally:
            srv.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
            agent.stdin.close()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path + ".lock")
        lock.release()


def _check_agent(agent: subprocess.Popen[bytes], agent_in: BinaryIO, agent_out: BinaryIO) -> None:
    """One `true` through the agent: it runs, or the reason it does not."""
    with contextlib.suppress(BrokenPipeError):
        agent_in.write(struct.pack(">I", 4) + b"true" + struct.pack(">Q", 0))
        agent_in.flush()
    response = read_response(agent_out)
    if response is not None and struct.unpack(">i", response[:4])[0] == 0:
        return
    code = agent.wait(timeout=30)
    if code == 127:
        raise BerthError("the container has no python3 for the exec agent (use berth exec instead)")
    raise BerthError(f"the exec agent did not start in the container (exit {code})")


def _relay(srv: socket.socket, agent_in: BinaryIO, agent_out: BinaryIO, idle: float) -> int:
    while True:
        try:
            ready, _, _ = select.select([srv, agent_out], [], [], idle)
        except (OSError, ValueError):  # closed by SIGTERM
            return 0
        if not ready or agent_out in ready:
            return 0  # idle; or the agent's output ended (between requests it writes nothing)
        try:
            conn, _ = srv.accept()
        except OSError:
            return 0
        with conn:
            conn.settimeout(None)
            try:
                conn.sendall(ACK)  # taken: until this byte arrives the client may safely go elsewhere
            except OSError:
                continue
            request = read_request(conn)
            if request is None:
                continue
            try:
                agent_in.write(request)
                agent_in.flush()
            except BrokenPipeError:
                return 0  # the agent (the container) is gone: the client sees the connection close
            response = read_response(agent_out)
            if response is None:
                return 0
            with contextlib.suppress(OSError):
                conn.sendall(response)
