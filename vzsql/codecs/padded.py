"""``vzsql.padded_bytes``: ``bytes`` for chunks whose stored shape differs from their slot.

HDF5 pads the last chunk of a dataset to the full chunk shape. Once files are concatenated,
that padded chunk sits in the *middle* of the combined array, where the (rectilinear) grid
asks for exactly its slot (say 1 element along time) while the stored bytes decode to the
whole stored chunk (say 10). The reverse also happens: pieces with different stored chunk
shapes served through one regular grid, or chunks cut by byte-range subsetting, hold fewer
elements than the grid requests.

The codec knows the stored chunk shapes that occur in the array (``chunk_shapes``, where a
``null`` extent means "any length along this dimension", used for byte-range subsets). It
identifies a chunk's stored shape from its decoded byte count, decodes it, then trims it to
the requested shape or pads it with the fill value. Chunks that already match are decoded
exactly like ``bytes``. Encoding is plain ``bytes`` (the slot shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs.bytes import BytesCodec
from zarr.core.common import JSON, parse_named_configuration

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

CODEC_NAME = "vzsql.padded_bytes"


class PaddedChunkError(ValueError):
    """A chunk's byte count matches none (or several) of the configured stored shapes."""


@dataclass(frozen=True)
class PaddedBytesCodec(ArrayBytesCodec):
    """``bytes`` that trims (or pads) each decoded chunk to the shape the grid asks for."""

    is_fixed_size = False

    endian: str | None
    chunk_shapes: tuple[tuple[int | None, ...], ...]

    def __init__(self, *, endian: str | None = "little", chunk_shapes: Any = ()) -> None:
        object.__setattr__(self, "endian", endian)
        object.__setattr__(
            self,
            "chunk_shapes",
            tuple(tuple(None if n is None else int(n) for n in s) for s in chunk_shapes),
        )

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        config = dict(config or {})
        return cls(endian=config.get("endian"), chunk_shapes=config.get("chunk_shapes", []))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        config: dict[str, JSON] = {"chunk_shapes": [list(s) for s in self.chunk_shapes]}
        if self.endian is not None:
            config["endian"] = self.endian
        return {"name": CODEC_NAME, "configuration": config}

    def _bytes(self) -> BytesCodec:
        return BytesCodec(endian=self.endian)  # type: ignore[arg-type]

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        evolved = self._bytes().evolve_from_array_spec(array_spec)
        if evolved.endian != self.endian:
            return type(self)(endian=evolved.endian, chunk_shapes=self.chunk_shapes)
        return self

    def candidates(self, n_items: int, ndim: int) -> set[tuple[int, ...]]:
        """The configured stored shapes of ``ndim`` dimensions holding ``n_items`` elements
        (an open ``null`` extent resolved to fit)."""
        found: set[tuple[int, ...]] = set()
        for shape in self.chunk_shapes:
            if len(shape) != ndim:
                continue
            open_dims = [d for d, n in enumerate(shape) if n is None]
            known = math.prod(n for n in shape if n is not None)
            if len(open_dims) > 1:
                continue
            if not open_dims:
                if known == n_items:
                    found.add(tuple(int(n) for n in shape))  # type: ignore[arg-type]
                continue
            if known and n_items % known == 0:
                resolved = list(shape)
                resolved[open_dims[0]] = n_items // known
                found.add(tuple(int(n) for n in resolved))  # type: ignore[arg-type]
        return found

    def stored_shape(
        self, nbytes: int, requested: tuple[int, ...], itemsize: int
    ) -> tuple[int, ...]:
        """The stored shape of a chunk of ``nbytes`` bytes; ``requested`` fills open extents."""
        if nbytes == math.prod(requested) * itemsize:
            return requested
        n_items, rem = divmod(nbytes, itemsize) if itemsize else (0, 1)
        found = set() if rem else self.candidates(n_items, len(requested))
        if len(found) != 1:
            raise PaddedChunkError(
                f"a chunk of {nbytes} bytes matches {'no' if not found else 'several'} stored "
                f"chunk shape(s) of {[list(s) for s in self.chunk_shapes]} "
                f"(requested shape {list(requested)}, item size {itemsize})"
            )
        return found.pop()

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        requested = tuple(chunk_spec.shape)
        itemsize = chunk_spec.dtype.to_native_dtype().itemsize
        stored = self.stored_shape(len(chunk_bytes), requested, itemsize)
        if stored == requested:
            return self._bytes()._decode_sync(chunk_bytes, chunk_spec)
        from zarr.core.array_spec import ArraySpec as Spec

        spec = Spec(
            stored, chunk_spec.dtype, chunk_spec.fill_value, chunk_spec.config, chunk_spec.prototype
        )
        full = self._bytes()._decode_sync(chunk_bytes, spec).as_numpy_array()
        keep = tuple(slice(0, min(s, r)) for s, r in zip(stored, requested, strict=True))
        if all(s >= r for s, r in zip(stored, requested, strict=True)):
            out = np.ascontiguousarray(full[keep])
        else:
            out = np.full(requested, chunk_spec.fill_value, dtype=full.dtype)
            out[keep] = full[keep]
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._bytes()._encode_sync(chunk_array, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        return input_byte_length


def padded_codecs(
    codecs: list[dict[str, Any]], chunk_shapes: list[list[int | None]]
) -> list[dict[str, Any]]:
    """``codecs`` with its ``bytes`` (or padded) codec replaced by ``vzsql.padded_bytes``.

    ``chunk_shapes`` are added to those an existing padded codec already lists. Pipelines
    without a ``bytes`` codec (``vlen-utf8``...) are returned unchanged.
    """
    out: list[dict[str, Any]] = []
    for codec in codecs:
        name = codec.get("name")
        config = dict(codec.get("configuration") or {})
        if name == "bytes" or name == CODEC_NAME:
            shapes: list[list[int | None]] = [list(s) for s in config.get("chunk_shapes", [])]
            for s in chunk_shapes:
                if list(s) not in shapes:
                    shapes.append(list(s))
            new_config: dict[str, Any] = {"chunk_shapes": shapes}
            if config.get("endian") is not None:
                new_config["endian"] = config["endian"]
            out.append({"name": CODEC_NAME, "configuration": new_config})
        else:
            out.append(codec)
    return out


def ambiguous_shapes(
    chunk_shapes: list[list[int | None]],
) -> list[tuple[list[int], list[list[int]]]]:
    """Stored shapes the codec could not tell apart by byte count: (shape, all it matches).

    Each fixed shape is a chunk the codec may have to identify from its decoded size (when
    its slot is smaller); it is ambiguous when another configured shape (fixed with the same
    element count, or open and resolving to a different shape) matches that size too.
    """
    codec = PaddedBytesCodec(chunk_shapes=chunk_shapes)
    out = []
    for shape in codec.chunk_shapes:
        if any(n is None for n in shape):
            continue
        n_items = math.prod(n for n in shape if n is not None)
        found = codec.candidates(n_items, len(shape)) if n_items else set()
        if len(found) > 1:
            out.append(([int(n) for n in shape if n is not None], sorted(list(f) for f in found)))
    return out


def register() -> None:
    """Register the codec with zarr (normally done by the ``zarr.codecs`` entry point)."""
    from zarr.registry import register_codec

    register_codec(CODEC_NAME, PaddedBytesCodec)
