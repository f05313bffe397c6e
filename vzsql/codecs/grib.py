"""``vzsql.grib``: a Zarr v3 array->bytes codec that decodes one referenced GRIB message.

A chunk of a GRIB-backed array is one whole GRIB message (GRIB1 or GRIB2), referenced by
byte offset and length in the original file. Decoding hands the bytes to ecCodes
(``codes_new_from_message``) and returns the field's values shaped like the chunk (leading
dimensions of length 1, then the field's grid), exactly as cfgrib returns them:

- missing points (bitmap) become NaN: like cfgrib, the message's ``missingValue`` is set to
  the largest float32 and every value equal to it after the cast is NaN;
- rows of grids with ``alternativeRowScanning`` are flipped back, as cfgrib does;
- values are cast to the array's data type (cfgrib's default is float32).

Configuration: ``{"field": k}`` selects field ``k`` of a GRIB2 message holding several fields
(repeated sections 2-7); the field is cut out as a standalone message before decoding.

The codec is decode-only: vzsql references GRIB messages, it never writes them. It is found
by zarr (and so xarray and Icechunk) through the ``zarr.codecs`` entry point ``vzsql.grib``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration

from vzsql.errors import CorruptSourceError, UnsupportedLayoutError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

CODEC_NAME = "vzsql.grib"
MISSING_VALUE = float(np.finfo(np.float32).max)  # cfgrib's missing value indicator
# ecCodes is thread-safe for independent handles, but cfgrib serialises access; so do we
_ECCODES_LOCK = threading.Lock()


def decode_message(
    message: bytes, field: int = 0
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], bool]:
    """Flat values of field ``field`` of one GRIB message (missing = ``MISSING_VALUE``).

    Also says whether the grid uses alternative row scanning (odd rows reversed).
    """
    import eccodes

    from vzsql.scanners.grib_messages import FieldSplitError, split_field

    try:
        data = split_field(message, field)
    except (FieldSplitError, IndexError) as e:
        raise CorruptSourceError(
            f"referenced GRIB message ({len(message)} bytes) is not a valid message: {e}"
        ) from e
    with _ECCODES_LOCK:
        try:
            handle = eccodes.codes_new_from_message(data)
        except Exception as e:
            raise CorruptSourceError(
                f"ecCodes cannot read the referenced GRIB message ({len(message)} bytes): {e}"
            ) from e
        try:
            eccodes.codes_set(handle, "missingValue", MISSING_VALUE)
            values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
            try:
                alternative = bool(eccodes.codes_get(handle, "alternativeRowScanning", int))
            except eccodes.KeyValueNotFoundError:
                alternative = False
        except Exception as e:
            raise CorruptSourceError(
                f"ecCodes failed to decode field {field} of the referenced GRIB message "
                f"({len(message)} bytes): {e}"
            ) from e
        finally:
            eccodes.codes_release(handle)
    return values, alternative


@dataclass(frozen=True)
class GribCodec(ArrayBytesCodec):
    """Decode a GRIB message (one chunk) into the field's values."""

    is_fixed_size = False
    field: int = 0

    def __init__(self, *, field: int = 0) -> None:
        object.__setattr__(self, "field", int(field))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**(configuration or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": CODEC_NAME, "configuration": {"field": self.field}}

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        values, alternative = decode_message(chunk_bytes.to_bytes(), self.field)
        dtype = chunk_spec.dtype.to_native_dtype()
        expected = int(np.prod(chunk_spec.shape))
        if values.size != expected:
            raise CorruptSourceError(
                f"GRIB field {self.field} holds {values.size} values, the chunk expects "
                f"{expected} (shape {tuple(chunk_spec.shape)})"
            )
        out = values.astype(dtype).reshape(chunk_spec.shape)
        if alternative and out.ndim >= 2:  # as cfgrib: only for 2-D (lat, lon) / (y, x) grids
            rows = out.reshape(-1, *out.shape[-2:])
            rows[:, 1::2, :] = rows[:, 1::2, ::-1].copy()
        if out.dtype.kind == "f":
            out[out == dtype.type(MISSING_VALUE)] = np.nan
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(out)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        raise UnsupportedLayoutError(
            "the vzsql.grib codec is decode-only: GRIB messages are referenced, not written"
        )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("GRIB messages have no fixed encoded size")
