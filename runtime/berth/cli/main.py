"""The `berth` command: argument parsing and output only; all work happens in berth.Engine."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth import config as config_mod
from berth import trace
from berth.cli import verbs
from berth.cli.parser import Parser, bool_value
from berth.errors import BerthError, InvalidInput, one_line

if TYPE_CHECKING:
    from berth.declare.reconcile import Action
    from berth.engine import Engine


def _engine(a: argparse.Namespace, report: bool = False) -> Engine:
    """The root's Engine; report=True only looks (creates and records nothing)."""
    from berth.engine import Engine

    return Engine(_settings(a), report=report)


def _settings(a: argparse.Namespace) -> config_mod.Settings:
    return config_mod.load(a.config, a.root, a.runroot, a.driver, a.storage_opt)


def cmd_host_check(a: argparse.Namespace) -> int:
    from berth.cli import output
    from berth.host.checks import run_checks
    from berth.host.probe import HostFacts

    s = _settings(a)
    checks = run_checks(HostFacts(s.root), a.check_driver or s.driver, s.runroot if os.path.isdir(s.runroot) else None)
    failed = [c for c in checks if c.required and not c.ok]
    if a.format == "json":
        output.print_json([vars(c) for c in checks])
    else:
        output.print_checks(checks)
    return 1 if failed else 0


def cmd_host_prepare(a: argparse.Namespace) -> int:
    from berth.host.prepare import prepare

    config_path = a.config or os.environ.get("BERTH_CONFIG") or config_mod.DEFAULT_CONFIG
    # the config file may not exist yet: prepare writes it
    s = config_mod.load(config_path if os.path.exists(config_path) else None, a.root, a.runroot, None,
                        (a.storage_opt or []) + a.prepare_opts)
    steps = prepare(a.prepare_driver, s.root, config_path, a.device, a.loopback, a.mount, a.check, a.force,
                    a.fstab, pool=a.pool, opts=s.storage_opts)
    for step in steps:
        print(step)
    changes = [x for x in steps if not x.done]
    if not changes:
        print("no changes: the storage is ready")
    elif a.check:
        print(f"{len(changes)} change(s) would be made (--check: nothing was changed)")
    else:
        print(f"{len(changes)} change(s) made")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        if a.file == "-":
            img = e.import_image(sys.stdin.buffer, a.reference, a.message or "", a.change)
        else:
            try:
                f = open(a.file, "rb")  # noqa: SIM115
            except OSError as err:
                raise BerthError(f"cannot read {a.file}: {err.strerror}") from None
            with f:
                img = e.import_image(f, a.reference, a.message or "", a.change)
    print(img.id)
    return 0


