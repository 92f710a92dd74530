"""What a COPY/ADD takes: sources named or matched (Go filepath.Match wildcards) in the build
context or in another image's file system, the context's .dockerignore applied.

A named source that is a symlink is followed inside its root (never onto the host) and keeps the
name it was asked by, as docker does; links inside a copied directory stay links.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from berth.container.pathres import resolve_in_root
from berth.errors import InvalidInput

WILDCARDS = ("*", "?", "[")
CONTEXT = "build context"


@dataclass
class Source:
    name: str  # the name it gets inside a destination directory
    path: str  # the host path to read (symlinks already followed inside the root)
    st: os.stat_result


def go_match_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match as a regex: `*` and `?` never match '/', `[...]` classes with `^`
    negation and ranges, `\\` escapes the next character."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = i + 1
            if end < len(pattern) and pattern[end] == "^":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            if end >= len(pattern):
                raise InvalidInput(f"syntax error in pattern {pattern!r}: unclosed '['")
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            if not body:
                raise InvalidInput(f"syntax error in pattern {pattern!r}: empty class")
            cls, k = [], 0
            while k < len(body):
                if body[k] == "\\" and k + 1 < len(body):
                    cls.append(re.escape(body[k + 1]))
                    k += 2
                    continue
                cls.append(body[k] if body[k] == "-" else re.escape(body[k]))
                k += 1
            out.append(f"[^/{''.join(cls)}]" if negate else f"[{''.join(cls)}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as docker's matcher reads it: `*` and `?` stop at '/', `**` spans
    any number of directories, `[...]` classes, `\\` escapes."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(".*" if i >= len(pattern) else "(.*/)?")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidInput(f".dockerignore: syntax error in pattern {pattern!r}: unclosed '['")
            body = pattern[i + 1:end]
            out.append("[^" + body[1:] + "]" if body.startswith("^") else "[" + body + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("^" + "".join(out) + "$", re.S)
    except re.error as e:
        raise InvalidInput(f".dockerignore: syntax error in pattern {pattern!r}: {e}") from None


class Ignore:
    """The context's .dockerignore with docker's rules: a pattern excludes the paths it matches
    and everything below them, later patterns win, `!` re-includes."""

    def __init__(self, context: str) -> None:
        self.patterns: list[tuple[bool, re.Pattern[str], int]] = []
        path = os.path.join(context, ".dockerignore")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                for ln in f:
                    p = ln.strip()
                    if not p or p.startswith("#"):
                        continue
                    neg = p.startswith("!")
                    p = posixpath.normpath(p[1:].strip() if neg else p).lstrip("/")
                    if p == ".":
                        continue
                    self.patterns.append((neg, ignore_regex(p), p.count("/") + 1))

    def __call__(self, rel: str) -> bool:
        result = False
        parts = rel.split("/")
        for neg, regex, depth in self.patterns:
            hit = bool(regex.match(rel))
            if not hit and len(parts) > depth:
                hit = bool(regex.match("/".join(parts[:depth])))
            if hit:
                result = not neg
        return result


def _clean(src: str, what: str) -> str:
    """src relative to its root; climbing out of the build context is refused (an image's own
    file system is a root: `..` stops at its top, as in the image)."""
    lexical = posixpath.normpath(src.lstrip("/") or ".")
    if what == CONTEXT and (lexical == ".." or lexical.startswith("../")):
        raise InvalidInput(f"COPY source {src!r} is outside the build context")
    return posixpath.normpath("/" + src).lstrip("/")


def _named(root: str, src: str, what: str, ignored: Callable[[str], bool]) -> Source:
    rel = _clean(src, what)
    if rel and ignored(rel):
        raise InvalidInput(f"{src}: not found in the {what} (excluded by .dockerignore)")
    path = resolve_in_root(root, rel) if rel else root
    if path is None or not os.path.lexists(path):
        raise InvalidInput(f"{src}: does not exist in the {what}")
    name = posixpath.basename(rel) or "/"
    return Source(name, path, os.stat(path))


def _matches(root: str, pattern: str, ignored: Callable[[str], bool]) -> list[str]:
    """Relative paths under root matching pattern (every component at its depth, sorted)."""
    regex = go_match_regex(pattern)
    depth = pattern.count("/") + 1
    found: list[str] = []

    def walk(dir_path: str, rel: str, level: int) -> None:
        try:
            entries = sorted(os.scandir(dir_path), key=lambda e: e.name)
        except (NotADirectoryError, FileNotFoundError):
            return
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            if ignored(r):
                continue
            if level == depth:
                if regex.match(r):
                    found.append(r)
            elif e.is_dir(follow_symlinks=False):
                walk(e.path, r, level + 1)

    walk(root, "", 1)
    return found


def sources(root: str, srcs: list[str], what: str, ignored: Callable[[str], bool] = lambda _r: False
            ) -> list[Source]:
    """Every source of a COPY/ADD in root, in order; wildcards expand (docker sorts matches)."""
    out: list[Source] = []
    for src in srcs:
        if not any(c in src for c in WILDCARDS):
            out.append(_named(root, src, what, ignored))
            continue
        rel = _clean(src, what)
        matched = _matches(root, rel, ignored)
        if not matched:
            raise InvalidInput(f"{src}: no source files were specified (nothing in the {what} matches)")
        out.extend(_named(root, m, what, ignored) for m in matched)
    return out


def walk_tree(top: str, rel_base: str, ignored: Callable[[str], bool]) -> list[tuple[str, str, os.stat_result]]:
    """(path relative to top, host path, lstat) of everything below a source directory, parents
    first; rel_base is top's path relative to the context (for .dockerignore)."""
    out: list[tuple[str, str, os.stat_result]] = []

    def walk(d: str, rel: str) -> None:
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            r = f"{rel}/{e.name}" if rel else e.name
            ctx_rel = f"{rel_base}/{r}" if rel_base else r
            if ignored(ctx_rel):
                continue
            st = os.lstat(e.path)
            out.append((r, e.path, st))
            if stat.S_ISDIR(st.st_mode):
                walk(e.path, r)

    walk(top, "")
    return out
