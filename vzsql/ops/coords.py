"""Coordinate values: read a (small) array of a manifest, CF time handling, inline arrays.

Concatenation orders pieces by their coordinate values and writes the combined coordinate
as one inline array; ``sel`` turns labels into positions. Both need the decoded values of
1-D coordinate arrays, which this module reads through zarr (the same codecs the store
serves), and CF time coordinates, which it converts between units so that files written
with different ``units`` combine to the right instants instead of silently wrong ones.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import InconsistentConcatError, VzsqlError
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
    uris = dict(
        zip(tables.sources["source_id"].to_pylist(), tables.sources["uri"].to_pylist(), strict=True)
    )
    blobs = _chunk_bytes(chunks, uris, name)
    for index, blob in zip(chunks["index"].to_pylist(), blobs, strict=True):
        store[chunk_key(index)] = cpu.Buffer.from_bytes(blob)
    try:
        with zarr.config.set({"array.rectilinear_chunks": True}):
            arr = zarr.open_array(MemoryStore(store), mode="r")
            return np.asarray(arr[...])
    except Exception as e:
        raise VzsqlError(f"cannot decode array values: {type(e).__name__}: {e}", array=name) from e


def _chunk_bytes(chunks: pa.Table, uris: dict[int, str], name: str) -> list[bytes]:
    """Encoded bytes of each chunk row (inline data, or a range of its source file)."""
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
    ndim = len(shape)
    rows = [row if r["array"] == name else r for r in tables.arrays.to_pylist()]
    arrays = conform("arrays", pa.Table.from_pylist(rows, schema=tables.arrays.schema))
    grid = pa.concat_tables(
        [
            tables.grid.filter(pc.invert(pc.equal(tables.grid["array"], name))),
            conform(
                "grid",
                pa.table(
                    {
                        "array": [name] * ndim,
                        "dim": pa.array(range(ndim), pa.int16()),
                        "chunk": pa.array([0] * ndim, pa.int32()),
                        "start": pa.array([0] * ndim, pa.int64()),
                        "length": pa.array(shape, pa.int64()),
                    }
                ),
            ),
        ]
    )
    chunk_row = {
        "array": name,
        "index": [0] * ndim,
        "source_id": None,
        "offset": None,
        "length": len(data),
        "data": data,
    }
    chunks = pa.concat_tables(
        [
            tables.chunks.filter(pc.invert(pc.equal(tables.chunks["array"], name))),
            conform("chunks", pa.Table.from_pylist([chunk_row])),
        ]
    )
    return tables.with_tables(arrays=arrays, grid=grid, chunks=chunks)
