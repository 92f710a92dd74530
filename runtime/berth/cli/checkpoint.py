"""`berth checkpoint` and `berth restore` (parsing and printing only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]
NEEDS = ("Needs CRIU working on the kernel (`criu check`); where it cannot, berth refuses with CRIU's "
         "reason.")


def cmd_checkpoint(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        e.checkpoints().checkpoint(a.container, a.export, a.leave_running)
    print(a.container)
    return 0


def cmd_restore(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        e.checkpoints().restore(a.container, a.import_)
    print(a.container)
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    if want("checkpoint"):
        text = "save a running container's processes with CRIU (it stops unless --leave-running)"
        sp = sub.add_parser("checkpoint", help=text, description=f"{text}. {NEEDS}")
        sp.add_argument("--export", "-e", metavar="FILE", help="also write the checkpoint to FILE (tar.gz)")
        sp.add_argument("--leave-running", "-R", action="store_true", help="keep the container running")
        sp.add_argument("container")
        sp.set_defaults(fn=lambda a: cmd_checkpoint(a, open_engine))
    if want("restore"):
        text = "start a checkpointed container again from its checkpoint, processes and memory as they were"
        sp = sub.add_parser("restore", help=text, description=f"{text}. {NEEDS}")
        sp.add_argument("--import", "-i", dest="import_", metavar="FILE",
                        help="restore from a checkpoint that `berth checkpoint --export` wrote (into a container "
                             "created from the same image)")
        sp.add_argument("container")
        sp.set_defaults(fn=lambda a: cmd_restore(a, open_engine))
