"""`--format` values as docker reads them: "table" (the default table), "json" (berth's JSON
document), "table TEMPLATE" (a table with a header row made from the template) or a Go template
printed once per item."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from berth.cli.gotemplate import Context, parse, tabwriter, unescape

FORMAT_HELP = ('"table" (default), "json", a Go template (\'{{.ID}} {{.Names}}\') or '
               '"table TEMPLATE" for a table with headers')


def add_format(sp: argparse.ArgumentParser, default: str = "table", help: str = FORMAT_HELP) -> None:
    sp.add_argument("--format", default=default, help=help)


def is_template(fmt: str | None) -> bool:
    return fmt not in (None, "", "table", "json")


def check(fmt: str | None) -> None:
    """Parse the template before any work, so a bad one fails at once with docker's message."""
    if is_template(fmt):
        assert fmt is not None
        _split(fmt)


def _split(fmt: str) -> tuple[bool, Any]:
    table = fmt.startswith("table")
    body = unescape(fmt[len("table"):].strip(" ") if table else fmt)
    return table, parse(body)


def lines(fmt: str, items: Iterable[Any], headers: dict[str, str] | None = None) -> list[str]:
    """The output lines of a template over items; a "table …" template gets a header row (the
    template run on headers, unknown fields as their upper-cased names) and aligned columns."""
    table, tmpl = _split(fmt)
    out: list[str] = []
    if table:
        out.append(tmpl.render(Context("header", headers or {}, loose=True)))
    for it in items:
        out.append(tmpl.render(it))
    text = "\n".join(out)
    if not table:
        return text.split("\n") if out else []
    return tabwriter(text.split("\n"))


def print_items(fmt: str, items: Iterable[Any], headers: dict[str, str] | None = None) -> None:
    for ln in lines(fmt, items, headers):
        print(ln)
