"""The argument parser every berth command uses: docker's rules for bad command lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from berth.engine import Engine

# docker exits 125 when its own command line is wrong (cobra's flag errors), as for any error of
# docker itself, so that scripts tell it apart from the container's exit code
USAGE_ERROR = 125


class Parser(argparse.ArgumentParser):
    """No abbreviated long flags (docker has none: `--pid host` must never be read as
    `--pids-limit host`); a usage error is one line on stderr and exit 125. Sub-command parsers
    made with add_parser are of this class too (argparse hands its class on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        # the innermost command parsed names itself, so a stray flag is reported against it
        self.set_defaults(parsed_by=self.prog)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            flags = [x for x in extras if x.startswith("-")]
            what = f"unknown flag: {flags[0]}" if flags else f"unexpected arguments: {' '.join(extras)}"
            self._fail(str(getattr(ns, "parsed_by", self.prog)), what)
        return ns

    def error(self, message: str) -> NoReturn:
        self._fail(self.prog, message)

    @staticmethod
    def _fail(prog: str, message: str) -> NoReturn:
        print(f"{prog}: error: {message} (see '{prog} --help')", file=sys.stderr)
        sys.exit(USAGE_ERROR)



def add_bool_flag(sp: argparse.ArgumentParser, flag: str, default: bool, help: str) -> None:
    """--FLAG and --FLAG=true, --no-FLAG and --FLAG=false (docker's spellings), one destination. The
    `=` forms are option strings of their own: a flag taking an optional value would swallow the
    image name after it."""
    dest = flag.removeprefix("--").replace("-", "_")
    sp.add_argument(flag, f"{flag}=true", dest=dest, action="store_true", default=default, help=help)
    sp.add_argument("--no-" + flag.removeprefix("--"), f"{flag}=false", dest=dest, action="store_false",
                    help=argparse.SUPPRESS)


def bool_value(value: str) -> bool:
    """A boolean flag value (--tls-verify, history -H): true or false, in docker's and podman's spellings."""
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("use true or false")


def verb_adder(sub: argparse._SubParsersAction, open_engine: Callable[[argparse.Namespace], Engine],  # type: ignore[type-arg]
               want: Callable[[str], bool]) -> Callable[..., Any]:
    """`add(name, fn, help)` for a module's verbs: a sub-parser whose fn gets the engine opener, or
    Skipped when another verb is being parsed. help None: an internal verb, not listed in --help."""
    from berth.cli.main import Skipped

    def add(name: str, fn: Callable[[argparse.Namespace, Callable[[argparse.Namespace], Engine]], int],
            help: str | None) -> Any:
        if not want(name):
            return Skipped()
        sp = sub.add_parser(name) if help is None else sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=lambda a: fn(a, open_engine))
        return sp

    return add
