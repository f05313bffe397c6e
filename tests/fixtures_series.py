"""Fixtures for the manifest algebra: hand-made manifests over real bytes, and netCDF4 series.

``write_piece`` is a tiny "scanner in reverse": it writes the chunks of some numpy arrays
into one raw file exactly as HDF5 stores chunked data (edge chunks padded to the full chunk
shape, optionally zlib-compressed) and returns the manifest tables that reference them.
Relational tests use it before (and independently of) the HDF5 scanner. ``write_nc_month``
writes real netCDF4 files with netCDF4.Dataset for the end-to-end tests.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.tables import Tables
from vzsql.zarr_meta import dtype_to_text


@dataclass
class Var:
    """One array of a hand-made piece."""

    dims: tuple[str, ...]
    values: np.ndarray
    chunks: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    compress: bool = False
    inline: bool = False
    fill_value: float | int = 0


def write_piece(path: Path, variables: dict[str, Var]) -> Tables:
    """Write ``variables``' chunks into ``path`` and return tables referencing them."""
    arrays, grid, chunks = [], [], []
    blob = bytearray(b"VZSQLRAW")  # a header, so no chunk starts at offset 0
    for name, var in variables.items():
        vals = np.asarray(var.values)
        dtype = vals.dtype.newbyteorder("<")
        codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if var.compress:
            codecs.append({"name": "numcodecs.zlib", "configuration": {"level": 1}})
        arrays.append(
            {
                "array": name,
                "dims": list(var.dims),
                "shape": list(vals.shape),
                "chunk_shape": list(var.chunks),
                "dtype": dtype_to_text(vals.dtype),
                "fill_value": json.dumps(var.fill_value),
                "codecs": json.dumps(codecs),
                "attrs": json.dumps(var.attrs),
                "attr_dtypes": "{}",
            }
        )
        counts = [
            max(1, -(-n // c)) if n else 0 for n, c in zip(vals.shape, var.chunks, strict=True)
        ]
        for d, (n, c) in enumerate(zip(vals.shape, var.chunks, strict=True)):
            for k in range(counts[d]):
                grid.append(
                    {
                        "array": name,
                        "dim": d,
                        "chunk": k,
                        "start": k * c,
                        "length": min(c, n - k * c),
                    }
                )
        for index in itertools.product(*[range(k) for k in counts]):
            sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, var.chunks, strict=True))
            stored = np.full(var.chunks, var.fill_value, dtype=dtype)
            part = vals[sl]
            stored[tuple(slice(0, s) for s in part.shape)] = part
            data = stored.tobytes()
            if var.compress:
                data = zlib.compress(data, 1)
            row: dict[str, Any] = {"array": name, "index": list(index), "length": len(data)}
            if var.inline:
                row.update(data=data)
            else:
                row.update(source_id=0, offset=len(blob))
                blob.extend(data)
            chunks.append(row)
    path.write_bytes(bytes(blob))
    st = path.stat()
    from vzsql.sources import local_etag

    sources = [
        {
            "source_id": 0,
            "uri": path.resolve().as_uri(),
            "format": "raw",
            "size": st.st_size,
            "mtime": st.st_mtime_ns,
            "etag": local_etag(st),
        }
    ]
    return Tables.from_mapping(
        {
            "sources": pa.Table.from_pylist(sources),
            "arrays": pa.Table.from_pylist(arrays),
            "grid": pa.Table.from_pylist(grid),
            "chunks": pa.Table.from_pylist(chunks),
        }
    )


def daily_piece(
    path: Path,
    start_day: int,
    n_days: int,
    *,
    chunk: int = 10,
    compress: bool = True,
    units: str = "days since 2000-01-01",
    unit_offset: int = 0,
    nx: int = 3,
) -> tuple[Tables, np.ndarray]:
    """A piece of a daily series ``temp(time, x)`` plus its ``time`` and ``x`` coordinates.

    ``unit_offset`` shifts the encoded time values (use with matching ``units``) to make
    files with different time units for the same instants. Returns tables and ``temp``.
    """
    days = np.arange(start_day, start_day + n_days)
    temp = (days[:, None] * 10 + np.arange(nx)[None, :]).astype("float32")
    tables = write_piece(
        path,
        {
            "time": Var(
                ("time",),
                (days - unit_offset).astype("int64"),
                (chunk,),
                {"units": units, "calendar": "standard"},
                compress=compress,
            ),
            "x": Var(("x",), np.arange(nx, dtype="float64"), (nx,)),
            "temp": Var(("time", "x"), temp, (chunk, nx), {"units": "K"}, compress=compress),
        },
    )
    return tables, temp


MONTHS = (31, 28, 31)


def write_nc_month(
    path: Path,
    first_day: int,
    n_days: int,
    *,
    chunk: int = 10,
    units: str = "days since 2001-01-01",
    unit_offset: int = 0,
    scale_factor: float | None = None,
    compress: bool = True,
) -> None:
    """A netCDF4 file of ``n_days`` daily values, chunked ``chunk`` along time (compressed)."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 5)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = units
        t.calendar = "standard"
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(-45, 45, 4)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(0, 288, 5)
        kw: dict[str, Any] = {"zlib": compress, "complevel": 4, "chunksizes": (chunk, 4, 5)}
        if scale_factor is not None:
            v = ds.createVariable("tas", "i2", ("time", "lat", "lon"), **kw)
            v.scale_factor = scale_factor
            v.add_offset = 0.0
        else:
            v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), **kw)
        v.units = "K"
        days = np.arange(first_day, first_day + n_days)
        t[:] = days - unit_offset
        rng = np.random.default_rng(first_day)
        v[:] = (250 + 30 * rng.random((n_days, 4, 5))).astype("float32")
