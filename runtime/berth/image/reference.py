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
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


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
    _check_lookup(ref, name)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(name, tag, digest)


def _check_lookup(ref: str, name: str) -> None:
    """Refuse names berth would accept and then never find again: 'sha256' and 64 hex digits are
    read as image IDs, and a registry port outside 1-65535 names no host."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        port = first.rsplit(":", 1)[1] if ":" in first.rsplit("]", 1)[-1] else None
        if port is not None and not 0 < int(port) < 65536:
            raise InvalidInput(f"invalid reference {ref!r}: registry port {port} is not 1 to 65535")
        components = rest.split("/")
    else:
        components = name.split("/")
    if name == "sha256":
        raise InvalidInput(f"invalid reference {ref!r}: 'sha256:' starts an image ID, not a name")
    if any(_HEX64_RE.match(c) for c in components):
        raise InvalidInput(f"invalid reference {ref!r}: a name cannot be 64 hexadecimal digits (that is an image ID)")
