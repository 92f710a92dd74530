"""Typed errors. Every failure berth reports to a user is a BerthError with a one-line message."""

from __future__ import annotations


class BerthError(Exception):
    """A failure berth explains to the user in one line (exit code 1 from the CLI)."""

    exit_code = 1


def one_line(message: str) -> str:
    """An error as one line: the lines of what a message carries from elsewhere (a tool's stderr)
    joined, and control characters from the input it quotes escaped."""
    text = "; ".join(part.strip() for part in message.split("\n") if part.strip())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class CommandError(BerthError):
    """An external command failed; carries the command, its exit code and its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, what: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}{argv[0]} exited {returncode}: {last}")


class NotFound(BerthError):
    """A named object (image, layer, container) does not exist."""


class InvalidInput(BerthError):
    """Input from the user or from a file is malformed."""


class HostileInput(InvalidInput):
    """An archive or manifest tried to escape its target or smuggle something in."""


class InUse(BerthError):
    """An object cannot be removed while something still uses it."""


class ImageInUse(InUse):
    """An image that containers are created from cannot be deleted."""


class LayerInUse(InUse):
    """A layer cannot be removed: other layers are built on it."""


class StoreConflict(BerthError):
    """The store is initialised differently from what was asked (e.g. another driver)."""

