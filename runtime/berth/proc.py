"""The one helper through which berth runs external commands."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from berth import faults, trace
from berth.errors import CommandError


def run(
    argv: Sequence[str],
    *,
    what: str = "",
    input: bytes | None = None,
    cwd: str | None = None,
    check: bool = True,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv (never through a shell); raise CommandError on failure when check is set."""
    argv = [str(a) for a in argv]
    faults.point(f"run {argv[0]}")
    try:
        # never the caller's stdin: a helper must not eat what `run -i` is to hand the container
        with trace.span("exec", describe(argv)):
            cp = subprocess.run(
                argv, input=input, stdin=subprocess.DEVNULL if input is None else None, cwd=cwd,
                capture_output=True, timeout=timeout, env=env, check=False
            )
    except FileNotFoundError as e:
        raise CommandError(argv, 127, f"{argv[0]}: command not found", what) from e
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, 124, f"timed out after {timeout}s", what) from e
    faults.point(f"ran {argv[0]}")
    if check and cp.returncode != 0:
        raise CommandError(argv, cp.returncode, cp.stderr.decode(errors="replace"), what)
    return cp


def describe(argv: Sequence[str]) -> str:
    """A short name for a command in traces: the program and its first few arguments."""
    words = [os.path.basename(str(argv[0]))] + [str(a) for a in argv[1:4]]
    return " ".join(w if len(w) <= 40 else w[:37] + "..." for w in words)


def output(argv: Sequence[str], **kw: object) -> str:
    """Run argv and return its stdout as text."""
    return run(argv, **kw).stdout.decode(errors="replace")  # type: ignore[arg-type]


def spawn_detached(argv: Sequence[str], log: str, env: dict[str, str] | None = None) -> int:
    """Start argv in its own session, in the background, its output appended to log; returns its PID
    (a monitor that outlives the command that starts it)."""
    with open(log, "ab") as out:
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                             start_new_session=True, close_fds=True)
    return p.pid
