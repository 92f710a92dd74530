"""`berth exec-mux`: keep one exec channel into a running container open (the Ansible
connection starts it; see berth.container.execmux)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.cli.containers import EngineOpener


def cmd_exec_mux(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.container import execmux

    if a.idle <= 0:
        raise InvalidInput("--idle must be a positive number of seconds")
    with contextlib.ExitStack() as keep:  # the exec command's process file, until the agent has started
        with open_engine(a) as e:
            argv = keep.enter_context(e.containers.exec_command(a.container, execmux.AGENT_ARGS, [], a.user,
                                                                None, False))
        ready = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the client reads stdout up to "ready"; nothing after it
        os.close(devnull)
        return execmux.serve(argv, a.socket, a.idle, ready)


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    if not want("exec-mux"):
        return
    # internal: no help entry, so `berth --help` does not list it (the Ansible connection uses it)
    sp: Any = sub.add_parser("exec-mux", description=(
        "Keep one exec channel into a running container open on a unix socket, so that many short "
        "commands each cost a fork inside the container instead of a new `berth exec`. Exits after "
        "--idle seconds without a request, or when the container stops."))
    sp.add_argument("--socket", required=True, help="the unix socket to listen on (created mode 0600)")
    sp.add_argument("--idle", type=float, default=60.0, help="seconds without a request before exiting")
    sp.add_argument("-u", "--user", help="user to run the commands as (as exec -u)")
    sp.add_argument("container")
    sp.set_defaults(fn=lambda a: cmd_exec_mux(a, open_engine))
