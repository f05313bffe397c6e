"""Small real netCDF classic files written with netCDF4-python and scipy, for scanner tests.

Each writer returns the path it wrote. They cover CDF-1/2/5, fixed and record variables,
exactly one record variable (unpadded records), zero records, every numeric type (CDF-5's
unsigned and 64-bit ones too), char arrays, ``_FillValue`` and ``scale_factor`` packing, and
partially written variables (so netCDF-C's default fill shows up in the data).
``materialise`` copies a manifest into a plain Zarr v3 folder for comparison with zarr.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from vzsql.sources import local_path
from vzsql.tables import Tables
from vzsql.zarr_meta import chunk_key, hierarchy


def materialise(tables: Tables, dest: Path) -> Path:
    """A Zarr v3 folder holding a manifest's metadata and its referenced (or inline) bytes.

    Lets scanner tests open a manifest with plain zarr before/independently of vzsql's store.
    """
    for key, doc in hierarchy(tables).items():
        (dest / key).parent.mkdir(parents=True, exist_ok=True)
        (dest / key).write_text(json.dumps(doc))
    uris = dict(
        zip(tables.sources["source_id"].to_pylist(), tables.sources["uri"].to_pylist(), strict=True)
    )
    with ExitStack() as stack:
        handles: dict[int, Any] = {}
        for row in tables.chunks.to_pylist():
            if row["data"] is not None:
                payload = row["data"]
            else:
                sid = row["source_id"]
                if sid not in handles:
                    handles[sid] = stack.enter_context(open(local_path(uris[sid]) or "", "rb"))
                handles[sid].seek(row["offset"])
                payload = handles[sid].read(row["length"])
                assert len(payload) == row["length"]
            out = dest / row["array"] / chunk_key(row["index"])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(payload)
    return dest


NETCDF4_FORMATS = ("NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA")

CLASSIC_TYPES = ("i1", "i2", "i4", "f4", "f8")
CDF5_TYPES = ("u1", "u2", "u4", "i8", "u8")


def write_mixed(path: Path, fmt: str, nrec: int = 5) -> Path:
    """Fixed and record variables of every type the format allows, char arrays, packing."""
    import netCDF4

    rng = np.random.default_rng(42)
    types = CLASSIC_TYPES + (CDF5_TYPES if fmt == "NETCDF3_64BIT_DATA" else ())
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = "mixed fixture"
        ds.version = np.float32(1.5)
        ds.levels = np.array([1, 2, 3], np.int16)
        ds.createDimension("time", None)
        ds.createDimension("y", 3)
        ds.createDimension("x", 5)  # odd: byte/short records need padding
        ds.createDimension("nchar", 4)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(nrec, dtype="f8")
        ds.createVariable("y", "f4", ("y",))[:] = np.array([10, 20, 30], "f4")
        for ty in types:
            info = np.iinfo(ty) if ty[0] in "iu" else np.finfo(ty)
            lo, hi = max(info.min, -1000), min(info.max, 1000)
            fixed = ds.createVariable(f"fixed_{ty}", ty, ("y", "x"))
            fixed[:] = rng.uniform(lo, hi, (3, 5)).astype(ty)
            rec = ds.createVariable(f"rec_{ty}", ty, ("time", "y", "x"))
            rec.long_name = f"record {ty}"
            if nrec:
                rec[:] = rng.uniform(lo, hi, (nrec, 3, 5)).astype(ty)
        packed = ds.createVariable("packed", "i2", ("time", "x"), fill_value=np.int16(-999))
        packed.scale_factor = np.float32(0.01)
        packed.add_offset = np.float32(273.15)
        if nrec:
            vals = rng.uniform(-20, 20, (nrec, 5))
            data = np.ma.masked_array(vals, mask=np.zeros_like(vals, bool))
            data.mask[0, 1] = True
            packed[:] = data
        names = ds.createVariable("station", "S1", ("y", "nchar"))
        names[:] = np.array([list("abcd"), list("ef\0\0"), list("ghi\0")], "S1")
        recchars = ds.createVariable("flag", "S1", ("time", "nchar"))
        if nrec:
            recchars[:] = np.array([list("ok\0\0")] * nrec, "S1")
        partial = ds.createVariable("partial", "f4", ("y", "x"))  # default-filled but row 0
        partial[0, :] = np.arange(5, dtype="f4")
        scalar = ds.createVariable("scalar", "i4", ())
        scalar[...] = 7
    return path


def write_one_record_var(path: Path, fmt: str, dtype: str = "i1", nrec: int = 7) -> Path:
    """Exactly one record variable of an odd-sized record: records are packed, not padded."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        ds.createDimension("x", 3)
        ds.createVariable("fixed", "f8", ("x",))[:] = [1.0, 2.0, 3.0]
        v = ds.createVariable("v", dtype, ("t", "x"))
        v[:] = (np.arange(nrec * 3).reshape(nrec, 3) % 100).astype(dtype)
    return path


def write_scipy(path: Path, version: int = 1, nrec: int = 4) -> Path:
    """The same kind of content written by scipy.io.netcdf_file (another writer's layout)."""
    from scipy.io import netcdf_file

    f = netcdf_file(path, "w", version=version)
    try:
        f.history = b"written by scipy"
        f.createDimension("time", None)
        f.createDimension("x", 3)
        t = f.createVariable("time", "i4", ("time",))
        t[:] = np.arange(nrec, dtype="i4")
        t.units = b"hours since 2001-01-01"
        a = f.createVariable("a", "f4", ("time", "x"))
        a[:] = np.arange(nrec * 3, dtype="f4").reshape(nrec, 3) / 3
        a._FillValue = np.float32(-1.0)
        b = f.createVariable("b", "i2", ("time", "x"))
        b[:] = np.arange(nrec * 3, dtype="i2").reshape(nrec, 3)
        c = f.createVariable("c", "f8", ("x",))
        c[:] = [0.5, 1.5, 2.5]
    finally:
        f.close()
    return path


def write_scipy_one_record(path: Path, nrec: int = 5) -> Path:
    """scipy with exactly one byte record variable (scipy writes an unpadded vsize)."""
    from scipy.io import netcdf_file

    f = netcdf_file(path, "w", version=2)
    try:
        f.createDimension("time", None)
        f.createDimension("x", 3)
        v = f.createVariable("v", "b", ("time", "x"))
        v[:] = np.arange(nrec * 3, dtype="i1").reshape(nrec, 3)
    finally:
        f.close()
    return path
