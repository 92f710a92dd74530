"""The everyday verbs of the CLI (parsing and printing only): stats, top, pause, unpause, rename,
port, update, events; and the health monitor's internal command."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.cli import output
from berth.cli.parser import verb_adder
from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]


def _binary(n: int) -> str:
    return output.human_size(n, binary=True)


def stats_row(r: dict[str, Any]) -> dict[str, str]:
    """One container's reading as docker's stats shows it (the keys of `--format json`)."""
    return {"BlockIO": f"{output.human_size(r['blk_read'])} / {output.human_size(r['blk_write'])}",
            "CPUPerc": f"{r['cpu_percent']:.2f}%", "Container": r["id"][:12], "ID": r["id"][:12],
            "MemPerc": f"{r['mem_percent']:.2f}%", "MemUsage": f"{_binary(r['mem_usage'])} / {_binary(r['mem_limit'])}",
            "Name": r["name"], "NetIO": f"{output.human_size(r['net_rx'])} / {output.human_size(r['net_tx'])}",
            "PIDs": str(r["pids"])}


def _print_stats(rows: list[dict[str, Any]], fmt: str) -> None:
    shown = [stats_row(r) for r in rows]
    if fmt == "json":
        for s in shown:
            print(json.dumps(s, sort_keys=True))
        return
    output.table([[s["ID"], s["Name"], s["CPUPerc"], s["MemUsage"], s["MemPerc"], s["NetIO"], s["BlockIO"], s["PIDs"]]
                  for s in shown],
                 ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"])


def cmd_stats(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        if a.no_stream:
            _print_stats(e.stats(a.containers), a.format)
            return 0
        previous: dict[str, dict[str, object]] = {}
        rows = e.stats(a.containers)
        for r in rows:
            previous[str(r["id"])] = r
        while True:
            if sys.stdout.isatty() and a.format != "json":
                print("\033[2J\033[H", end="")
            _print_stats(rows, a.format)
            sys.stdout.flush()
            time.sleep(1)
            rows = e.stats(a.containers, previous=previous)


def cmd_top(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        titles, rows = e.top(a.container, list(a.ps_args))
    output.table(rows, titles)
    return 0


def cmd_pause(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for ref in a.containers:
            (e.pause if a.pause_verb == "pause" else e.unpause)(ref)
            print(ref)
    return 0


def cmd_rename(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        e.rename(a.container, a.new_name)
    return 0


def cmd_port(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for private, public in e.ports(a.container, a.private):
            print(public if a.private else f"{private} -> {public}")
    return 0


def cmd_update(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.container.options import BY_NAME, checked
    from berth.units import parse_size

    memory = parse_size(a.memory, "memory limit") if a.memory else None
    if memory is not None:
        checked(BY_NAME["memory"], memory, "--memory", InvalidInput)
    try:
        cpus = float(a.cpus) if a.cpus is not None else None
        pids = int(a.pids_limit) if a.pids_limit is not None else None
    except ValueError:
        raise InvalidInput("invalid --cpus or --pids-limit: use a number") from None
    if pids is not None:
        checked(BY_NAME["pids_limit"], pids, "--pids-limit", InvalidInput)
    with open_engine(a) as e:
        for ref in a.containers:
            e.update_container(ref, memory, cpus, pids, a.restart)
            print(ref)
    return 0


def _event_line(ev: dict[str, Any]) -> str:
    ts = dt.datetime.fromtimestamp(int(ev["timeNano"]) // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = int(ev["timeNano"]) % 1_000_000_000
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev.get("Actor", {}).get("Attributes", {}).items()))
    return f"{ts}.{frac:09d}Z {ev['Type']} {ev['Action']} {ev['id']} ({attrs})"


def cmd_events(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.container import events

    now = time.time()
    since = events.parse_time(a.since, now) if a.since else None
    until = events.parse_time(a.until, now) if a.until else None
    filters = events.parse_filters(a.filter)
    if a.format not in ("json", "table", "{{json .}}"):
        raise InvalidInput(f"unsupported --format {a.format!r}: use json or table")

    def show(ev: dict[str, Any]) -> bool:
        t = int(ev.get("timeNano", 0)) / 1e9
        if (since is not None and t < since) or (until is not None and t > until) or not events.matches(ev, filters):
            return False
        print(json.dumps(ev, sort_keys=True) if a.format != "table" else _event_line(ev), flush=True)
        return True

    with open_engine(a) as e:
        journal = e.events()
        if since is not None:
            for ev in journal.read():
                show(ev)
        if until is not None and until <= time.time():
            return 0
        for ev in journal.follow(lambda: until is not None and time.time() > until):
            show(ev)
    return 0


def cmd_container_health(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    """The health monitor of one container, started with it (not for people)."""
    with open_engine(a) as e:
        e.health_monitor(a.container)
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    add = verb_adder(sub, open_engine, want)

    sp = add("stats", cmd_stats, "display a live stream of containers' resource usage (cgroup counters)")
    sp.add_argument("--no-stream", action="store_true", help="disable streaming stats and only pull the first result")
    sp.add_argument("--format", choices=["table", "json"], default="table", help="output format (json: one object "
                                                                                 "per line)")
    sp.add_argument("containers", nargs="*", help="containers (default: every running one)")

    sp = add("top", cmd_top, "display the running processes of a container")
    sp.add_argument("container")
    sp.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]", help="ps options (default -ef)")

    for verb, text in (("pause", "pause all processes within one or more containers (freezer cgroup)"),
                       ("unpause", "unpause all processes within one or more containers")):
        sp = add(verb, cmd_pause, text)
        sp.add_argument("containers", nargs="+")
        sp.set_defaults(pause_verb=verb)

    sp = add("rename", cmd_rename, "rename a container")
    sp.add_argument("container")
    sp.add_argument("new_name", metavar="NEW_NAME")

    sp = add("port", cmd_port, "list port mappings or a specific mapping for the container")
    sp.add_argument("container")
    sp.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")

    sp = add("update", cmd_update, "update configuration of one or more containers (in place, running or not)")
    sp.add_argument("-m", "--memory", help="memory limit (e.g. 64m)")
    sp.add_argument("--cpus", help="number of CPUs")
    sp.add_argument("--pids-limit", help="tune container pids limit (-1 for unlimited)")
    sp.add_argument("--restart", help="restart policy to apply when a container exits")
    sp.add_argument("containers", nargs="+")

    sp = add("events", cmd_events, "get real time events from the root's journal")
    sp.add_argument("--since", help="show all events created since timestamp (Unix, RFC 3339 or a duration "
                                    "such as 10m)")
    sp.add_argument("--until", help="stream events until this timestamp")
    sp.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="filter output based on conditions provided (container, event, image, type, label)")
    sp.add_argument("--format", default="table", help="table (default) or json (one object per line)")

    sp = add("container-health", cmd_container_health, None)
    sp.add_argument("container")
