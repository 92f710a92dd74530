"""`berth network ls` with docker's `--format` fields and `--filter` (name, driver), keeping
berth's own table (NAME SUBNET BRIDGE CONTAINERS) as the default."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from berth.cli import output, render
from berth.cli.listing import parse_filters

if TYPE_CHECKING:
    from berth.container.network import Networks

HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
           "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT", "Subnet": "SUBNET",
           "Bridge": "BRIDGE", "Containers": "CONTAINERS"}
TABLE = "table {{.Name}}\t{{.Subnet}}\t{{.Bridge}}\t{{.Containers}}"


def add_ls_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-q", "--quiet", action="store_true", help="only the names")
    sp.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="name=REGEX, driver=bridge")
    render.add_format(sp, help="table (default), json, a Go template over " + ", ".join(f".{k}" for k in HEADERS)
                      + ", or table TEMPLATE")


def list_networks(a: argparse.Namespace, nets: Networks) -> None:
    from berth.cli.gotemplate import Context

    render.check(a.format)
    f = parse_filters(a.filter, ("name", "driver"))
    nets.ensure_default()
    listed = [n for n in nets.list()
              if ("name" not in f or any(re.search(v, str(n["name"])) for v in f["name"]))
              and ("driver" not in f or "bridge" in f["driver"])]
    if a.quiet:
        for n in listed:
            print(n["name"])
        return
    if a.format == "json":
        output.print_json(listed)
        return
    rows: list[Any] = [Context("*formatter.networkContext", {
        "ID": n["name"], "Name": n["name"], "Driver": "bridge", "Scope": "local", "IPv6": "false",
        "Internal": "false", "Labels": "", "Label": lambda _k: "", "CreatedAt": "",
        "Subnet": str(n["subnet"]), "Bridge": str(n["bridge"]),
        "Containers": str(len(n["containers"]))}) for n in listed]  # type: ignore[arg-type]
    fmt = a.format if render.is_template(a.format) else TABLE
    render.print_items(fmt, rows, HEADERS)
