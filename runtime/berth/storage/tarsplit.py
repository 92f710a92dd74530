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
from collections import deque
from collections.abc import Iterator

from berth.errors import BerthError

CHUNK = 1 << 20


class Recorder:
    """Fed every byte of the uncompressed stream; told where file contents are."""

    def __init__(self) -> None:
        # (absolute offset, bytes) of what lies outside skipped contents, oldest first
        self.chunks: deque[tuple[int, memoryview]] = deque()
        self.pos = 0
        self.skip_from = -1
        self.skip_to = -1
        self.prev_end = 0
        self.entries: list[dict[str, object]] = []
        self.names: set[str] = set()
        self.exact = True

    def feed(self, data: bytes) -> None:
        start, end = self.pos, self.pos + len(data)
        self.pos = end
        a, b = self.skip_from, self.skip_to
        view = memoryview(bytes(data))
        if b <= start or a >= end:
            self.chunks.append((start, view))
            return
        if a > start:
            self.chunks.append((start, view[: a - start]))
        if b < end:
            self.chunks.append((b, view[b - start :]))

    def _take(self, upto: int) -> bytes:
        """Recorded bytes in [prev_end, upto); drops everything before upto."""
        out = bytearray()
        chunks = self.chunks
        while chunks:
            off, data = chunks[0]
            if off >= upto:
                break
            end = off + len(data)
            lo, hi = max(off, self.prev_end), min(end, upto)
            if lo < hi:
                out += data[lo - off : hi - off]
            if end > upto:
                chunks[0] = (upto, data[upto - off :])
                break
            chunks.popleft()
        if len(out) != upto - self.prev_end:
            raise BerthError("internal error: tar bytes went unrecorded")
        return bytes(out)

    def member(self, name: str, offset_data: int, size: int, is_file: bool) -> None:
        """Called when a member's header has been read (before its content is consumed)."""
        seg = self._take(offset_data)
        if seg:
            self.entries.append({"t": "s", "d": base64.b64encode(seg).decode()})
        self.prev_end = offset_data
        if is_file and size:
            if name in self.names:
                self.exact = False
            self.names.add(name)
            self.entries.append({"t": "f", "n": name, "s": size})
            self.skip_from, self.skip_to = offset_data, offset_data + size
            self.prev_end = offset_data + size

    def finish(self) -> None:
        seg = self._take(self.pos)
        if seg:
            self.entries.append({"t": "s", "d": base64.b64encode(seg).decode()})
        self.prev_end = self.pos

    def dump(self) -> bytes:
        doc = {"version": 1, "exact": self.exact, "size": self.pos, "entries": self.entries}
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=1)


class TarSplit:
    def __init__(self, data: bytes) -> None:
        doc = json.loads(gzip.decompress(data))
        self.exact = bool(doc["exact"])
        self.size = int(doc["size"])
        self.entries: list[dict[str, object]] = doc["entries"]

    def assemble(self, root: str) -> Iterator[bytes]:
        """The original tar bytes, file contents read from root (the layer's own files)."""
        from berth.storage.tarapply import clean_name

        if not self.exact:
            raise BerthError("this layer's tar repeats a path, so its exact bytes cannot be rebuilt")
        for e in self.entries:
            if e["t"] == "s":
                yield base64.b64decode(str(e["d"]))
                continue
            size = int(e["s"])  # type: ignore[call-overload]
            path = os.path.join(root, clean_name(str(e["n"])))
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                remaining = size
                while remaining:
                    chunk = os.read(fd, min(CHUNK, remaining))
                    if not chunk:
                        raise BerthError(f"layer file {e['n']} is shorter than when it was stored")
                    remaining -= len(chunk)
                    yield chunk
            finally:
                os.close(fd)
