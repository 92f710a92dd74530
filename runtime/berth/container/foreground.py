"""A container run in the foreground (`berth run` without -d): the OCI runtime's `run` as a child
of berth, with berth's stdio, docker's sig-proxy, and a terminal when asked for.

The runtime gets a session of its own, so a signal meant for the group berth is in (Ctrl-C on a
terminal, `timeout`) reaches berth only, and berth passes it on once: to the container through
the runtime's kill, or to the runtime process itself while the container does not exist yet."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

from berth import trace
from berth.container import logs

# docker's ForwardAllSignals passes on every signal but SIGCHLD, SIGPIPE and SIGURG (observed with
# docker 20.10: HUP, USR1, a second and a third INT/TERM all reach the container, and docker run
# keeps waiting for its exit); SIGWINCH is a terminal's resize, which the runtime handles itself
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGPIPE, signal.SIGURG, signal.SIGWINCH, signal.SIGKILL, signal.SIGSTOP}
FORWARDED = [s for s in signal.valid_signals() if isinstance(s, signal.Signals) and s not in _NOT_FORWARDED]


OWNER_FILE = "foreground.pid"


def _start_time(pid: int | str) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[19]  # field 22, starttime: tells a reused pid apart


def claim(state_dir: str) -> None:
    """Record that this process runs the container (its monitor, where conmon is for -d)."""
    with open(os.path.join(state_dir, OWNER_FILE), "w", encoding="ascii") as f:
        f.write(f"{os.getpid()} {_start_time('self')}\n")


def owner_alive(state_dir: str) -> bool:
    try:
        with open(os.path.join(state_dir, OWNER_FILE), encoding="ascii") as f:
            pid, start = f.read().split()
        return _start_time(int(pid)) == start
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def proxy_signals(send: Callable[[int], None], signals: list[signal.Signals]) -> Iterator[None]:
    """While inside: each of these signals to berth is handed to send(signum) instead of acting on
    berth (signal handlers can only be set in the main thread; elsewhere nothing is proxied)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, lambda signum, _frame: send(signum)) for s in signals}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(argv: list[str], *, tty: bool, interactive: bool, log_path: str, kill: Callable[[int], bool]) -> int:
    """The runtime in the foreground, traced as one span (the container's whole life)."""
    with trace.span("exec", f"{os.path.basename(argv[0])} run (attached: the container's life)"):
        return _run(argv, tty=tty, interactive=interactive, log_path=log_path, kill=kill)


def _run(argv: list[str], *, tty: bool, interactive: bool, log_path: str, kill: Callable[[int], bool]) -> int:
    """Run the runtime's argv to the end; returns its exit code. kill(signum) signals the container
    (False when it does not exist yet or any more: the runtime process gets the signal then).
    Signals are always passed on: the container is berth's child and cannot outlive it (`run
    --sig-proxy=false` without -i/-t runs under conmon instead, where berth may go)."""
    proc: subprocess.Popen[bytes] | None = None

    def send(signum: int) -> None:
        if proc is None or proc.poll() is not None:
            return
        if signum == signal.SIGWINCH or not kill(signum):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

    with proxy_signals(send, FORWARDED + ([signal.SIGWINCH] if tty else [])):
        if tty and os.isatty(0):
            proc = subprocess.Popen(argv, start_new_session=True)
            return proc.wait()
        if tty:
            master, slave = os.openpty()
            try:
                proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
            finally:
                os.close(slave)
            try:
                _copy_terminal(master, log_path)
            finally:
                os.close(master)
            return proc.wait()
        stdin = None if interactive else subprocess.DEVNULL
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        return _copy_pipes(proc, log_path)


def _copy_terminal(master: int, log_path: str) -> None:
    """A pseudo-terminal berth made because its own stdin is none (docker allocates one for -t
    regardless): its output to berth's stdout and into the log, until the last writer closes it."""
    writer = logs.Writer(log_path)
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not data:
                return
            logs.write_out("stdout", data)
            writer.write("stdout", data)
    finally:
        writer.close()


def start_without_signals(threads: list[threading.Thread]) -> None:
    """Start threads that never take berth's signals. The kernel hands a signal sent to the process
    to any thread that does not block it; Python runs its handler in the main thread, but only
    once that thread wakes up. A signal taken by a copier thread would wait, with the main thread in
    waitpid, for the container to end on its own (observed: `timeout -s TERM` lost 1 run in 3).
    A new thread inherits the signal mask of the thread that starts it."""
    blocked = set(FORWARDED) | {signal.SIGWINCH}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        for t in threads:
            t.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _copy_pipes(proc: subprocess.Popen[bytes], log_path: str) -> int:
    """stdout and stderr to berth's own and into the log, so that `berth logs` shows them later."""
    writer = logs.Writer(log_path)
    try:
        copiers = [threading.Thread(target=logs.tee, args=(pipe, name, writer))
                   for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
        start_without_signals(copiers)
        code = proc.wait()
        for t in copiers:
            t.join()
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        return code
    finally:
        writer.close()
        sys.stdout.flush()
