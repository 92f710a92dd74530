"""`berth volume create|ls|inspect|rm|prune` (parsing and printing only)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.cli import output
from berth.errors import BerthError, InvalidInput, one_line

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]


def cmd_volume(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        vols = e.volumes
        if a.volume_command == "create":
            v, _made = vols.create(a.name, _labels(a.label))
            print(v.name)
        elif a.volume_command == "ls":
            listed = vols.list()
            if a.quiet:
                for v in listed:
                    print(v.name)
            elif a.format == "json":
                output.print_json([vols.inspect(v.name) for v in listed])
            else:
                output.table([["local", v.name] for v in listed], ["DRIVER", "VOLUME NAME"])
        elif a.volume_command == "inspect":
            output.print_json([vols.inspect(n) for n in a.names])
        elif a.volume_command == "rm":
            rc = 0
            for n in a.names:
                try:
                    vols.remove(n)
                    print(n)
                except BerthError as err:
                    if a.force and not vols.store.exists(n):
                        continue  # -f: a volume that is not there is no error
                    print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
                    rc = 1
            return rc
        elif a.volume_command == "prune":
            if not a.force and not _confirm("all volumes not used by at least one container"):
                return 0
            removed = vols.prune()
            if removed:
                print("Deleted Volumes:\n" + "\n".join(n for n, _size in removed))
            print(f"Total reclaimed space: {output.human_size(sum(s for _n, s in removed))}")
    return 0


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise InvalidInput(f"invalid --label {item!r}: use KEY=VALUE")
        out[k] = v
    return out


def _confirm(what: str) -> bool:
    if not sys.stdin.isatty():
        raise InvalidInput(f"this removes {what}: add --force to confirm (stdin is not a terminal to ask on)")
    answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    if not want("volume"):
        return
    vol = sub.add_parser("volume", help="named volumes (ROOT/volumes/NAME/_data)",
                         description="Named volumes: directories under the berth root that outlive containers. "
                                     "`run -v NAME:/path` creates one on first use and fills it from the image.")
    vsub = vol.add_subparsers(dest="volume_command", metavar="COMMAND")
    vsub.required = True
    sp: Any = vsub.add_parser("create", help="create a volume (an existing one is left as it is)")
    sp.add_argument("--label", "-l", action="append", default=[], metavar="K=V", help="set a label (repeatable)")
    sp.add_argument("name")
    sp = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.add_argument("-q", "--quiet", action="store_true", help="only names")
    sp = vsub.add_parser("inspect", help="show volumes as JSON (Mountpoint, Labels, UsedBy, …)")
    sp.add_argument("names", nargs="+")
    sp = vsub.add_parser("rm", aliases=["remove"],
                         help="remove volumes and their data (refused while a container refers to one)")
    sp.add_argument("-f", "--force", action="store_true", help="a volume that does not exist is no error")
    sp.add_argument("names", nargs="+")
    sp = vsub.add_parser("prune", help="remove every volume no container refers to, with its data")
    sp.add_argument("-a", "--all", action="store_true", help="accepted for docker compatibility (berth has no "
                    "anonymous volumes: every unused volume goes)")
    sp.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    for p in vsub.choices.values():
        p.set_defaults(fn=lambda a: cmd_volume(a, open_engine))
    for alias, real in (("list", "ls"), ("remove", "rm")):
        vsub.choices[alias].set_defaults(volume_command=real)
