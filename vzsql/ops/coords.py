"""Coordinate values: read a (small) array of a manifest, CF time handling, inline arrays.

Concatenation orders pieces by their coordinate values and writes the combined coordinate
as one inline array; ``sel`` turns labels into positions. Both need the decoded values of
1-D coordinate arrays, which this module reads through zarr (the same codecs the store
serves), and CF time coordinates, which it converts between units so that files written
with different ``units`` combine to the right instants instead of silently wrong ones.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import InconsistentConcatError, VzsqlError
from vzsql.ops.relations import stack_array_rows
from vzsql.tables import Tables, conform
from vzsql.zarr_meta import array_json, chunk_key, grid_lengths, numpy_dtype

PLAIN_BYTES = [{"name": "bytes", "configuration": {"endian": "little"}}]


def array_row(tables: Tables, name: str) -> dict[str, Any]:
    rows = tables.arrays.filter(pc.equal(tables.arrays["array"], name)).to_pylist()
    if not rows:
        raise VzsqlError("no such array in the manifest", array=name)
    return rows[0]  # type: ignore[no-any-return]


def attrs_of(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["attrs"]) if row.get("attrs") else {}


def is_dimension_coordinate(name: str, dims: Sequence[str] | None) -> bool:
    """Whether array ``name`` with ``dims`` is a 1-D dimension coordinate (named like its dim)."""
    return dims is not None and len(dims) == 1 and name.split("/")[-1] == dims[0]


def inline_arrays(tables: Tables) -> set[str]:
    """Arrays whose chunks are all held inline (``data``): readable without file access."""
    chunks = tables.chunks.select(["array", "data"])
    virtual = set(pc.unique(chunks.filter(pc.is_null(chunks["data"]))["array"]).to_pylist())
    return set(pc.unique(chunks["array"]).to_pylist()) - virtual


def source_uris(tables: Tables) -> dict[int, str]:
    """``source_id`` -> URI of every source of ``tables``."""
    return dict(
        zip(tables.sources["source_id"].to_pylist(), tables.sources["uri"].to_pylist(), strict=True)
    )


def read_array(tables: Tables, name: str) -> np.ndarray[Any, Any]:
    """The decoded (raw, not CF-decoded) values of array ``name``, read through zarr.

    Only the chunks of this one array are fetched: meant for coordinates and other small
    arrays. Virtual chunks are read from their sources, inline chunks from ``data``.
    """
    import zarr
    from zarr.core.buffer import cpu
    from zarr.storage import MemoryStore

    row = array_row(tables, name)
    chunks = tables.chunks.filter(pc.equal(tables.chunks["array"], name))
    doc = array_json(row, grid_lengths(tables).get(name))
    store: dict[str, Any] = {"zarr.json": cpu.Buffer.from_bytes(json.dumps(doc).encode())}
    blobs = _chunk_bytes(chunks, source_uris(tables), name)
    for index, blob in zip(chunks["index"].to_pylist(), blobs, strict=True):
        store[chunk_key(index)] = cpu.Buffer.from_bytes(blob)
    try:
        with zarr.config.set({"array.rectilinear_chunks": True}):
            arr = zarr.open_array(MemoryStore(store), mode="r")
            return np.asarray(arr[...])
    except Exception as e:
        raise VzsqlError(f"cannot decode array values: {type(e).__name__}: {e}", array=name) from e


def read_arrays(parts: Sequence[Tables], name: str) -> list[np.ndarray[Any, Any]]:
    """``read_array(p, name)`` for every piece ``p``, decoded in one batch where possible.

    Opening a zarr array per piece costs milliseconds, which dominates concatenating
    thousands of files. Pieces that hold ``name`` as one chunk (the usual case for a
    coordinate: inline, or one chunk per file) with a serializer-plus-compressors pipeline
    are decoded together: their chunks become the rows of one ``(pieces, *chunk_shape)``
    zarr array in memory, with the same codecs (a chunk's bytes do not depend on a leading
    extent of 1), read with one call. Other pieces go through ``read_array``.
    """
    out: list[np.ndarray[Any, Any] | None] = [None] * len(parts)
    batches: dict[tuple[Any, ...], list[tuple[int, bytes, list[int]]]] = {}
    rows = array_rows(parts, name)
    # the chunk rows of ``name`` in every piece, found with one pass over all pieces
    mine = stack_array_rows(parts, "chunks", name)
    counts = np.bincount(mine["piece"].to_numpy(), minlength=len(parts))
    firsts = {int(p): k for k, p in enumerate(mine["piece"].to_pylist())}
    indices, inline = mine["index"].to_pylist(), mine["data"].to_pylist()  # not per piece
    for i, p in enumerate(parts):
        row = rows[i]
        if row is None:
            raise VzsqlError("no such array in the manifest", array=name)
        shape = [int(s) for s in row["shape"] or []]
        cs = [int(s) for s in row["chunk_shape"] or shape]
        if not (
            shape
            and counts[i] == 1
            and indices[firsts[i]] is not None
            and not any(indices[firsts[i]])
            and len(cs) == len(shape)
            and all(c >= s > 0 for c, s in zip(cs, shape, strict=True))
            and _stackable(row["codecs"])
        ):
            out[i] = read_array(p, name)
            continue
        blob = inline[firsts[i]]
        if blob is None:
            blob = _chunk_bytes(mine.slice(firsts[i], 1), source_uris(p), name)[0]
        key = (row["dtype"], row["codecs"], tuple(cs), row["fill_value"])
        batches.setdefault(key, []).append((i, blob, shape))
    for (dtype, codecs, cs, fill), members in batches.items():
        stacked = _decode_stacked(dtype, codecs, list(cs), fill, [b for _, b, _ in members], name)
        for j, (i, _, shape) in enumerate(members):
            out[i] = np.ascontiguousarray(stacked[j][tuple(slice(0, s) for s in shape)])
    return out  # type: ignore[return-value]


def array_rows(parts: Sequence[Tables], name: str) -> list[dict[str, Any] | None]:
    """The ``arrays`` row of ``name`` in every piece (None where absent), in one filter."""
    found = stack_array_rows(parts, "arrays", name).to_pylist()
    out: list[dict[str, Any] | None] = [None] * len(parts)
    for r in found:
        if out[r["piece"]] is None:
            out[r["piece"]] = r
    return out


@functools.lru_cache(maxsize=256)
def _stackable(codecs: str | None) -> bool:
    """A pipeline of the ``bytes`` serializer and bytes-to-bytes codecs (no transpose...)."""
    from zarr.abc.codec import BytesBytesCodec
    from zarr.registry import get_codec_class

    pipeline: list[dict[str, Any]] = json.loads(codecs) if codecs else [{"name": "bytes"}]
    if not pipeline or pipeline[0].get("name") != "bytes":
        return False
    try:
        return all(
            issubclass(get_codec_class(str(c.get("name"))), BytesBytesCodec) for c in pipeline[1:]
        )
    except Exception:  # a codec zarr does not know: leave it to read_array's error
        return False


@functools.lru_cache(maxsize=256)
def _plain_bytes_dtype(dtype: str, codecs: str | None) -> np.dtype[Any] | None:
    """The numpy dtype (with byte order) of numbers stored by the lone ``bytes`` codec."""
    pipeline: list[dict[str, Any]] = json.loads(codecs) if codecs else [{"name": "bytes"}]
    if len(pipeline) != 1 or pipeline[0].get("name") != "bytes":
        return None
    try:
        base = numpy_dtype(dtype)
    except Exception:  # not a numpy type: zarr decodes it
        return None
    if base.kind not in "biufc":
        return None
    endian = (pipeline[0].get("configuration") or {}).get("endian", "little")
    return base.newbyteorder("<" if endian == "little" else ">")


def _decode_stacked(
    dtype: str, codecs: str, cs: list[int], fill: str | None, blobs: list[bytes], name: str
) -> np.ndarray[Any, Any]:
    """Decode ``blobs`` (one encoded chunk of shape ``cs`` each) as rows of one array."""
    plain = _plain_bytes_dtype(dtype, codecs)
    if plain is not None and all(len(b) == plain.itemsize * math.prod(cs) for b in blobs):
        # uncompressed numbers: the bytes are the values (zarr costs ~0.1 ms per chunk)
        raw = np.frombuffer(b"".join(blobs), dtype=plain).reshape(len(blobs), *cs)
        return raw.astype(plain.newbyteorder("="))
    import zarr
    from zarr.core.buffer import cpu
    from zarr.storage import MemoryStore

    row = {
        "shape": [len(blobs), *cs],
        "chunk_shape": [1, *cs],
        "dtype": dtype,
        "fill_value": fill,
        "codecs": codecs,
        "attrs": None,
        "dims": None,
    }
    store: dict[str, Any] = {
        "zarr.json": cpu.Buffer.from_bytes(json.dumps(array_json(row, None)).encode())
    }
    zeros = [0] * len(cs)
    for j, blob in enumerate(blobs):
        store[chunk_key([j, *zeros])] = cpu.Buffer.from_bytes(blob)
    try:
        return np.asarray(zarr.open_array(MemoryStore(store), mode="r")[...])
    except Exception as e:
        raise VzsqlError(f"cannot decode array values: {type(e).__name__}: {e}", array=name) from e


def _chunk_bytes(chunks: pa.Table, uris: dict[int, str], name: str) -> list[bytes]:
    """Encoded bytes of each chunk row (inline data, or a range of its source file).

    Each source is checked first as the store checks it (``vzsql.allowlist.check_read``)
    against the allow-lists of the manifests the running operation was given.
    """
    from vzsql.allowlist import check_read, read_policy
    from vzsql.sources import open_source

    out: list[bytes] = []
    handles: dict[int, Any] = {}
    try:
        for sid, off, length, data in zip(
            chunks["source_id"].to_pylist(),
            chunks["offset"].to_pylist(),
            chunks["length"].to_pylist(),
            chunks["data"].to_pylist(),
            strict=True,
        ):
            if data is not None:
                out.append(data)
                continue
            if sid not in handles:
                check_read(read_policy(), uris[sid])  # security: only allowed locations
                handles[sid] = open_source(uris[sid])
            f = handles[sid]
            f.seek(off)
            blob = f.read(length)
            if len(blob) != length:
                raise VzsqlError(
                    f"byte range {off}+{length} is past the end of the file",
                    source=uris[sid],
                    array=name,
                )
            out.append(blob)
    finally:
        for f in handles.values():
            f.close()
    return out


# -- CF time ------------------------------------------------------------------------------
def is_time_units(units: object) -> bool:
    return isinstance(units, str) and " since " in units


def decode_times(values: np.ndarray[Any, Any], units: str, calendar: str | None) -> Any:
    from xarray.coding.times import decode_cf_datetime

    return decode_cf_datetime(values, units, calendar or "standard")


def reencode_times(
    values: np.ndarray[Any, Any],
    units: str,
    calendar: str | None,
    target_units: str,
    dtype: np.dtype[Any],
    *,
    label: str,
) -> np.ndarray[Any, Any]:
    """``values`` in ``units`` converted to ``target_units`` (same instants).

    Integer dtypes are kept when every converted value is whole, else float64 is used so
    that no instant is rounded.
    """
    from xarray.coding.times import encode_cf_datetime

    if units == target_units:
        return values
    try:
        dates = decode_times(values, units, calendar)
        num, _, _ = encode_cf_datetime(dates, target_units, calendar or "standard", dtype=None)
    except Exception as e:
        raise InconsistentConcatError(
            f"cannot convert times from {units!r} to {target_units!r}: {e}", source=label
        ) from e
    num = np.asarray(num)
    as_float = np.asarray(num, dtype="float64")
    if (
        dtype.kind in "iu"
        and np.all(np.isfinite(as_float))
        and np.all(as_float == np.round(as_float))
    ):
        return as_float.astype(dtype)
    return as_float


def numeric_positions(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Values as float64 for ordering (datetimes as ns since the epoch)."""
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]").astype("int64").astype("float64")
    if values.dtype.kind in "iufb":
        return values.astype("float64")
    raise VzsqlError(f"cannot order coordinate values of dtype {values.dtype}")


