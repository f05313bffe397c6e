"""Files and manifests for the kerchunk export/import tests.

``write_sample_nc`` writes a small netCDF-4 file with the real netCDF4 library: compressed
and shuffled chunks, fletcher32, a big-endian contiguous variable, never-written (missing)
chunks, a scalar, a coordinate and a sub-group. ``tiny_tables`` is a fixed hand-made manifest
(remote source, inline ASCII and binary chunks, a missing chunk, a 0-d array) for the golden
files. The ``sample`` and ``manifest`` fixtures (one per test module) are that file and its
manifest as ``vzsql.scan`` makes it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import netCDF4
import numpy as np
import pyarrow as pa
import pytest

from vzsql.manifest import Manifest
from vzsql.scanners.hdf5 import scan_hdf5
from vzsql.sources import normalize_uri
from vzsql.tables import Tables


def write_sample_nc(path: Path) -> Path:
    rng = np.random.default_rng(42)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 7)
        ds.createDimension("lat", 5)
        ds.createDimension("lon", 6)
        ds.title = "kerchunk sample"
        ds.history = "written by the vzsql tests"
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(7.0)
        air = ds.createVariable(
            "air",
            "f4",
            ("time", "lat", "lon"),
            chunksizes=(2, 3, 4),
            zlib=True,
            shuffle=True,
            fill_value=np.float32(-9999.0),
        )
        air.units = "K"
        data = (rng.random((7, 5, 6)) * 50 + 250).astype("f4")
        data[0, 0, :3] = -9999.0  # masked by _FillValue in both readers
        air[:] = data
        cnt = ds.createVariable("cnt", "i2", ("lat", "lon"), fletcher32=True, chunksizes=(5, 6))
        cnt[:] = np.arange(30, dtype="i2").reshape(5, 6)
        be = ds.createVariable("be", "f8", ("lat", "lon"), endian="big", contiguous=True)
        be[:] = rng.random((5, 6))
        sparse = ds.createVariable(
            "sparse", "f4", ("time", "lon"), chunksizes=(1, 6), fill_value=np.float32(-1.0)
        )
        sparse[2, :] = np.arange(6, dtype="f4")  # the other six chunks are never written
        sparse[5, :] = np.arange(6, dtype="f4") * 2
        s = ds.createVariable("s", "i4", ())
        s[...] = 7
        grp = ds.createGroup("grp")
        grp.note = "sub-group"
        t2 = grp.createVariable("t2", "i4", ("lat",), chunksizes=(2,))
        t2[:] = np.arange(5, dtype="i4") * 3
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_nc(tmp_path_factory.mktemp("kc") / "sample.nc")


@pytest.fixture(scope="module")
def manifest(sample: Path) -> Manifest:
    return Manifest(scan_hdf5(normalize_uri(sample)))  # the HDF5 scanner, as vzsql.scan runs it


def tiny_tables() -> Tables:
    """A fixed manifest: everything in it is constant, so its kerchunk output is too."""
    codecs_f4 = json.dumps(
        [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "numcodecs.zlib", "configuration": {"level": 4}},
        ],
        separators=(",", ":"),
    )
    arrays = [
        {
            "array": "a",
            "dims": ["y", "x"],
            "shape": [4, 6],
            "chunk_shape": [2, 4],
            "dtype": "float32",
            "fill_value": '"NaN"',
            "codecs": codecs_f4,
            "attrs": json.dumps({"units": "m", "long_name": "height"}),
            "attr_dtypes": "{}",
        },
        {
            "array": "label",
            "dims": ["x"],
            "shape": [6],
            "chunk_shape": [6],
            "dtype": "uint8",
            "fill_value": "0",
            "codecs": json.dumps([{"name": "bytes"}], separators=(",", ":")),
            "attrs": "{}",
            "attr_dtypes": "{}",
        },
        {
            "array": "g/scalar",
            "dims": [],
            "shape": [],
            "chunk_shape": [],
            "dtype": "int16",
            "fill_value": "-1",
            "codecs": json.dumps(
                [{"name": "bytes", "configuration": {"endian": "big"}}], separators=(",", ":")
            ),
            "attrs": "{}",
            "attr_dtypes": "{}",
        },
    ]
    grid = [
        *({"array": "a", "dim": 0, "chunk": i, "start": 2 * i, "length": 2} for i in range(2)),
        {"array": "a", "dim": 1, "chunk": 0, "start": 0, "length": 4},
        {"array": "a", "dim": 1, "chunk": 1, "start": 4, "length": 2},
        {"array": "label", "dim": 0, "chunk": 0, "start": 0, "length": 6},
    ]
    chunks = [
        {"array": "a", "index": [0, 0], "source_id": 0, "offset": 100, "length": 20, "data": None},
        {"array": "a", "index": [0, 1], "source_id": 0, "offset": 120, "length": 21, "data": None},
        {"array": "a", "index": [1, 1], "source_id": 1, "offset": 7, "length": 22, "data": None},
        {"array": "label", "index": [0], "source_id": None, "offset": None, "length": 6,
         "data": b"ab\"c\n!"},
        {"array": "g/scalar", "index": [], "source_id": None, "offset": None, "length": 2,
         "data": b"\xff\xfe"},
    ]  # fmt: skip
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    sources = [
        {"source_id": 0, "uri": "s3://bucket/data.nc", "format": "hdf5", "size": 1000,
         "mtime": None, "etag": None, "scanned_at": when},
        {"source_id": 1, "uri": "https://example.org/more.nc", "format": "hdf5", "size": 500,
         "mtime": None, "etag": None, "scanned_at": when},
    ]  # fmt: skip
    groups = [
        {"group": "", "attrs": json.dumps({"title": "tiny"}), "attr_dtypes": "{}"},
        {"group": "g", "attrs": "{}", "attr_dtypes": "{}"},
    ]
    return Tables.from_mapping(
        {
            "sources": pa.Table.from_pylist(sources),
            "arrays": pa.Table.from_pylist(arrays),
            "grid": pa.Table.from_pylist(grid),
            "chunks": pa.Table.from_pylist(chunks),
            "groups": pa.Table.from_pylist(groups),
        }
    )
