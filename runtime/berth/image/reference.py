"""Image references: [registry/]repo[:tag][@digest], normalised the way docker shows them."""

from __future__ import annotations

import re

from berth.errors import InvalidInput
from berth.record import Record

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*" \
          r"(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class Reference(Record):
    name: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse(ref: str, default_tag: str = "latest") -> Reference:
    """Parse and validate a reference; a missing tag (and digest) becomes default_tag."""
    if not ref or ref != ref.strip():
        raise InvalidInput(f"invalid reference {ref!r}: empty or surrounded by spaces")
    name, digest = ref, None
    if "@" in ref:
        name, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidInput(f"invalid reference {ref!r}: digest must be sha256:<64 hex digits>")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidInput(f"invalid reference {ref!r}: tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
    if not _NAME_RE.match(name):
        raise InvalidInput(f"invalid reference {ref!r}: repository names are lowercase letters, digits "
                           "and separators (. _ -), optionally with a registry host")
    if len(name) > 255:
        raise InvalidInput(f"invalid reference {ref!r}: repository name longer than 255 characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(name, tag, digest)
