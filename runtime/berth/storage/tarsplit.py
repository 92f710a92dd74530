"""Exact reassembly of layer tars that berth received (in the spirit of vbatts/tar-split).

While a tar is applied, every byte that is not file content — headers, PAX and GNU extension
records, padding, the end-of-archive blocks and anything after them — is recorded verbatim, and
each file's content is recorded as a reference (path, size). Reassembly writes the recorded bytes
and reads the contents back from the layer, so `save` and `push` give back the exact bytes that
came in, and the DiffID (and any signature over a manifest naming it) survives the round trip.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterator

from berth.errors import BerthError

CHUNK = 1 << 20


MAGIC = b"berth-tarsplit-2\n"
TRAILER = 20  # digits of the index's length, at the very end


class Recorder:
    """Told, in stream order, the bytes that are not kept file content (segment) and where kept
    file contents are (file).

    The record (version 2) is one gzip stream: MAGIC, the recorded bytes back to back, then a
    JSON index ({"version": 2, "exact", "size", "entries"}: an integer entry is that many recorded
    bytes, a [name, size] entry a file's content) and the index's length in TRAILER digits.
    Version 1 records (JSON with base64 segments) are still read."""

    def __init__(self) -> None:
        self.pending = 0  # recorded bytes not yet in an entry
        self.data = bytearray(MAGIC)
        self.pos = 0
        self.entries: list[int | list[object]] = []
        self.names: set[str] = set()
        self.exact = True

    def segment(self, data: bytes | memoryview) -> None:
        self.data += data
        self.pending += len(data)
        self.pos += len(data)

    def _flush(self) -> None:
        if self.pending:
            self.entries.append(self.pending)
            self.pending = 0

    def file(self, name: str, size: int) -> None:
        """The next size bytes are the content of file name, read back from the layer."""
        self._flush()
        if name in self.names:
            self.exact = False
        self.names.add(name)
        self.entries.append([name, size])
        self.pos += size

    def finish(self) -> None:
        self._flush()

    def dump(self) -> bytes:
        doc = {"version": 2, "exact": self.exact, "size": self.pos, "entries": self.entries}
        index = json.dumps(doc, separators=(",", ":")).encode()
        self.data += index
        self.data += b"%0*d" % (TRAILER, len(index))
        return gzip.compress(self.data, compresslevel=1)


class TarSplit:
    def __init__(self, data: bytes) -> None:
        raw = gzip.decompress(data)
        self.payload = memoryview(b"")
        if raw.startswith(MAGIC):
            n = int(raw[-TRAILER:])
            doc = json.loads(raw[-TRAILER - n: -TRAILER])
            self.payload = memoryview(raw)[len(MAGIC): -TRAILER - n]
        else:
            doc = json.loads(raw)
        self.exact = bool(doc["exact"])
        self.size = int(doc["size"])
        self.entries: list[object] = doc["entries"]

    def assemble(self, root: str) -> Iterator[bytes]:
        """The original tar bytes, file contents read from root (the layer's own files)."""
        from berth.storage.tarapply import clean_name

        if not self.exact:
            raise BerthError("this layer's tar repeats a path, so its exact bytes cannot be rebuilt")
        at = 0
        for e in self.entries:
            if isinstance(e, int):
                yield bytes(self.payload[at: at + e])
                at += e
                continue
            if isinstance(e, list):
                name, size = str(e[0]), int(e[1])
            elif e["t"] == "s":  # type: ignore[index]
                yield base64.b64decode(str(e["d"]))  # type: ignore[index]
                continue
            else:
                name, size = str(e["n"]), int(e["s"])  # type: ignore[index]
            path = os.path.join(root, clean_name(name))
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                remaining = size
                while remaining:
                    chunk = os.read(fd, min(CHUNK, remaining))
                    if not chunk:
                        raise BerthError(f"layer file {name} is shorter than when it was stored")
                    remaining -= len(chunk)
                    yield chunk
            finally:
                os.close(fd)
