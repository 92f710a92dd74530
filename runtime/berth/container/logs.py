"""Container logs in the k8s-file format conmon writes: `<RFC3339Nano> <stream> <P|F> <text>`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from berth.record import Record


class LogLine(Record):
    time: str
    stream: str
    text: bytes
    partial: bool


def parse(data: bytes) -> Iterator[LogLine]:
    for raw in data.split(b"\n"):
        if not raw:
            continue
        parts = raw.split(b" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else b""
        yield LogLine(parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), text, parts[2] == b"P")


def render(lines: list[LogLine], timestamps: bool = False, fresh: dict[str, bool] | None = None,
           ) -> Iterator[tuple[str, bytes]]:
    """Join partial records; yield (stream, bytes) with the newline restored for full lines.
    timestamps: each line starts with its record's time (docker logs -t); fresh tracks, per stream,
    whether the next record starts a line (pass the same dict across calls while following)."""
    fresh = {} if fresh is None else fresh
    for ln in lines:
        # conmon writes +00:00, docker Z
        stamp = f"{ln.time.removesuffix('+00:00')}{'Z' if ln.time.endswith('+00:00') else ''} ".encode() \
            if timestamps and fresh.get(ln.stream, True) else b""
        fresh[ln.stream] = not ln.partial
        yield ln.stream, stamp + ln.text + (b"" if ln.partial else b"\n")


def read(path: str, tail: int | None = None) -> list[LogLine]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = list(parse(data))
    if tail is not None:
        # A line ends at a full record; output that ends without a newline is the last line.
        ends = [i for i, ln in enumerate(lines) if not ln.partial or i == len(lines) - 1]
        if tail == 0:
            return []
        if len(ends) > tail:
            lines = lines[ends[-tail - 1] + 1 :]
    return lines


class Writer:
    """Appends k8s-file records, as conmon does, for output berth copies itself (`run -i`)."""

    def __init__(self, path: str) -> None:
        import threading

        self.f = open(path, "ab")  # noqa: SIM115 - closed by close()
        self.lock = threading.Lock()

    def write(self, stream: str, data: bytes) -> None:
        t = time.time()
        stamp = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.{int(t % 1 * 1e9):09d}Z".encode()
        lines = data.split(b"\n")
        records = [b"%s %s F %s\n" % (stamp, stream.encode(), ln) for ln in lines[:-1]]
        if lines[-1]:
            records.append(b"%s %s P %s\n" % (stamp, stream.encode(), lines[-1]))
        with self.lock:
            self.f.write(b"".join(records))
            self.f.flush()

    def close(self) -> None:
        self.f.close()


def tee(src: BinaryIO, stream: str, writer: Writer) -> None:
    """Copy a pipe to this process's stream and into the log until it closes."""
    fd = src.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        write_out(stream, data)
        writer.write(stream, data)


def write_out(stream: str, data: bytes) -> None:
    out = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
    out.write(data)
    out.flush()


def follow(path: str, done: Callable[[], bool], start: int = 0, poll: float = 0.01, timestamps: bool = False) -> int:
    """Copy log records to stdout/stderr from byte offset start until done() and the file is drained."""
    pos = start
    pending = b""
    fresh: dict[str, bool] = {}
    finished = False
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            pos += len(chunk)
            pending += chunk
            complete, _, pending = pending.rpartition(b"\n")
            for stream, data in render(list(parse(complete)), timestamps, fresh):
                write_out(stream, data)
            continue
        if finished:
            return pos
        if done():
            finished = True  # one more read after the exit is known, then stop
            continue
        time.sleep(poll)


def size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
