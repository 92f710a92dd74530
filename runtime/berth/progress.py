"""Progress for long transfers: a redrawn bar on a terminal, plain lines otherwise, nothing with
--quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

Progress = Callable[[str], None]


def quiet(_msg: str) -> None:
    return None


def default_progress(silent: bool) -> Progress:
    """Nothing when silent (the parameter must not shadow `quiet`, the function returned then)."""
    if silent:
        return quiet

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
    return say


def with_bar(chunks: Iterator[bytes], label: str, total: int | None, progress: Progress) -> Iterator[bytes]:
    """Pass chunks through; on a terminal (and not --quiet) redraw one progress line as they go."""
    if progress is quiet or not sys.stderr.isatty():
        yield from chunks
        return
    done = 0
    width = 30
    for chunk in chunks:
        done += len(chunk)
        if total:
            filled = min(width, done * width // total)
            bar = "=" * filled + ">" + " " * (width - filled)
            sys.stderr.write(f"\r{label} [{bar[:width]}] {done / 1e6:7.1f}/{total / 1e6:.1f} MB")
        else:
            sys.stderr.write(f"\r{label} {done / 1e6:7.1f} MB")
        sys.stderr.flush()
        yield chunk
    sys.stderr.write("\n")
