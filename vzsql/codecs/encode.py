"""Encode a numpy array into one chunk's bytes with the codec pipeline of an ``arrays`` row.

Scanners store small or awkward data inline (``chunks.data``): HDF5 compact datasets,
variable-length strings, chunks whose HDF5 filter mask skipped a filter. The bytes must
decode with the array's own ``codecs``, so they are produced by zarr's codec pipeline from
the same metadata the store serves (``vzsql.zarr_meta.array_json``), never by hand.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vzsql.zarr_meta import array_json


def _codec_pipeline(row: dict[str, Any], chunk_shape: list[int]) -> tuple[Any, Any, Any]:
    """``(pipeline, chunk spec, buffer prototype)`` for one chunk of ``chunk_shape``."""
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.metadata.v3 import ArrayV3Metadata
    from zarr.registry import get_pipeline_class

    doc = array_json(row, None)
    doc["chunk_grid"] = {
        "name": "regular",
        "configuration": {"chunk_shape": [max(1, s) for s in chunk_shape]},
    }
    meta = ArrayV3Metadata.from_dict(doc)
    prototype = default_buffer_prototype()
    spec = ArraySpec(
        shape=tuple(chunk_shape),
        dtype=meta.data_type,
        fill_value=meta.fill_value,
        config=ArrayConfig.from_dict({}),
        prototype=prototype,
    )
    return get_pipeline_class().from_codecs(meta.codecs), spec, prototype


def encode_chunk(data: np.ndarray[Any, Any], row: dict[str, Any]) -> bytes:
    """The encoded bytes of ``data`` as one chunk of the array described by ``row``.

    ``row`` is an ``arrays`` row (``dtype``, ``fill_value``, ``codecs``, ``shape``...).
    ``data`` must already have the chunk's full stored shape (edge chunks padded).
    """
    from zarr.core.sync import sync

    pipeline, spec, prototype = _codec_pipeline(row, [int(s) for s in data.shape])
    native = spec.dtype.to_native_dtype()
    if native.kind not in "OTU":
        data = np.ascontiguousarray(data, dtype=native)
    out = sync(pipeline.encode([(prototype.nd_buffer.from_numpy_array(data), spec)]))
    (buf,) = list(out)
    if buf is None:  # pragma: no cover - only for chunks equal to the fill value with write_empty
        raise ValueError("codec pipeline returned no bytes")
    return bytes(buf.to_bytes())


def decode_chunk(data: bytes, row: dict[str, Any], chunk_shape: list[int]) -> np.ndarray[Any, Any]:
    """The array held by encoded chunk bytes ``data`` of the array described by ``row``."""
    from zarr.core.sync import sync

    pipeline, spec, prototype = _codec_pipeline(row, chunk_shape)
    out = sync(pipeline.decode([(prototype.buffer.from_bytes(data), spec)]))
    (nd,) = list(out)
    if nd is None:  # pragma: no cover - the pipeline returns None only for missing input
        raise ValueError("codec pipeline returned no array")
    return np.asarray(nd.as_numpy_array())


def bytes_codec(dtype: np.dtype[Any]) -> dict[str, Any]:
    """The ``bytes`` codec for values stored as ``dtype``: with the stored byte order when an
    element has several bytes (single bytes and strings have none)."""
    codec: dict[str, Any] = {"name": "bytes"}
    if dtype.itemsize > 1 and dtype.byteorder in "<>=" and dtype.kind not in "SUOV":
        codec["configuration"] = {"endian": "big" if dtype.byteorder == ">" else "little"}
    return codec


def codecs_json(codecs: list[dict[str, Any]]) -> str:
    """The ``arrays.codecs`` text of a codec list (compact, stable key order)."""
    return json.dumps(codecs, separators=(",", ":"))
