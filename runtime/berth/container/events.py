"""The event journal of a root: one JSON line per container event (create, start, die, stop, kill,
pause, unpause, rename, destroy, health_status), appended with O_APPEND so that concurrent berth
processes never interleave within a line, and rotated to events.log.1 past a size bound. There is no
daemon to stream events from: `berth events` reads this file and follows it."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from berth.errors import InvalidInput
from berth.locks import FileLock

MAX_BYTES = 4 << 20  # the journal rotates past this; one older generation is kept
ACTIONS = ("create", "start", "die", "stop", "kill", "pause", "unpause", "rename", "destroy", "health_status",
           "update", "restart")
FILTER_KEYS = ("container", "event", "image", "type", "label")


class Journal:
    def __init__(self, root: str, max_bytes: int = MAX_BYTES) -> None:
        self.path = os.path.join(root, "events.log")
        self.max_bytes = max_bytes
        self._lock = FileLock(os.path.join(root, "locks", "events"))

    def emit(self, action: str, cid: str, name: str, image: str, **attributes: str) -> None:
        """Append one container event; the journal never makes the operation it records fail."""
        now = time.time_ns()
        status = action + (f": {attributes['health_status']}" if "health_status" in attributes else "")
        event = {"status": status, "id": cid, "from": image, "Type": "container", "Action": status,
                 "Actor": {"ID": cid, "Attributes": {"image": image, "name": name, **attributes}},
                 "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        with contextlib.suppress(OSError):
            self._rotate_if_big()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def _rotate_if_big(self) -> None:
        try:
            if os.path.getsize(self.path) < self.max_bytes:
                return
        except FileNotFoundError:
            return
        with self._lock, contextlib.suppress(FileNotFoundError):
            if os.path.getsize(self.path) >= self.max_bytes:
                os.replace(self.path, self.path + ".1")

    def read(self) -> Iterator[dict[str, Any]]:
        """Every event kept, oldest first."""
        for p in (self.path + ".1", self.path):
            with contextlib.suppress(FileNotFoundError), open(p, "rb") as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)

    def follow(self, stop: Callable[[], bool], poll: float = 0.1) -> Iterator[dict[str, Any]]:
        """Events appended from now on, until stop() is true (checked between polls)."""
        pos = _size(self.path)
        ino = _inode(self.path)
        buf = b""
        while not stop():
            if _inode(self.path) != ino:  # rotated: read the rest of the old one, then the new one from 0
                with contextlib.suppress(FileNotFoundError), open(self.path + ".1", "rb") as f:
                    f.seek(pos)
                    buf += f.read()
                pos, ino = 0, _inode(self.path)
            with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
                f.seek(pos)
                data = f.read()
                pos += len(data)
                buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)
            if not lines:
                time.sleep(poll)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def parse_filters(items: list[str]) -> dict[str, set[str]]:
    """docker's --filter KEY=VALUE (repeatable; several values of one key match any of them)."""
    out: dict[str, set[str]] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or k not in FILTER_KEYS or not v:
            raise InvalidInput(f"invalid filter {item!r}: use KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}")
        out.setdefault(k, set()).add(v)
    return out


def matches(event: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    attrs = event.get("Actor", {}).get("Attributes", {})
    for k, wanted in filters.items():
        if k == "container":
            cid = str(event.get("id", ""))
            if not any(w == attrs.get("name") or (len(w) >= 3 and cid.startswith(w)) for w in wanted):
                return False
        elif k == "event":
            action = str(event.get("Action", ""))
            if not any(action == w or action.split(":")[0] == w for w in wanted):
                return False
        elif k == "image":
            if attrs.get("image") not in wanted and event.get("from") not in wanted:
                return False
        elif k == "type":
            if event.get("Type") not in wanted:
                return False
        elif k == "label" and not any(_label_matches(attrs, w) for w in wanted):
            return False
    return True


def _label_matches(attrs: dict[str, str], want: str) -> bool:
    k, sep, v = want.partition("=")
    return k in attrs and (not sep or attrs[k] == v)


def parse_time(value: str, now: float | None = None) -> float:
    """--since/--until: a Unix timestamp (with fraction), an RFC 3339 time, or a duration before now
    (10m, 1h30m)."""
    from berth.units import parse_duration

    now = time.time() if now is None else now
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.timestamp()
    except ValueError:
        pass
    try:
        return now - parse_duration(text, "time")
    except InvalidInput:
        raise InvalidInput(f"invalid time {value!r}: use a Unix timestamp, an RFC 3339 time or a duration "
                           "such as 10m") from None
