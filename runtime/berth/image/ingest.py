"""The one way layers come in from outside (a registry, an archive): in order, by ChainID, each
checked against the DiffID its image config names, and all taken out again when anything fails."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from berth.errors import InvalidInput

if TYPE_CHECKING:
    from berth.storage.layers import Layer, LayerStore


class LayerIngest:
    """Walk an image's layers bottom up: next(diff_id) says whether the layer is there already
    (reuse it) or must be unpacked (unpack(stream)). Used as a context manager: on an exception,
    the layers this ingest created are removed (newest first) and the exception goes on."""

    def __init__(self, layers: LayerStore) -> None:
        self.layers = layers
        self.created: list[str] = []
        self.parent: str | None = None
        self.size = 0
        self._chain: str | None = None
        self._diff_id = ""

    def next(self, diff_id: str) -> Layer | None:
        """Move to the layer with this DiffID; the layer if the store has its chain already."""
        from berth.storage.layers import chain_id

        self._chain = chain_id(self._chain, diff_id)
        self._diff_id = diff_id
        return self.layers.by_chain(self._chain)

    def reuse(self, layer: Layer) -> None:
        self.parent = layer.id
        self.size += layer.size

    def unpack(self, stream: BinaryIO, what: str, verify: Callable[[], None] | None = None) -> Layer:
        """Apply a layer tar (what names it in errors) on the current parent; verify, when given,
        checks the stream once it is read; then its DiffID must be the one the config names."""
        layer, new, result = self.layers.create_from_tar(self.parent, stream)
        if new:
            self.created.append(layer.id)
        if verify is not None:
            verify()
        if result.diff_id != self._diff_id:
            raise InvalidInput(f"layer {what} unpacks to DiffID {result.diff_id}, the image config says "
                               f"{self._diff_id}")
        self.reuse(layer)
        return layer

    def __enter__(self) -> LayerIngest:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            return
        for lid in reversed(self.created):
            try:
                self.layers.remove(lid)
            except Exception:  # noqa: BLE001, S110 - best effort: the original error is what matters
                pass
