"""Rechunking by byte arithmetic: netCDF3 records merged, fixed variables and HDF5 contiguous
datasets split (and merged back), the short last chunk padded; values read through
``to_xarray`` equal the originals read by xarray/h5py. Refusals name the array and why."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pyarrow.compute as pc
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vzsql
from vzsql.errors import RechunkError
from vzsql.ops.coords import read_array
from vzsql.ops.rechunk import rechunk


def rows_of(m: vzsql.Manifest, table: str, array: str) -> list[dict]:
    t = m.table(table)
    return t.filter(pc.equal(t["array"], array)).to_pylist()


def codec_names(m: vzsql.Manifest, array: str) -> list[str]:
    return [c["name"] for c in json.loads(rows_of(m, "arrays", array)[0]["codecs"])]


def write_single_record(path: Path, fmt: str, nrec: int, dtype: str = "i2") -> Path:
    """One record variable (records packed back to back), a fixed variable, a coordinate."""
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("y", 4)
        ds.createDimension("x", 3)
        ds.createVariable("x", "i4", ("x",))[:] = [1, 2, 3]
        v = ds.createVariable("level", dtype, ("time", "x"))
        v.units = "cm"
        v[:] = (np.arange(nrec * 3).reshape(nrec, 3) % 1000).astype(dtype)
        f = ds.createVariable("fixed", "f8", ("y", "x"))
        f[:] = np.arange(12.0).reshape(4, 3) / 7
    return path


def write_records(path: Path, nrec: int) -> Path:
    """Two record variables: their records interleave in the file."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 6)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(nrec)
        ds.createVariable("a", "f4", ("time", "x"))[:] = np.arange(nrec * 6.0).reshape(nrec, 6)
    return path


# -- merge: netCDF3 records ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def test_single_record_variable_records_merge_into_chunks(tmp_path: Path, fmt: str) -> None:
    path = write_single_record(tmp_path / "s.nc", fmt, nrec=100)
    m = vzsql.scan(str(path))
    r = m.rechunk("level", "time", 24)
    chunks = rows_of(r, "chunks", "level")
    assert [c["index"][0] for c in chunks] == [0, 1, 2, 3, 4]
    assert [c["length"] for c in chunks] == [144, 144, 144, 144, 24]  # 24 records of 6 bytes
    first = rows_of(m, "chunks", "level")[0]["offset"]
    assert [c["offset"] for c in chunks] == [first + 144 * i for i in range(5)]
    assert [g["length"] for g in rows_of(r, "grid", "level") if g["dim"] == 0] == [24] * 4 + [4]
    assert rows_of(r, "arrays", "level")[0]["chunk_shape"] == [24, 3]
    assert codec_names(r, "level") == ["vzsql.padded_bytes"]  # the last chunk holds 4
    xr.testing.assert_identical(r.to_xarray().load(), xr.open_dataset(path).load())
    assert r.check().num_rows == 0


def test_exact_multiple_keeps_the_bytes_codec(tmp_path: Path) -> None:
    path = write_single_record(tmp_path / "s.nc", "NETCDF3_CLASSIC", nrec=96)
    r = rechunk(vzsql.scan(str(path)), {"time": 24})  # every array having "time"
    assert codec_names(r, "level") == ["bytes"]
    assert len(rows_of(r, "chunks", "level")) == 4
    xr.testing.assert_identical(r.to_xarray().load(), xr.open_dataset(path).load())


def test_records_concatenated_from_files_merge_within_each_file(tmp_path: Path) -> None:
    paths = [write_single_record(tmp_path / f"p{i}.nc", "NETCDF3_CLASSIC", 6) for i in range(3)]
    m = vzsql.scan([str(p) for p in paths], concat_dim="time")
    r = m.rechunk("level", "time", 3)
    assert len(rows_of(r, "chunks", "level")) == 6
    ref = xr.open_mfdataset(
        [str(p) for p in paths], combine="nested", concat_dim="time", data_vars="minimal"
    ).load()
    xr.testing.assert_identical(r.to_xarray().load(), ref)
    with pytest.raises(RechunkError, match="different files") as e:
        m.rechunk("level", "time", 4)  # chunk 1 would take records 4-5 of p0 and 0-1 of p1
    assert e.value.array == "level" and "p0.nc" in str(e.value)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(nrec=st.integers(1, 40), n=st.integers(1, 45), split=st.integers(1, 5))