# -- inline arrays ------------------------------------------------------------------------
def inline_array(
    tables: Tables,
    name: str,
    values: np.ndarray[Any, Any],
    *,
    attrs: dict[str, Any] | None = None,
    plain: bool = False,
) -> Tables:
    """``tables`` with array ``name`` replaced by ``values`` stored as one inline chunk.

    The chunk is encoded with the array's own codecs when its dtype is unchanged (through
    ``vzsql.codecs.encode``), else (or with ``plain``) with the plain ``bytes`` codec, whose
    chunks ``isel`` can cut by byte arithmetic.
    """
    from vzsql.codecs.encode import codecs_json, encode_chunk

    row = dict(array_row(tables, name))
    old_dtype = numpy_dtype(row["dtype"])
    shape = [int(s) for s in values.shape]
    if values.dtype != old_dtype:
        from vzsql.zarr_meta import dtype_to_text

        row["dtype"] = dtype_to_text(values.dtype)
        row["codecs"] = codecs_json(PLAIN_BYTES)
        if values.dtype.kind == "f" and row.get("fill_value") not in (None, '"NaN"'):
            row["fill_value"] = json.dumps(float(json.loads(row["fill_value"])))
    elif plain:
        row["codecs"] = codecs_json(PLAIN_BYTES)
    else:
        codecs: list[dict[str, Any]] = (
            json.loads(row["codecs"]) if row.get("codecs") else PLAIN_BYTES
        )
        # one chunk of exactly the array's shape: the trimming codec is not needed
        row["codecs"] = codecs_json(
            [
                {
                    "name": "bytes",
                    "configuration": {
                        "endian": (c.get("configuration") or {}).get("endian", "little")
                    },
                }
                if c.get("name") == "vzsql.padded_bytes"
                else c
                for c in codecs
            ]
        )
    row["shape"] = shape
    row["chunk_shape"] = [max(1, s) for s in shape]
    if attrs is not None:
        row["attrs"] = json.dumps(attrs)
    data = encode_chunk(values.reshape(row["chunk_shape"]) if values.size else values, row)
    rows = [row if r["array"] == name else r for r in tables.arrays.to_pylist()]
    arrays = conform("arrays", pa.Table.from_pylist(rows, schema=tables.arrays.schema))
    grid, chunk = one_chunk_rows(name, shape, data)
    grid = pa.concat_tables(
        [tables.grid.filter(pc.invert(pc.equal(tables.grid["array"], name))), grid]
    )
    chunks = pa.concat_tables(
        [tables.chunks.filter(pc.invert(pc.equal(tables.chunks["array"], name))), chunk]
    )
    return tables.with_tables(arrays=arrays, grid=grid, chunks=chunks)


def one_chunk_rows(name: str, shape: Sequence[int], data: bytes) -> tuple[pa.Table, pa.Table]:
    """The ``grid`` rows and the ``chunks`` row of array ``name`` stored as one inline chunk
    ``data`` covering its whole ``shape``."""
    ndim = len(shape)
    grid = pa.table(
        {
            "array": [name] * ndim,
            "dim": pa.array(range(ndim), pa.int16()),
            "chunk": pa.array([0] * ndim, pa.int32()),
            "start": pa.array([0] * ndim, pa.int64()),
            "length": pa.array(shape, pa.int64()),
        }
    )
    chunk = {
        "array": name,
        "index": [0] * ndim,
        "source_id": None,
        "offset": None,
        "length": len(data),
        "data": data,
    }
    return conform("grid", grid), conform("chunks", pa.Table.from_pylist([chunk]))