def cmd_save(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        if a.format == "oci-dir":
            if not a.output:
                raise BerthError("--format oci-dir needs -o DIRECTORY")
            e.save_images(a.images, a.output, a.format)
        elif a.output:
            e.save_images(a.images, a.output, a.format, quiet=a.quiet)
        else:
            if sys.stdout.isatty():
                raise BerthError("refusing to write an archive to a terminal: use -o FILE or redirect")
            e.save_images(a.images, sys.stdout.buffer, a.format)
    return 0


def cmd_load(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        source = sys.stdin.buffer if a.input in (None, "-") else a.input
        loaded = e.load_images(source)
    for img, names in loaded:
        if a.quiet:
            continue
        if names:
            for n in names:
                print(f"Loaded image: {n}")
        else:
            print(f"Loaded image ID: {img.id}")
    return 0


def cmd_pull(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        img, _digest = e.pull(a.reference, a.tls_verify, a.ca_file, a.authfile, quiet=a.quiet)
    print(img.id)
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        digest = e.push(a.source, a.destination, a.tls_verify, a.ca_file, a.authfile, quiet=a.quiet,
                        sign_by=a.sign_by, gpg_home=a.gpg_home, sigstore=a.sigstore)
    print(digest)
    return 0


def cmd_sign(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        path = e.sign(a.reference, a.sign_by, a.gpg_home, sigstore=a.sigstore)
    print(path)
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from berth.cli import output

    with _engine(a) as e:
        result = e.verify(a.reference, policy=a.policy, sigstore=a.sigstore)
    if a.format == "json":
        output.print_json(result)
    else:
        for c in result["checks"]:  # type: ignore[union-attr]
            extra = f" by {c['signer']} for {c['identity']}" if "signer" in c else ""
            print(f"{result['reference']}: accepted ({c['requirement']}{extra})")
    return 0


def cmd_trust_show(a: argparse.Namespace) -> int:
    from berth.cli import output
    from berth.image import signing

    output.print_json(signing.load_policy(a.policy or os.environ.get("BERTH_POLICY")).describe())
    return 0


def _plan(a: argparse.Namespace, e: Engine) -> list[Action]:
    from berth.declare import schema

    return e.plan(schema.load(a.file), prune=a.prune)


def cmd_plan(a: argparse.Namespace) -> int:
    from berth.cli import output

    with _engine(a) as e:
        actions = _plan(a, e)
    if a.format == "json":
        output.print_json([{"action": x.kind, "target": x.target, "reasons": x.reasons} for x in actions])
    elif not actions:
        print("no changes: the host matches the state")
    else:
        for x in actions:
            print(x.describe())
    return 0


def cmd_apply(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        actions = _plan(a, e)
        done = e.apply(actions, say=print)
    print(f"{len(done)} change(s)" if done else "no changes: the host matches the state")
    return 0


def cmd_tag(a: argparse.Namespace) -> int:
    with _engine(a) as e:
        e.tag(a.source, a.target)
    return 0


def cmd_rmi(a: argparse.Namespace) -> int:
    rc = 0
    with _engine(a) as e:
        for ref in a.images:
            try:
                for line in e.remove_image(ref, force=a.force):
                    print(line)
            except BerthError as err:
                print(f"berth: error: {one_line(str(err))}", file=sys.stderr)
                rc = 1
    return rc


def cmd_prune(a: argparse.Namespace) -> int:
    from berth.cli import output

    what = {"image": "unused images", "container": "all stopped containers",
            "system": "all stopped containers and unused images"}[a.prune_group]
    with_volumes = a.prune_group == "system" and a.volumes
    if with_volumes:
        what = "all stopped containers, unused images and all volumes not used by at least one container"
    if not a.force:
        if not sys.stdin.isatty():
            raise InvalidInput(f"this removes {what}: add --force to confirm (stdin is not a terminal to ask on)")
        if input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            return 0
    with _engine(a) as e:
        if a.prune_group in ("container", "system"):
            names = e.containers.prune()
            if names:
                print("Deleted Containers:\n" + "\n".join(names))
        if a.prune_group in ("image", "system"):
            images, layers, freed = e.prune_images(all_unused=a.all)
            if images:
                print("Deleted Images:\n" + "\n".join(f"deleted: {i}" for i in images))
            if with_volumes:
                gone = e.volumes.prune()
                if gone:
                    print("Deleted Volumes:\n" + "\n".join(n for n, _size in gone))
                freed += sum(size for _n, size in gone)
            print(f"Total reclaimed space: {output.human_size(freed)} ({len(layers)} layers)")
    return 0


def cmd_storage_check(a: argparse.Namespace) -> int:
    from berth.cli import output

    with _engine(a) as e:
        report = e.storage_check()
    if a.format == "json":
        output.print_json(report)
    else:
        for r in report["recovered"]:  # type: ignore[union-attr]
            print(f"recovered: {r}")
        for p in report["problems"]:  # type: ignore[union-attr]
            print(f"problem: {p}")
        if not report["problems"]:
            print("storage is consistent")
    return 1 if report["problems"] else 0


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    p = Parser(prog="berth", description="A container runtime: storage drivers, images, containers.")
    p.add_argument("-v", "--version", action="store_true", help="print berth's version and exit")
    p.add_argument("--root", help=f"persistent state (default {config_mod.DEFAULT_ROOT}, or BERTH_ROOT)")
    p.add_argument("--runroot", help=f"volatile state (default {config_mod.DEFAULT_RUNROOT}, or BERTH_RUNROOT)")
    p.add_argument("--config", help=f"config file (default {config_mod.DEFAULT_CONFIG}, or BERTH_CONFIG)")
    p.add_argument("--driver",
                   help="storage driver: vfs, overlay, btrfs (default: chosen for this host, or BERTH_DRIVER)")
    p.add_argument("--storage-opt", action="append", metavar="K=V", help="storage driver option (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def want(name: str) -> bool:
        return wanted is None or wanted == name

    def register(module: str) -> None:
        """The verbs of a module with a register(): imported only when one of them is wanted."""
        if wanted is None or verbs.module_of(wanted) == module:
            importlib.import_module(f"berth.cli.{module}").register(sub, _engine, want)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> Any:
        if not want(name):
            return Skipped()
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def fmt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--format", choices=["table", "json"], default="table", help="output format")

    if want("info") or want("version"):
        from berth.cli import about, render

        about.add_info_format(add("info", lambda a: about.cmd_info(a, lambda a2: _engine(a2, report=True)),
                                  "show the host, the storage driver and why it was chosen"))
        render.add_format(add("version", about.cmd_version, "show berth's version and the runtimes it finds"),
                          default="", short=True,
                          help="json, or a Go template over docker's version shape ('{{.Client.Version}}')")

    host = (sub.add_parser("host", help="host checks") if want("host") else Skipped()).add_subparsers(
        dest="host_command", metavar="COMMAND")
    host.required = True
    hc = host.add_parser("check", help="check the host for what berth needs (exit 1 if a required check fails)")
    hc.add_argument("--driver", dest="check_driver", help="also require this storage driver")
    fmt(hc)
    hc.set_defaults(fn=cmd_host_check)
    hp = host.add_parser("prepare", help="prepare the storage for a driver (idempotent; --check shows the plan)")
    hp.add_argument("--driver", dest="prepare_driver", required=True,
                    choices=["btrfs", "overlay", "devicemapper", "vfs"])
    hp.add_argument("--device", action="append", help="block device to use (repeatable for btrfs)")
    hp.add_argument("--loopback", metavar="FILE:SIZE", help="a sparse file attached to a loop device")
    hp.add_argument("--pool", choices=["thin", "reflink"],
                    help="devicemapper: a dm-thin pool made with LVM on --device (direct-lvm) or --loopback "
                         "(loop-lvm), or the reflink pool on XFS (default: thin where the kernel has device-mapper)")
    hp.add_argument("--storage-opt", dest="prepare_opts", action="append", default=[], metavar="K=V",
                    help="pool options: dm.blocksize (chunk, 512K), dm.vg (berth), dm.thinp_percent (95), "
                         "dm.thinp_metapercent (1), dm.thinp_autoextend_threshold (80), "
                         "dm.thinp_autoextend_percent (20)")
    hp.add_argument("--mount", help="where to mount it (default: the berth root)")
    hp.add_argument("--check", action="store_true", help="print the plan, change nothing")
    hp.add_argument("--force", action="store_true", help="format a device that holds a file system")
    hp.add_argument("--fstab", default="/etc/fstab", help="fstab to record the mount in")
    hp.set_defaults(fn=cmd_host_prepare)

    sp = add("import", cmd_import, "create a one-layer image from a rootfs tarball (FILE or - for stdin)")
    sp.add_argument("file")
    sp.add_argument("reference", nargs="?")
    sp.add_argument("-m", "--message", help="commit message recorded in the image history")
    sp.add_argument("-c", "--change", action="append", default=[],
                    help="Dockerfile instruction applied to the image config (CMD, ENTRYPOINT, ENV, …)")

    sp = add("save", cmd_save, "write images to an archive (docker-archive, oci-archive or an OCI layout directory)")
    sp.add_argument("images", nargs="+")
    sp.add_argument("-o", "--output", help="file (or directory for oci-dir); default: stdout")
    sp.add_argument("--format", choices=["docker-archive", "oci-archive", "oci-dir"], default="docker-archive")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    sp = add("load", cmd_load, "load images from an archive or OCI layout (format detected)")
    sp.add_argument("-i", "--input", help="archive file or OCI layout directory (default: stdin)")
    sp.add_argument("-q", "--quiet", action="store_true")

    for name, fn, text in (("pull", cmd_pull, "pull an image from a registry (HOST[:PORT]/REPO[:TAG|@DIGEST]; "
                                              "a name without HOST goes to default_registry of the config file)"),
                           ("push", cmd_push, "push an image to a registry (to DESTINATION, or its own name)")):
        sp = add(name, fn, text)
        if name == "pull":
            sp.add_argument("reference")
        else:
            sp.add_argument("source")
            sp.add_argument("destination", nargs="?")
            sp.add_argument("--sign-by", metavar="FINGERPRINT", help="sign the pushed manifest with this gpg key")
            sp.add_argument("--gpg-home")
            sp.add_argument("--sigstore", help="lookaside directory for the signature (default ROOT/sigstore)")
        sp.add_argument("--tls-verify", type=bool_value, default=True, metavar="BOOL",
                        help="use https and verify certificates (false: plain http, for local registries)")
        sp.add_argument("--ca-file", "--cert-file", dest="ca_file", help="CA certificate to trust for the registry")
        sp.add_argument("--authfile", help="credentials in docker config.json format (default: REGISTRY_AUTH_FILE, "
                                           "berth login's auth.json next to the config file, ~/.docker/config.json)")
        sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("sign", cmd_sign, "sign an image's manifest digest and name with gpg (simple signing)")
    sp.add_argument("reference")
    sp.add_argument("--sign-by", required=True, metavar="FINGERPRINT")
    sp.add_argument("--gpg-home", help="gpg home with the secret key (default: gpg's)")
    sp.add_argument("--sigstore", help="lookaside directory for signatures (default ROOT/sigstore)")

    sp = add("verify", cmd_verify, "check an image against the trust policy (exit 1 if refused)")
    sp.add_argument("reference")
    sp.add_argument("--policy", help="containers-policy.json file (default: BERTH_POLICY, /etc/berth/policy.json, "
                                     "/etc/containers/policy.json)")
    sp.add_argument("--sigstore")
    fmt(sp)

    trust = (sub.add_parser("trust", help="trust policy") if want("trust") else Skipped()).add_subparsers(
        dest="trust_command", metavar="COMMAND")
    trust.required = True
    ts = trust.add_parser("show", help="print the trust policy in force")
    ts.add_argument("--policy")
    ts.set_defaults(fn=cmd_trust_show)

    register("build")

    for name, fn, text in (("plan", cmd_plan, "show what applying a desired-state file would change, and why"),
                           ("apply", cmd_apply, "make the host match a desired-state file")):
        sp = add(name, fn, text)
        sp.add_argument("-f", "--file", required=True, help="desired-state YAML")
        sp.add_argument("--prune", action="store_true", help="also remove declared-before containers no longer listed")
        if name == "plan":
            fmt(sp)

    if want("images") or want("history"):
        from berth.cli import listing

        listing.add_images_flags(add("images", lambda a: listing.cmd_images(a, _engine),
                                     "list images (untagged build steps other images build on only with -a)"))

    sp = add("tag", cmd_tag, "add a name to an image")
    sp.add_argument("source")
    sp.add_argument("target")

    sp = add("rmi", cmd_rmi, "remove images (untag; delete when no tag is left)")
    sp.add_argument("images", nargs="+")
    sp.add_argument("-f", "--force", action="store_true", help="remove an image with several tags by ID")

    if want("inspect"):
        from berth.cli import inspectcmd

        inspectcmd.add_flags(add("inspect", lambda a: inspectcmd.cmd_inspect(a, _engine),
                                 "show containers' or images' details as JSON (docker's shapes) or through a "
                                 "template"))
    if want("history"):
        listing.add_history_flags(add("history", lambda a: listing.cmd_history(a, _engine),
                                      "show an image's layers and how they were made"))

    for module in ("containers", "volumes", "mux", "registry", "daytwo", "cp", "checkpoint"):
        register(module)

    for group, help_text in (("image", "image maintenance"), ("container", "container maintenance"),
                             ("system", "whole-root maintenance")):
        g = (sub.add_parser(group, help=help_text) if want(group) else Skipped()
             ).add_subparsers(dest=f"{group}_command", metavar="COMMAND")
        g.required = True
        sp = g.add_parser("prune", help={
            "image": "remove unused images: untagged ones that are no kept image's ancestor, or with -a all unused",
            "container": "remove every container that is not running",
            "system": "remove stopped containers, then unused images (-a: all unused, not just untagged); "
                      "--volumes: then unused volumes"}[group])
        if group != "container":
            sp.add_argument("-a", "--all", action="store_true", help="every image no container uses")
        sp.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
        sp.set_defaults(fn=cmd_prune, prune_group=group)
        if want(group):
            from berth.cli import aliases

            for word, to in aliases.help_lines(group):
                # main() rewrites these to the verb before parsing; listed here for --help
                g.add_parser(word, help=f"= berth {to}", add_help=False)
        if group == "system" and want(group):
            from berth.cli import about, render

            sp.add_argument("--volumes", action="store_true", help="also remove volumes no container refers to")
            sp = g.add_parser("df", help="disk used by images, containers and volumes, and what prune would give back")
            render.add_format(sp)
            sp.set_defaults(fn=lambda a: about.cmd_system_df(a, _engine))

    storage = (sub.add_parser("storage", help="storage maintenance") if want("storage") else Skipped()
               ).add_subparsers(dest="storage_command", metavar="COMMAND")
    storage.required = True
    sc = storage.add_parser("check", help="finish interrupted operations and report inconsistencies")
    fmt(sc)
    sc.set_defaults(fn=cmd_storage_check)
    return p


GLOBAL_WITH_VALUE = ("--root", "--runroot", "--config", "--driver", "--storage-opt")


def wanted_command(argv: list[str]) -> str | None:
    """The command word of argv, so that only its parser is built (None: build them all)."""
    at = command_index(argv)
    return None if at is None else argv[at]


def command_index(argv: list[str]) -> int | None:
    """Where the command word is in argv (after the global options), None if an option comes first."""
    skip = False
    for i, tok in enumerate(argv):
        if skip:
            skip = False
        elif tok in GLOBAL_WITH_VALUE:
            skip = True
        elif tok.startswith("--") and "=" in tok:
            continue
        elif tok.startswith("-"):
            return None
        else:
            return i
    return None


class Skipped:
    """Stands in for the parser of a command that is not being run (building it costs time)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self


def _untranslated_argparse() -> None:
    """argparse looks up a translation catalogue for every message it builds (dozens of stat calls
    per parser); berth's messages are not translated, so skip the lookups."""
    argparse._ = lambda s: s  # type: ignore[attr-defined]
    argparse.ngettext = lambda s, p, n: s if n == 1 else p  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    _untranslated_argparse()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-v"], ["--version"]):
        from berth.cli.about import version_line

        print(version_line())
        return 0
    from berth.cli import aliases

    argv = aliases.rewrite(argv, command_index(argv))
    wanted = wanted_command(argv)
    parser = build_parser(wanted if verbs.module_of(wanted) else None)
    if not parser._subparsers or not parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        parser = build_parser(None)  # an unknown command word: let argparse list the real ones
    a = parser.parse_args(argv)
    trace.mark("command")
    try:
        return a.fn(a)
    except BerthError as e:
        print(f"berth: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except __import__("sqlite3").Error as e:
        print(f"berth: error: the metadata store failed: {e} (is the berth root's file system full?)",
              file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except OSError as e:
        _debug()
        where = f" ({e.filename})" if e.filename else ""
        print(f"berth: error: {one_line(str(e.strerror or e))}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug in berth still ends in one line; the fuzz tests look for it
        _debug()
        print(f"berth: internal error: {type(e).__name__}: {one_line(str(e))} (a bug in berth; BERTH_DEBUG=1 "
              "shows where)", file=sys.stderr)
        return 125 if str(getattr(a, "parsed_by", "")).split()[-1:] in (["run"], ["create"]) else 1


def _debug() -> None:
    if os.environ.get("BERTH_DEBUG"):
        import traceback

        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
