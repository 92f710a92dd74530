"""The process `exec` (and a health probe) starts in a running container, handed to the runtime
as a process file (`crun|runc exec --process FILE`): the container's own process settings
(capabilities, rlimits, no_new_privileges, AppArmor profile, ...) with the command, environment,
working directory, terminal and user of this exec, the user's supplementary groups included.

A file rather than flags because flags cannot say it: crun's exec has no flag for supplementary
groups (it runs the process with none), and runc's exec keeps the container's groups when it is
given none (a process run as another user would get the container user's groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator


def process(base: dict[str, object], args: list[str], env: list[str], cwd: str, tty: bool,
            uid: int, gid: int, additional_gids: list[int]) -> dict[str, object]:
    """The OCI process: base (the container's config.json process) with this exec's settings."""
    out = dict(base)
    out.pop("consoleSize", None)
    out.update(terminal=tty, args=list(args), env=list(env), cwd=cwd,
               user={"uid": uid, "gid": gid, **({"additionalGids": list(additional_gids)} if additional_gids else {})})
    return out


@contextlib.contextmanager
def process_file(state_dir: str, proc: dict[str, object]) -> Iterator[str]:
    """proc written to a private file in the container's state directory while the context lasts
    (the runtime reads it when it starts; it holds the environment, so mode 0600)."""
    fd, path = tempfile.mkstemp(prefix="exec-", suffix=".json", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(proc, f)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
