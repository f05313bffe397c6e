"""netCDF classic files (CDF-1, CDF-2 64-bit offset, CDF-5 64-bit data) -> manifest tables.

The header is parsed by ``netcdf3_header``; no netCDF library is involved. Data in these
files is never compressed, so each variable maps to chunks by byte arithmetic:

- a fixed-size variable is one chunk at ``begin`` of ``vsize`` bytes (without padding);
- a record variable is one chunk per record at ``begin + i * recsize``, chunk shape 1 along
  the record dimension. ``recsize`` is the sum of the padded record sizes of all record
  variables, except when there is exactly one record variable: then records are packed with
  no padding (the special case of the format specification).

Values are big-endian (``bytes`` codec with ``endian: big``); ``NC_CHAR`` arrays become
``null_terminated_bytes`` of length 1 with the character dimension kept, which is what
xarray's netCDF backends hand to CF decoding too. ``fill_value`` is the variable's
``_FillValue`` if it has one, else netCDF-C's default fill for the type (what netCDF-C writes
for data never written).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.codecs.encode import bytes_codec
from vzsql.errors import CorruptSourceError, SourceError
from vzsql.scanners.attr_json import attrs_texts, decode_text, json_number
from vzsql.scanners.grid import regular_grids, repeated_names
from vzsql.scanners.netcdf3_header import (
    DEFAULT_FILL,
    STREAMING,
    Attribute,
    Header,
    Variable,
    read_header,
)
from vzsql.sources import SourceList, normalize_uri, open_source, stat_source
from vzsql.tables import CHUNKS_SCHEMA, Tables
from vzsql.zarr_meta import dtype_to_text, zarr_data_type

FORMAT = "netcdf3"


def scan_netcdf3(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """Manifest tables for one netCDF classic file: one chunk per fixed variable and per record."""
    uri = normalize_uri(uri)
    stat = stat_source(uri, storage_options)
    try:
        with open_source(uri, storage_options) as f:
            header = read_header(f, uri, stat.size)
    except OSError as e:
        raise SourceError(f"cannot read netCDF3 header: {e}", source=uri) from e
    sources = SourceList()
    sid = sources.add(stat, FORMAT)
    numrecs, recsize = record_layout(header, uri, stat.size)

    array_rows: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    for var in header.variables:
        shape = [numrecs if var.is_record and d == 0 else n for d, n in enumerate(var.shape)]
        try:
            row = _array_row(var, shape)
        except (ValueError, TypeError, OverflowError) as e:  # e.g. a char _FillValue of a number
            raise CorruptSourceError(
                f"netCDF3 variable metadata is inconsistent: {e}", source=uri, array=var.name
            ) from e
        array_rows.append(row)
        chunks.append(_chunks(var, shape, recsize, sid, uri, stat.size))  # checks extents

    gattrs, gdtypes = encode_attributes(header.attrs)
    return Tables.from_mapping(
        {
            "sources": sources.table(),
            "arrays": pa.Table.from_pylist(array_rows),
            # one chunk per fixed variable, one per record (chunk length 1 along the record
            # dim); one table for all variables: a small Arrow table costs ~0.1 ms
            "grid": regular_grids(
                [r["array"] for r in array_rows],
                [r["shape"] for r in array_rows],
                [r["chunk_shape"] for r in array_rows],
            ),
            "chunks": _concat_chunks(chunks),
            "groups": pa.Table.from_pylist(
                [{"group": "", "attrs": gattrs, "attr_dtypes": gdtypes}]
            ),
        }
    )


def record_layout(header: Header, uri: str, file_size: int) -> tuple[int, int]:
    """``(numrecs, recsize)``; a streaming ``numrecs`` is computed from the file size."""
    rec_vars = [v for v in header.variables if v.is_record]
    if not rec_vars:
        return (0 if header.numrecs == STREAMING else header.numrecs), 0
    if len(rec_vars) == 1:
        recsize = rec_vars[0].nbytes  # one record variable: records are not padded
    else:
        recsize = sum(v.nbytes + (-v.nbytes % 4) for v in rec_vars)
    numrecs = header.numrecs
    if numrecs == STREAMING:
        first = min(v.begin for v in rec_vars)
        numrecs = max(0, file_size - first) // recsize if recsize else 0
    return numrecs, recsize


def _array_row(var: Variable, shape: list[int]) -> dict[str, Any]:
    dtype = var.dtype
    attrs, attr_dtypes = encode_attributes(var.attrs)
    fill = next((a.values for a in var.attrs if a.name == "_FillValue"), None)
    fill_value = fill[0] if fill is not None and len(fill) else DEFAULT_FILL[var.nc_type]
    return {
        "array": var.name,
        "dims": var.dims,
        "shape": shape,
        "chunk_shape": [1, *shape[1:]] if var.is_record else shape,
        "dtype": dtype_to_text(dtype.newbyteorder("=")),
        "fill_value": json.dumps(fill_json(fill_value, dtype)),
        "codecs": json.dumps([bytes_codec(dtype)]),  # big-endian
        "attrs": attrs,
        "attr_dtypes": attr_dtypes,
    }


def fill_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """A scalar as a Zarr v3 ``fill_value`` JSON value of ``dtype``."""
    native = dtype.newbyteorder("=")
    scalar = np.asarray(value).astype(native).reshape(())[()]
    return zarr_data_type(native).to_json_scalar(scalar, zarr_format=3)


def _chunks(
    var: Variable, shape: list[int], recsize: int, sid: int, uri: str, file_size: int
) -> dict[str, Any]:
    """Chunk rows of one variable as numpy columns (offsets computed, not looped)."""
    ndim = len(shape)
    nbytes = var.nbytes
    n = shape[0] if var.is_record else 1
    end = var.begin + (n - 1) * recsize + nbytes if var.is_record else var.begin + nbytes
    if n and end > file_size:  # checked before any per-record array is allocated
        what = f"record {n - 1}" if var.is_record else "data"
        raise CorruptSourceError(
            f"netCDF3 file truncated: {what} ends at byte {end}, file has {file_size} bytes",
            source=uri,
            array=var.name,
        )
    if var.is_record:
        offsets = var.begin + np.arange(n, dtype=np.int64) * np.int64(recsize)
        index = np.zeros((n, ndim), np.int32)
        index[:, 0] = np.arange(n, dtype=np.int32)
    else:
        offsets = np.array([var.begin], np.int64)
        index = np.zeros((1, ndim), np.int32)
    return {"name": var.name, "ndim": ndim, "offset": offsets, "index": index, "nbytes": nbytes}


def _concat_chunks(parts: list[dict[str, Any]]) -> pa.Table:
    parts = [p for p in parts if len(p["offset"])]
    if not parts:
        return CHUNKS_SCHEMA.empty_table()
    counts = np.array([len(p["offset"]) for p in parts], np.int64)
    offsets = np.concatenate([p["offset"] for p in parts])
    lengths = np.repeat(np.array([p["nbytes"] for p in parts], np.int64), counts)
    flat_index = np.concatenate([p["index"].ravel() for p in parts])
    list_sizes = np.repeat(np.array([p["ndim"] for p in parts], np.int64), counts)
    list_offsets = np.concatenate([[0], np.cumsum(list_sizes)]).astype(np.int32)
    total = int(counts.sum())
    return pa.table(
        {
            "array": repeated_names([p["name"] for p in parts], counts),
            "index": pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(flat_index)),
            "source_id": pa.array(np.zeros(total, np.int32)),
            "offset": pa.array(offsets),
            "length": pa.array(lengths),
            "data": pa.nulls(total, pa.binary()),
        },
        schema=CHUNKS_SCHEMA,
    )


def encode_attributes(attrs: list[Attribute]) -> tuple[str, str]:
    """``(attrs, attr_dtypes)`` JSON texts: char attributes as strings, numbers as stored.

    The same encoding as the HDF5 scanner's (``hdf5_attrs``, docs/manifest-format.md):
    char data decoded as UTF-8 (latin-1 if it is not), trailing NULs dropped.

    A single value becomes a scalar, several a list. Non-finite floats are written as the
    Zarr v3 spellings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; ``attr_dtypes`` records the
    numpy dtype of every numeric attribute so float32 stays float32 after the JSON round trip
    (and ``|S1`` for a char variable's ``_FillValue``, which readers compare with bytes).
    """
    values: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    for a in attrs:
        if a.values.dtype.kind == "S":
            values[a.name] = decode_text(a.values.tobytes().rstrip(b"\x00"))
            if a.name == "_FillValue":  # a char variable's fill is a byte, as netCDF4 gives it
                dtypes[a.name] = "|S1"
            continue
        native = a.values.astype(a.values.dtype.newbyteorder("="))
        items = [json_number(v) for v in native.tolist()]
        values[a.name] = items[0] if len(items) == 1 else items
        dtypes[a.name] = native.dtype.str
    return attrs_texts(values, dtypes)
