"""`berth build`: argument parsing and output only (the builder is berth.image.build)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.errors import BerthError

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]


def cmd_build(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    args = {}
    for item in a.build_arg:
        k, sep, v = item.partition("=")
        args[k] = v if sep else os.environ.get(k, "")
    data = None
    with contextlib.ExitStack() as stack:
        context = a.context
        if context == "-" or a.file == "-":
            if context == "-" and a.file not in (None, "-"):
                raise BerthError("build -: the Dockerfile comes from stdin, so -f cannot name one")
            data = sys.stdin.buffer.read()
            dockerfile = "Dockerfile (stdin)"
        else:
            dockerfile = a.file or os.path.join(context, "Dockerfile")
            if not os.path.exists(dockerfile):
                raise BerthError(f"no Dockerfile at {dockerfile} (use -f)")
        if context == "-":
            context = stack.enter_context(tempfile.TemporaryDirectory(prefix="berth-build-"))  # no context
        with open_engine(a) as e:
            img = e.build(context, dockerfile, args, a.tag, a.quiet, not a.no_cache, a.target, data, a.network)
    print(img.id)
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    if not want("build"):
        return
    text = ("build an image from a Dockerfile (docker's instructions and rules, classic builder; multi-stage, "
            "FROM scratch). CONTEXT - reads the Dockerfile from stdin with an empty context; exit code: a failing "
            "RUN step's, 1 for other errors")
    sp: Any = sub.add_parser("build", help=text, description=text)
    sp.set_defaults(fn=lambda a: cmd_build(a, open_engine))
    sp.add_argument("context", help="the build context directory, or - (Dockerfile on stdin, no context)")
    sp.add_argument("-t", "--tag", action="append", default=[])
    sp.add_argument("-f", "--file", help="Dockerfile (default CONTEXT/Dockerfile; - reads it from stdin)")
    sp.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    sp.add_argument("--no-cache", action="store_true")
    sp.add_argument("--target", help="build up to this stage (FROM ... AS NAME) and stop")
    sp.add_argument("--network", choices=["none", "host"], default="none",
                    help="the network of RUN steps: none (default, docker's own for a build container: no "
                         "interfaces but lo) or host")
    sp.add_argument("-q", "--quiet", action="store_true")
