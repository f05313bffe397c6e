"""Zarr v3 bytes->bytes codecs for HDF5 filters that have no standard Zarr/numcodecs codec.

- ``vzsql.hdf5_lz4`` (HDF5 filter 32004): the HDF5 lz4 filter frames its output as an
  8-byte big-endian original size, a 4-byte big-endian block size, then per block a 4-byte
  big-endian compressed size and the LZ4 block (stored raw when it did not shrink). This
  is not numcodecs' LZ4 framing; ``imagecodecs.lz4h5_*`` implements exactly this one.
- ``vzsql.hdf5_lzf`` (HDF5 filter 32000, h5py's LZF): a raw LZF stream without a header.
- ``vzsql.hdf5_szip`` (HDF5 filter 4): HDF5 prefixes the AEC/SZIP stream with the 4-byte
  little-endian decoded size; parameters are the filter's stored ``cd_values``.

Decoding and encoding go through imagecodecs; the classes only fix the framing and the
names under which readers find them (``zarr.codecs`` entry points).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.core.common import JSON, parse_named_configuration

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer


def _as_bytes_array(buf: Buffer) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(buf.as_numpy_array()).view(np.uint8).reshape(-1)


@dataclass(frozen=True)
class _ImagecodecsBytesCodec(BytesBytesCodec):
    """Shared plumbing: sync encode/decode run in a thread for the async pipeline."""

    is_fixed_size = False
    codec_name = ""

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, cls.codec_name, require_configuration=False)
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": self.codec_name, "configuration": self._config()}

    def _config(self) -> dict[str, int]:
        """The configuration: every dataclass field (the filter's parameters)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def _decode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        raise NotImplementedError

    def _encode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        raise NotImplementedError

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return chunk_spec.prototype.buffer.from_bytes(
            bytes(self._decode_bytes(_as_bytes_array(chunk_bytes)))
        )

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return chunk_spec.prototype.buffer.from_bytes(
            bytes(self._encode_bytes(_as_bytes_array(chunk_bytes)))
        )

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class HDF5LZ4Codec(_ImagecodecsBytesCodec):
    """The HDF5 lz4 filter (32004) byte stream; ``blocksize`` 0 means the filter default."""

    codec_name = "vzsql.hdf5_lz4"
    blocksize: int = 0

    def __init__(self, *, blocksize: int = 0) -> None:
        object.__setattr__(self, "blocksize", int(blocksize))

    def _decode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.lz4h5_decode(data))

    def _encode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.lz4h5_encode(data, blocksize=self.blocksize or None))


@dataclass(frozen=True)
class HDF5LZFCodec(_ImagecodecsBytesCodec):
    """h5py's LZF filter (32000): a raw LZF stream with no size header.

    LZF needs the decoded size up front: ``size`` is the filter's stored chunk size in
    bytes (its third ``cd_value``); 0 means the chunk's size from the array spec.
    """

    codec_name = "vzsql.hdf5_lzf"
    size: int = 0

    def __init__(self, *, size: int = 0) -> None:
        object.__setattr__(self, "size", int(size))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        import imagecodecs

        size = (
            self.size
            or int(np.prod(chunk_spec.shape)) * chunk_spec.dtype.to_native_dtype().itemsize
        )
        decoded = imagecodecs.lzf_decode(_as_bytes_array(chunk_bytes), header=False, out=size)
        return chunk_spec.prototype.buffer.from_bytes(bytes(decoded))

    def _encode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.lzf_encode(data, header=False))


@dataclass(frozen=True)
class HDF5SzipCodec(_ImagecodecsBytesCodec):
    """HDF5's SZIP filter (4): 4-byte little-endian decoded size, then the AEC stream."""

    codec_name = "vzsql.hdf5_szip"
    options_mask: int = 0
    pixels_per_block: int = 0
    bits_per_pixel: int = 0
    pixels_per_scanline: int = 0

    def __init__(
        self,
        *,
        options_mask: int,
        pixels_per_block: int,
        bits_per_pixel: int,
        pixels_per_scanline: int,
    ) -> None:
        object.__setattr__(self, "options_mask", int(options_mask))
        object.__setattr__(self, "pixels_per_block", int(pixels_per_block))
        object.__setattr__(self, "bits_per_pixel", int(bits_per_pixel))
        object.__setattr__(self, "pixels_per_scanline", int(pixels_per_scanline))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, cls.codec_name)  # all four are required
        return cls(**config)  # type: ignore[arg-type]

    def _decode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.szip_decode(data, header=True, **self._config()))

    def _encode_bytes(self, data: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.szip_encode(data, header=True, **self._config()))
