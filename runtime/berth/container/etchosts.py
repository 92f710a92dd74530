"""The /etc/hosts a container gets: docker's default lines first (libnetwork's etchosts), then
the entries of the container's network."""

from __future__ import annotations

# libnetwork etchosts' default content, in its order and with its tabs (docker 20.10)
DEFAULT_LINES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


def content(entries: list[str]) -> bytes:
    """The defaults, then "IP<TAB>NAMES" entries (none on --network none: docker writes no line for
    the container's own name when it has no address)."""
    return ("\n".join([*DEFAULT_LINES, *entries]) + "\n").encode()
