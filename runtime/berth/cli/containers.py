"""Container verbs of the CLI (parsing and printing only)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.cli.parser import add_bool_flag, verb_adder
from berth.container.config import OptionError, parse_env
from berth.errors import BerthError, InvalidInput, one_line

if TYPE_CHECKING:
    from berth.container.config import ContainerConfig
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]
RUN_ERROR = 125


def add_create_flags(sp: argparse.ArgumentParser) -> None:
    if not isinstance(sp, argparse.ArgumentParser):
        return  # another verb is being parsed: the option table is not even imported
    from berth.container import options

    options.add_cli_flags(sp)


def config_from_args(a: argparse.Namespace) -> ContainerConfig:
    from berth.container import options

    return options.config_from_cli(a)


def cmd_run(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.container.pathres import ExecError
    from berth.container.runtime import StartError

    if a.ctr_tty and a.interactive and not a.detach and not sys.stdin.isatty():
        print("berth: error: the input device is not a TTY", file=sys.stderr)  # docker's words and exit 1
        return 1
    try:
        with open_engine(a) as e:
            cfg = config_from_args(a)
            c = e.containers.create(cfg, a.ctr_name)
            if a.detach:
                e.containers.start(c.id)
                print(c.id)
                return 0
            if not a.sig_proxy and not (a.interactive or cfg.tty):
                return e.containers.run_attached(c, sig_proxy=False)
            if a.interactive or cfg.tty or cfg.auto_remove:
                return e.containers.run_foreground(c, cfg.tty, a.interactive)
            return e.containers.run_attached(c)
    except (StartError, ExecError) as err:
        print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except BerthError as err:
        print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
        return RUN_ERROR


def cmd_create(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    try:
        cfg = config_from_args(a)
    except BerthError as err:  # a flag's value: refused as docker's flag parsing refuses it, with 125
        print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
        return RUN_ERROR
    try:
        with open_engine(a) as e:
            c = e.containers.create(cfg, a.ctr_name)
    except OptionError as err:  # a value the flags' parsers let through but the config refuses: also 125
        print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
        return RUN_ERROR
    except BerthError as err:  # docker create's other errors exit 1 (observed with 20.10; 125 is run's)
        print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
        return 1
    print(c.id)
    return 0


def cmd_start(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        if a.all_restartable:
            for name in e.containers.start_restartable():
                print(name)
            return 0
        if not a.containers:
            raise InvalidInput("start needs containers (or --all-restartable)")
        if a.attach:
            if len(a.containers) != 1:
                raise InvalidInput("start --attach takes exactly one container")
            return e.containers.run_attached(e.containers.get(a.containers[0]))
        for ref in a.containers:
            e.containers.start(ref)
            print(ref)
    return 0


def cmd_container_exited(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    """Run by conmon when a container with a restart policy exits (not for people)."""
    with open_engine(a) as e:
        e.containers.on_exit(a.container)
    return 0


def cmd_network(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.cli import netfmt, output, render

    with open_engine(a) as e:
        nets = e.networks()
        if a.network_command == "create":
            output.print_json(nets.create(a.name, a.subnet))
        elif a.network_command == "rm":
            for n in a.names:
                nets.remove(n)
                print(n)
        elif a.network_command == "inspect":
            render.check(a.format)
            found = [nets.inspect(n) for n in a.names]
            if render.is_template(a.format):
                render.print_items(a.format, found, strict=True)
            else:
                output.print_json(found)
        else:
            netfmt.list_networks(a, nets)
    return 0


def cmd_stop(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for ref in a.containers:
            e.containers.stop(ref, a.time)
            print(ref)
    return 0


def cmd_restart(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for ref in a.containers:
            e.containers.stop(ref, a.time)
            e.containers.start(ref)
            print(ref)
    return 0


def cmd_kill(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for ref in a.containers:
            e.containers.kill(ref, a.signal)
            print(ref)
    return 0


def cmd_rm(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    rc = 0
    with open_engine(a) as e:
        for ref in a.containers:
            try:
                e.containers.remove(ref, force=a.force)
                print(ref)
            except BerthError as err:
                print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
                rc = 1
    return rc


def cmd_attach(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        return e.containers.attach(a.container, sig_proxy=a.sig_proxy)


def cmd_exec(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    if not a.command:
        raise InvalidInput("exec needs a command to run")
    with open_engine(a) as e:
        return e.containers.exec(a.container, list(a.command), parse_env(a.env), a.user, a.workdir, a.tty)


def cmd_wait(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        for ref in a.containers:
            code = e.wait_container(ref, a.condition, a.timeout)
            print("healthy" if a.condition == "healthy" else code)
    return 0


def cmd_diff(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.cli import output

    with open_engine(a) as e:
        changes = e.containers.changes(a.container)
    if a.format == "json":
        output.print_json([{"Path": "/" + p, "Kind": k} for p, k in changes])
    else:
        for p, k in changes:
            print(f"{k} /{p}")
    return 0


def cmd_commit(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        img = e.containers.commit(a.container, a.reference, a.message or "", a.change, a.author or "")
    print(img.id)
    return 0


def cmd_export(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        if a.output:
            import os

            tmp = a.output + ".berth-partial"
            try:
                with open(tmp, "wb") as f:
                    e.containers.export(a.container, f)
                os.replace(tmp, a.output)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            if sys.stdout.isatty():
                raise InvalidInput("refusing to write a tar archive to a terminal: use -o FILE or redirect")
            e.containers.export(a.container, sys.stdout.buffer)
    return 0


def cmd_snapshot(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    from berth.cli import output

    with open_engine(a) as e:
        m = e.containers
        if a.snapshot_command == "create":
            m.snapshot_create(a.container, a.name, with_volumes=a.with_volumes)
            print(a.name)
        elif a.snapshot_command == "ls":
            snaps = m.snapshot_list(a.container)
            if a.format == "json":
                output.print_json(snaps)
            else:
                output.table([[str(s["name"]), output.since_ts(float(s["created"])),  # type: ignore[arg-type]
                               ",".join(s["volumes"]) or "-"] for s in snaps],  # type: ignore[arg-type]
                             ["NAME", "CREATED", "VOLUMES"])
        elif a.snapshot_command == "restore":
            m.snapshot_restore(a.container, a.name)
            print(a.name)
        elif a.snapshot_command == "rm":
            m.snapshot_remove(a.container, a.name)
            print(a.name)
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    add = verb_adder(sub, open_engine, want)

    sp = add("run", cmd_run, "create and start a container (exit code: the container's; 125 berth error; "
                             "126 not executable; 127 not found)")
    sp.add_argument("-d", "--detach", action="store_true", help="run in the background and print the ID")
    sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
    add_bool_flag(sp, "--sig-proxy", True, "pass the signals berth gets on to the container (default: true; false: "
                                           "a signal ends berth and the container stays, when it runs without -i/-t)")
    add_create_flags(sp)

    add_create_flags(add("create", cmd_create, "create a container without starting it"))

    sp = add("start", cmd_start, "start containers")
    sp.add_argument("-a", "--attach", action="store_true", help="attach to the output and wait for the exit")
    sp.add_argument("--all-restartable", action="store_true",
                    help="start every container whose restart policy asks for it (for a boot-time unit)")
    sp.add_argument("containers", nargs="*")

    sp = add("container-exited", cmd_container_exited, None)
    sp.add_argument("container")

    for name, fn, text in (("stop", cmd_stop, "stop containers: SIGTERM, then SIGKILL after --time seconds"),
                           ("restart", cmd_restart, "stop and start containers")):
        sp = add(name, fn, text)
        sp.add_argument("-t", "--time", type=float, default=10, help="seconds to wait before SIGKILL (default 10)")
        sp.add_argument("containers", nargs="+")

    sp = add("kill", cmd_kill, "send a signal to containers")
    sp.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")
    sp.add_argument("containers", nargs="+")

    sp = add("rm", cmd_rm, "remove containers (with their rw layer, logs and snapshots)")
    sp.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    sp.add_argument("containers", nargs="+")

    if want("ps"):
        from berth.cli import listing

        listing.add_ps_flags(add("ps", listing.cmd_ps, "list containers (running ones; -a: all)"))
    if want("logs"):
        from berth.cli import logcmd

        logcmd.add_flags(add("logs", logcmd.cmd_logs, "show a container's output"))

    sp = add("attach", cmd_attach, "follow a running container's output until it exits; exit with its code")
    add_bool_flag(sp, "--sig-proxy", True, "pass the signals berth gets on to the container (default: true)")
    sp.add_argument("--no-stdin", action="store_true",
                    help="accepted for docker compatibility: a detached container's stdin is never kept open")
    sp.add_argument("container")

    sp = add("exec", cmd_exec, "run a command in a running container")
    sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached (always on)")
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("-e", "--env", action="append", default=[])
    sp.add_argument("-u", "--user", help="USER[:GROUP] as run -u: resolved in the container, with the user's "
                    "supplementary groups and the container's --group-add (default: the container's user)")
    sp.add_argument("-w", "--workdir")
    sp.add_argument("container")
    sp.add_argument("command", nargs=argparse.REMAINDER)

    sp = add("wait", cmd_wait, "wait for containers to exit and print their exit codes")
    sp.add_argument("--condition", choices=["not-running", "next-exit", "removed", "healthy"], default="not-running",
                    help="not-running (default), next-exit, removed, or healthy (until the health check passes)")
    sp.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    sp.add_argument("containers", nargs="+")

    sp = add("diff", cmd_diff, "list a container's changes (A added, C changed, D deleted)")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.add_argument("container")

    sp = add("commit", cmd_commit, "make an image from a container's changes")
    sp.add_argument("-m", "--message")
    sp.add_argument("-a", "--author")
    sp.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction (CMD, ENV, …)")
    sp.add_argument("container")
    sp.add_argument("reference", nargs="?")

    sp = add("export", cmd_export, "write a container's file system as a tar archive")
    sp.add_argument("-o", "--output", help="file to write (default: stdout)")
    sp.add_argument("container")

    if want("network"):
        from berth.cli import netfmt, render

        net = sub.add_parser("network", help="bridge networks (CNI)")
        nsub = net.add_subparsers(dest="network_command", metavar="COMMAND")
        nsub.required = True
        np_ = nsub.add_parser("create", help="create a bridge network")
        np_.add_argument("name")
        np_.add_argument("--subnet", help="IPv4 CIDR (default: the next free 10.N.0.0/24)")
        netfmt.add_ls_flags(nsub.add_parser("ls", aliases=["list"], help="list networks"))
        np_ = nsub.add_parser("rm", help="remove networks (no container may use them)")
        np_.add_argument("names", nargs="+")
        np_ = nsub.add_parser("inspect", help="show networks as JSON (or through a Go template)")
        np_.add_argument("names", nargs="+")
        render.add_format(np_, default="json", short=True, help="json (default) or a Go template ('{{.subnet}}')")
        for p in nsub.choices.values():
            p.set_defaults(fn=lambda a: cmd_network(a, open_engine))
    if not want("snapshot"):
        return
    snap = sub.add_parser("snapshot", help="named, restorable copies of a container's rw layer")
    ssub = snap.add_subparsers(dest="snapshot_command", metavar="COMMAND")
    ssub.required = True
    for name, text in (("create", "snapshot a container's rw layer (--with-volumes: and its named volumes)"),
                       ("restore", "restore a snapshot (the rw layer, and the volumes it holds)"),
                       ("rm", "remove a snapshot")):
        sp = ssub.add_parser(name, help=text)
        if name == "create":
            sp.add_argument("--with-volumes", action="store_true",
                            help="also copy the container's named volumes, so that a restore brings data and "
                                 "file system back together")
        sp.add_argument("container")
        sp.add_argument("name")
        sp.set_defaults(fn=lambda a: cmd_snapshot(a, open_engine))
    sp = ssub.add_parser("ls", help="list a container's snapshots")
    sp.add_argument("container")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.set_defaults(fn=lambda a: cmd_snapshot(a, open_engine))
