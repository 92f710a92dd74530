"""`berth cp` (parsing only; the copy is berth.container.copy's)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]

HELP = """Copy files between a container and the host, as docker cp:
  berth cp [-a] [-L] CONTAINER:SRC_PATH DEST_PATH|-
  berth cp [-a] [-L] SRC_PATH|- CONTAINER:DEST_PATH
Paths in the container are resolved inside its root: its symlinks never lead to the host. `-` is
a tar stream on stdout (from the container) or stdin (extracted into a container directory).
SRC ending in /. copies a directory's content; an existing DEST directory receives SRC under its
own name; a DEST that does not exist is created. Works on running containers (their volumes and
bind mounts too) and stopped ones (their file system). Modes and times are kept; ownership with -a,
else files become root's in the container and the caller's on the host."""


def cmd_cp(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    if a.dest == "-" and sys.stdout.isatty():
        raise InvalidInput("refusing to write a tar stream to a terminal: redirect it or give a host path")
    with open_engine(a) as e:
        e.copy(a.src, a.dest, archive=a.archive, follow=a.follow_link, stdin=sys.stdin.buffer,
               stdout=sys.stdout.buffer)
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    if not want("cp"):
        return
    sp = sub.add_parser("cp", help="copy files between a container and the host (or a tar stream)",
                        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("-a", "--archive", action="store_true", help="keep the files' owners (uid and gid)")
    sp.add_argument("-L", "--follow-link", action="store_true", help="copy what a symlink SRC_PATH points to")
    sp.add_argument("-q", "--quiet", action="store_true", help="accepted for docker compatibility (berth "
                    "prints nothing on success)")
    sp.add_argument("src", metavar="SRC")
    sp.add_argument("dest", metavar="DEST")
    sp.set_defaults(fn=lambda a: cmd_cp(a, open_engine))
