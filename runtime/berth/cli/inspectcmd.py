"""`berth inspect` (and `container inspect`, `image inspect`): docker's JSON shapes, `-f/--format`
Go templates, `-s/--size`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.cli import output, render
from berth.errors import NotFound

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]


def add_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("refs", nargs="+", metavar="NAME|ID")
    sp.add_argument("--type", choices=["any", "container", "image"], default="any",
                    help="what the names are (default: a container if one has the name, else an image)")
    sp.add_argument("-f", "--format", default="json",
                    help="json (default: docker's JSON shapes, berth's additions under Berth) or a Go template "
                         "run on each object, e.g. '{{.State.Status}}' or '{{json .Config}}'")
    sp.add_argument("-s", "--size", action="store_true", help="containers: add SizeRw and SizeRootFs")


def cmd_inspect(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format)
    data: list[dict[str, object]] = []
    with open_engine(a) as e:
        for r in a.refs:
            if a.type in ("container", "any"):
                try:
                    info = e.containers.inspect(r)
                except NotFound:
                    if a.type == "container":
                        raise
                else:
                    if a.size:
                        info["SizeRw"], info["SizeRootFs"] = e.container_size(r)
                    data.append(info)
                    continue
            data.append(e.inspect_image(r))
    if render.is_template(a.format):
        render.print_items(a.format, data, strict=True)
    else:
        output.print_json(data)
    return 0
