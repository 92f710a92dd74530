"""`--format` values as docker reads them: "table" (the default table), "json" (berth's JSON
document), "table TEMPLATE" (a table with a header row made from the template) or a Go template
printed once per item."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.cli.gotemplate import Template

INSPECT_PREFIX = "template parsing error: "  # docker inspect's words, for parsing and running alike
FORMAT_HELP = ('"table" (default), "json", a Go template (\'{{.ID}} {{.Names}}\') or '
               '"table TEMPLATE" for a table with headers')


def add_format(sp: argparse.ArgumentParser, default: str = "table", help: str = FORMAT_HELP, short: bool = False,
               ) -> None:
    """short: also -f (docker's inspect, version and info take it; on ps/images -f is --filter)."""
    sp.add_argument(*(("-f", "--format") if short else ("--format",)), default=default, help=help)


def is_template(fmt: str | None) -> bool:
    return fmt not in (None, "", "table", "json")


def check(fmt: str | None, prefix: str = INSPECT_PREFIX) -> None:
    """Parse the template before any work, so a bad one fails at once with docker's message."""
    if is_template(fmt):
        assert fmt is not None
        _split(fmt, prefix)


def _split(fmt: str, prefix: str, strict: bool = False) -> tuple[bool, Template]:
    from berth.cli.gotemplate import Template, TemplateError, unescape

    table = fmt.startswith("table")
    body = unescape(fmt[len("table"):].strip(" ") if table else fmt)
    try:
        return table, Template(body, missing_key_error=strict)
    except TemplateError as e:
        raise TemplateError(prefix + str(e)) from None


def lines(fmt: str, items: Iterable[Any], headers: dict[str, str] | None = None,
          prefix: str = INSPECT_PREFIX, strict: bool = False) -> list[str]:
    """The output lines of a template over items; a "table …" template gets a header row (the
    template run on headers, unknown fields as their upper-cased names) and aligned columns.
    prefix: what docker puts before an error of this command's templates; strict: a missing map
    key is an error (docker inspect)."""
    from berth.cli.gotemplate import Context, TemplateError, tabwriter

    table, tmpl = _split(fmt, prefix, strict)
    out: list[str] = []
    try:
        if table:
            # header fields answer with their header whether or not they are given arguments
            heads = {k: (lambda *_a, h=h: h) for k, h in (headers or {}).items()}
            out.append(tmpl.render(Context("header", heads, loose=True)))
        for it in items:
            out.append(tmpl.render(it))
    except TemplateError as e:
        raise TemplateError(prefix + str(e)) from None
    text = "\n".join(out)
    if not table:
        return text.split("\n") if out else []
    return tabwriter(text.split("\n"))


def print_items(fmt: str, items: Iterable[Any], headers: dict[str, str] | None = None,
                prefix: str = INSPECT_PREFIX, strict: bool = False) -> None:
    for ln in lines(fmt, items, headers, prefix, strict):
        print(ln)