def test_rechunked_values_equal_the_records(tmp_path: Path, nrec: int, n: int, split: int) -> None:
    """Any record count and target length; then a split along x: values never change."""
    path = write_single_record(tmp_path / f"h{nrec}.nc", "NETCDF3_CLASSIC", nrec, dtype="f4")
    m = vzsql.scan(str(path))
    expected = read_array(m.tables, "level")
    r = m.rechunk("level", "time", n)
    assert np.array_equal(read_array(r.tables, "level"), expected)
    assert len(rows_of(r, "chunks", "level")) == -(-nrec // n)
    r2 = r.rechunk("level", "x", split) if n == 1 else r
    assert np.array_equal(read_array(r2.tables, "level"), expected)


# -- split: fixed netCDF3 variables, HDF5 contiguous ----------------------------------------


def test_fixed_variable_splits_along_its_outermost_dimension(tmp_path: Path) -> None:
    path = write_single_record(tmp_path / "s.nc", "NETCDF3_64BIT_OFFSET", nrec=5)
    m = vzsql.scan(str(path))
    r = m.rechunk("fixed", "y", 3)
    chunks = rows_of(r, "chunks", "fixed")
    whole = rows_of(m, "chunks", "fixed")[0]
    assert [(c["offset"], c["length"]) for c in chunks] == [
        (whole["offset"], 72),
        (whole["offset"] + 72, 24),
    ]
    xr.testing.assert_identical(r.to_xarray().load(), xr.open_dataset(path).load())


def test_records_of_several_variables_split_along_a_later_dimension(tmp_path: Path) -> None:
    path = write_records(tmp_path / "r.nc", nrec=5)
    r = vzsql.scan(str(path)).rechunk("a", "x", 4)  # (1, 6) records -> (1, 4) + (1, 2)
    assert len(rows_of(r, "chunks", "a")) == 10
    xr.testing.assert_identical(r.to_xarray().load(), xr.open_dataset(path).load())


def write_contiguous(path: Path) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("t", 50)
        ds.createDimension("y", 3)
        ds.createDimension("x", 4)
        v = ds.createVariable("temp", "f4", ("t", "y", "x"), contiguous=True)
        v.units = "K"
        v[:] = np.arange(600, dtype="f4").reshape(50, 3, 4) / 3
        w = ds.createVariable("wind", "<i8", ("y", "x"), contiguous=True)
        w[:] = np.arange(12).reshape(3, 4)
    return path


def test_hdf5_contiguous_split_and_merged_back(tmp_path: Path) -> None:
    path = write_contiguous(tmp_path / "c.nc")
    m = vzsql.scan(str(path))
    (whole,) = rows_of(m, "chunks", "temp")
    r = m.rechunk("temp", "t", 8)
    chunks = rows_of(r, "chunks", "temp")
    assert len(chunks) == 7 and chunks[-1]["length"] == 2 * 12 * 4
    assert sum(c["length"] for c in chunks) == whole["length"]
    ref = xr.open_dataset(path).load()
    xr.testing.assert_identical(r.to_xarray().load(), ref)
    back = r.rechunk("temp", "t", 50)
    (one,) = rows_of(back, "chunks", "temp")
    assert (one["offset"], one["length"]) == (whole["offset"], whole["length"])
    assert codec_names(back, "temp") == ["bytes"]
    xr.testing.assert_identical(back.to_xarray().load(), ref)


def test_hdf5_plain_dataset_equals_h5py(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    data = np.random.default_rng(1).normal(size=(7, 5, 2)).astype(">f8")
    with h5py.File(path, "w") as f:
        f["grid"] = data  # contiguous, big-endian
    m = vzsql.scan(str(path))
    dim0 = rows_of(m, "arrays", "grid")[0]["dims"][0]
    r = m.rechunk("grid", dim0, 3)
    assert np.array_equal(r.to_xarray()["grid"].values, data)
    assert np.array_equal(read_array(r.tables, "grid"), data)


# -- refusals -----------------------------------------------------------------------------


def test_interleaved_records_are_refused(tmp_path: Path) -> None:
    path = write_records(tmp_path / "r.nc", nrec=10)
    with pytest.raises(RechunkError, match="not contiguous") as e:
        rechunk(vzsql.scan(str(path)), {"time": 5})
    assert e.value.array in ("a", "time") and "r.nc" in str(e.value)


def test_compressed_chunks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "z.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", 20)
        ds.createVariable("v", "f4", ("t",), zlib=True, chunksizes=(5,))[:] = np.arange(20)
    with pytest.raises(RechunkError, match="zlib") as e:
        vzsql.scan(str(path)).rechunk("v", "t", 10)
    assert e.value.array == "v"


def test_chunks_wide_on_an_earlier_dimension_are_refused(tmp_path: Path) -> None:
    path = write_contiguous(tmp_path / "c.nc")
    with pytest.raises(RechunkError, match="earlier dimension 't'") as e:
        vzsql.scan(str(path)).rechunk("temp", "y", 1)
    assert e.value.array == "temp"


def test_missing_chunks_inside_a_merged_chunk_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("s", shape=(8, 2), chunks=(2, 2), dtype="i4", fillvalue=-1)
        d[0:2] = 1
        d[4:6] = 3  # chunk 1 (rows 2-3) is never written: no row, fill value
    m = vzsql.scan(str(path))
    dim0 = rows_of(m, "arrays", "s")[0]["dims"][0]
    with pytest.raises(RechunkError, match=r"missing chunks \(fill value\)") as e:
        m.rechunk("s", dim0, 4)
    assert e.value.array == "s"


def test_bad_arguments(tmp_path: Path) -> None:
    m = vzsql.scan(str(write_single_record(tmp_path / "s.nc", "NETCDF3_CLASSIC", 4)))
    with pytest.raises(RechunkError, match="positive"):
        m.rechunk("level", "time", 0)
    with pytest.raises(RechunkError, match="no array 'nope'"):
        m.rechunk("nope", "time", 2)
    with pytest.raises(RechunkError, match="dimension 'depth'"):
        m.rechunk(None, "depth", 2)
