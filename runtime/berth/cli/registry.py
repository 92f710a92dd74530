"""berth login / logout: parsing and printing; the work is Engine.login / Engine.logout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.cli.parser import bool_value, verb_adder
from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.engine import Engine

    EngineOpener = Callable[[argparse.Namespace], Engine]


def _password(a: argparse.Namespace) -> str:
    if a.password_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for the password: use --password-stdin")
    import getpass

    return getpass.getpass("Password: ")


def _username(a: argparse.Namespace) -> str:
    if a.username:
        return str(a.username)
    if a.password_stdin or not sys.stdin.isatty():
        raise InvalidInput("give --username (with --password-stdin the password comes from stdin)")
    return input("Username: ").strip()


def cmd_login(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    user = _username(a)
    password = _password(a)
    with open_engine(a) as e:
        path = e.login(a.registry, user, password, a.tls_verify, a.ca_file)
    print(f"Login Succeeded (credentials kept in {path})")
    return 0


def cmd_logout(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    with open_engine(a) as e:
        removed = e.logout(a.registry)
    print(f"Removed login credentials for {a.registry}" if removed else f"Not logged in to {a.registry}")
    return 0


def register(sub: argparse._SubParsersAction, open_engine: EngineOpener,  # type: ignore[type-arg]
             want: Callable[[str], bool]) -> None:
    add = verb_adder(sub, open_engine, want)

    sp = add("login", cmd_login,
             "check credentials with a registry and keep them for pull and push (in auth.json next to berth's "
             "config file, mode 0600, docker's auths format)")
    sp.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT]")
    sp.add_argument("-u", "--username")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sp.add_argument("--tls-verify", type=bool_value, default=True, metavar="BOOL",
                    help="use https and verify certificates (false: plain http)")
    sp.add_argument("--ca-file", "--cert-file", dest="ca_file", help="CA certificate to trust for the registry")
    sp = add("logout", cmd_logout, "forget the credentials berth login kept for a registry")
    sp.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT]")
