"""Fault points: the moments at which the kill harness stops a berth command dead.

A mutating command passes named points as it works (each database commit, before and after each
external command, each mount, each file renamed into place, ...). With BERTH_FAULT_AT=N in the
environment the process SIGKILLs itself at the Nth point it reaches, exactly as `kill -9` would
(BERTH_FAULT_AT=<name>: at the first point of that name);
with BERTH_FAULT_TRACE=<file> it appends "N name" for every point, so a harness can first count a
command's points and then kill it at each of them. BERTH_FAULT_STOP_AT=<name> stops the process
(SIGSTOP) at the first point of that name, so that a race test can run another command in exactly
that window and then let it go on (SIGCONT). Without either variable a point costs one
comparison. The variables are never passed on to the helpers berth starts (conmon, exit commands).
"""

from __future__ import annotations

import os
import signal

ENV_AT = "BERTH_FAULT_AT"
ENV_TRACE = "BERTH_FAULT_TRACE"
ENV_STOP = "BERTH_FAULT_STOP_AT"

_at_setting = os.environ.get(ENV_AT, "") or ""
_at = int(_at_setting) if _at_setting.isdigit() else 0
_at_name = None if _at_setting.isdigit() or not _at_setting else _at_setting
_trace = os.environ.get(ENV_TRACE) or None
_stop = os.environ.get(ENV_STOP) or None
_count = 0


def point(name: str) -> None:
    """One moment a crash may happen at."""
    global _count, _stop
    if name == _stop:
        _stop = None
        os.kill(os.getpid(), signal.SIGSTOP)
    if name == _at_name:
        os.kill(os.getpid(), signal.SIGKILL)
    if not _at and _trace is None:
        return
    _count += 1
    if _trace is not None:
        with open(_trace, "a", encoding="utf-8") as f:
            f.write(f"{_count} {name}\n")
    if _count == _at:
        os.kill(os.getpid(), signal.SIGKILL)


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """env without the fault variables (for processes that outlive or run beside this one)."""
    return {k: v for k, v in env.items() if k not in (ENV_AT, ENV_TRACE, ENV_STOP)}
