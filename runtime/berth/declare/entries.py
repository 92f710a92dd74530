"""The types of a declared image entry's values (names, sources, build, changes, flags), checked
before anything acts on them; fail(key, message) makes the error that points at the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from berth.errors import InvalidInput
from berth.image import reference

Fail = Callable[[str, str], InvalidInput]

BUILD_KEYS = ("context", "dockerfile", "args")
FLAGS = ("tls_verify", "require_signature")
PATHS = ("import", "load", "ca_file", "authfile")


def scalar(value: object) -> bool:
    """A value that reads as one string (YAML gives numbers for names such as 1 or 1.5)."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _text(item: dict[str, Any], key: str, fail: Fail) -> str:
    v = item[key]
    if not scalar(v) or str(v) == "":
        raise fail(key, f"{key} must be a non-empty string, not {_shown(v)}")
    return str(v)


def _shown(v: object) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return repr(v)


def _ref(item: dict[str, Any], key: str, fail: Fail) -> str:
    text = _text(item, key, fail)
    try:
        reference.parse(text)
    except InvalidInput as e:
        raise fail(key, f"{key}: {e}") from None
    return text


def _build(v: object, fail: Fail) -> None:
    if scalar(v):
        return
    if not isinstance(v, dict):
        raise fail("build", f"build must be a context directory or a mapping with {', '.join(BUILD_KEYS)}")
    unknown = sorted(str(k) for k in v if k not in BUILD_KEYS)
    if unknown:
        raise fail("build", f"unknown build key {unknown[0]!r}; allowed: {', '.join(BUILD_KEYS)}")
    if "context" not in v:
        raise fail("build", "build needs a context")
    for k in ("context", "dockerfile"):
        if k in v and (not scalar(v[k]) or str(v[k]) == ""):
            raise fail("build", f"build {k} must be a non-empty string, not {_shown(v[k])}")
    args = v.get("args")
    if args is not None and (not isinstance(args, dict) or not all(
            scalar(k) and (x is None or scalar(x)) for k, x in args.items())):
        raise fail("build", "build args must be a mapping of names to strings")


def check_image(item: dict[str, Any], source: str, fail: Fail) -> None:
    """Every key of one declared image has a value of the right type (source: its one source key)."""
    _ref(item, "name", fail)
    if source == "pull":
        _ref(item, "pull", fail)
    elif source == "build":
        _build(item["build"], fail)
    for key in PATHS:
        if key in item:
            _text(item, key, fail)
    for key in FLAGS:
        if key in item and not isinstance(item[key], bool):
            raise fail(key, f"{key} must be true or false, not {_shown(item[key])}")
    changes = item.get("changes")
    if changes is not None and (not isinstance(changes, list) or not all(isinstance(c, str) for c in changes)):
        raise fail("changes", "changes must be a list of Dockerfile instructions (strings)")
