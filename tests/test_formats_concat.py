"""Concatenations across files of the legacy formats read back like xarray's of the originals.

- GRIB: one forecast run per file (different ``dataDate``/``dataTime``, several steps),
  written with ecCodes and given in shuffled order. cfgrib holds each run's reference
  ``time`` as a scalar coordinate, so ``vzsql.scan(list)`` / ``vzsql.combine`` stack the
  runs along a new ``time`` dimension in time order; the result must be identical to
  ``xr.open_mfdataset(..., engine="cfgrib", combine="nested", concat_dim="time")`` of the
  files in time order. Files holding several runs each concatenate along their ``time``
  dimension instead (``combine="by_coords"``).
- netCDF3: classic and 64-bit-offset files written with netCDF4-python, record variables
  along the unlimited ``time``, combined along it and compared with ``xr.open_mfdataset``;
  also files with exactly one record variable (unpadded records, no coordinate: the order
  given is kept, ``concat_dim="time"``).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow.compute as pc
import pytest
import xarray as xr

import vzsql
from tests.fixtures_grib import grid_fields, write_grib
from vzsql.errors import InconsistentConcatError

CFGRIB = {"engine": "cfgrib", "backend_kwargs": {"indexpath": ""}}
RUNS = [(20240101, 0), (20240101, 1200), (20240102, 0), (20240102, 1200)]


def open_mf(paths: list[Path], **kwargs: Any) -> xr.Dataset:
    """``xr.open_mfdataset`` loaded, without cfgrib's time-stamped ``history`` attribute."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # xarray's combine-default notice
        ds = xr.open_mfdataset([str(p) for p in paths], **kwargs).load()
    ds.attrs.pop("history", None)
    return ds


def shuffled(paths: list[Path]) -> list[str]:
    out = [str(p) for p in paths]
    random.Random(5).shuffle(out)
    if out == [str(p) for p in paths]:
        out.reverse()
    return out


def write_runs(tmp_path: Path, runs: list[tuple[int, int]], **kw: Any) -> list[Path]:
    """One GRIB file per forecast run (list of (dataDate, dataTime)), several steps each."""
    paths = []
    base = kw.pop("extra", {})
    for i, (date, hhmm) in enumerate(runs):
        extra = {**base, "dataDate": date, "dataTime": hhmm}
        fields = grid_fields(extra=extra, **kw)
        for f in fields:
            f.seed += 100 * i  # different values in every run
        path, _ = write_grib(tmp_path / f"run{date}{hhmm:04d}.grib", fields)
        paths.append(path)
    return paths


# -- GRIB ---------------------------------------------------------------------------------


def test_grib2_forecast_runs_stack_along_time_like_open_mfdataset(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, RUNS, steps=[0, 6, 12], packing="grid_ccsds")
    m = vzsql.scan(shuffled(paths))
    ours = m.to_xarray().load()
    ref = open_mf(paths, combine="nested", concat_dim="time", **CFGRIB)
    xr.testing.assert_identical(ours, ref)
    assert ours.sizes["time"] == len(RUNS)
    assert ours["valid_time"].dims == ("time", "step")
    # every message is still one reference into its own file
    assert m.info()["sources"] == len(paths)
    t = m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "t"))
    assert t.num_rows == len(RUNS) * 3 * 2 and t["data"].null_count == t.num_rows


def test_grib1_surface_runs_keep_equal_scalar_coordinates(tmp_path: Path) -> None:
    """GRIB1 surface fields: ``surface`` is equal in every run and stays a scalar."""
    paths = write_runs(
        tmp_path,
        RUNS[:3],
        sample="regular_ll_sfc_grib1",
        names=("2t",),
        levels=(0,),
        steps=[0, 3, 6, 9],
    )
    ours = vzsql.combine(shuffled(paths)).to_xarray().load()
    ref = open_mf(paths, combine="nested", concat_dim="time", **CFGRIB)
    xr.testing.assert_identical(ours, ref)
    assert ours["surface"].dims == ()


def test_grib_files_of_several_runs_concatenate_along_time(tmp_path: Path) -> None:
    """Two runs per file: ``time`` is a dimension, joined by coordinate value."""
    paths = []
    for i in range(3):
        fields = []
        for j, hhmm in enumerate((0, 1200)):
            run = grid_fields(steps=[0, 6], extra={"dataDate": 20240101 + i, "dataTime": hhmm})
            for f in run:
                f.seed += 10 * (2 * i + j)
            fields += run
        paths.append(write_grib(tmp_path / f"day{i}.grib2", fields)[0])
    m = vzsql.scan(shuffled(paths))
    ours = m.to_xarray().load()
    ref = open_mf(paths, combine="by_coords", **CFGRIB)
    xr.testing.assert_identical(ours, ref)
    assert ours.sizes["time"] == 6


def test_grib_analyses_need_concat_dim_when_time_and_valid_time_differ(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, RUNS, steps=[0])
    with pytest.raises(InconsistentConcatError, match="concat_dim"):
        vzsql.scan([str(p) for p in paths])
    ours = vzsql.scan(shuffled(paths), concat_dim="time").to_xarray().load()
    ref = open_mf(paths, combine="nested", concat_dim="time", **CFGRIB)
    xr.testing.assert_identical(ours, ref)


def test_grib_same_run_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_runs(tmp_path / "a", RUNS[:1])
    b = write_runs(tmp_path / "b", RUNS[:1])
    with pytest.raises(InconsistentConcatError) as e:
        vzsql.concat([vzsql.scan(str(a[0])), vzsql.scan(str(b[0]))], "time")
    assert "same" in str(e.value) and "run20240101" in str(e.value)


# -- netCDF3 ------------------------------------------------------------------------------


def write_nc3(path: Path, fmt: str, t0: int, n: int) -> Path:
    """Record variables of several types along ``time`` (padded records), fixed ones too."""
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = "record concat"
        ds.createDimension("time", None)
        ds.createDimension("y", 3)
        ds.createDimension("x", 5)
        ds.createDimension("nchar", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2000-01-01"
        t.calendar = "standard"
        t[:] = np.arange(t0, t0 + n) * 6.0
        ds.createVariable("y", "f4", ("y",))[:] = np.array([10, 20, 30], "f4")
        ds.createVariable("mask", "i1", ("y", "x"))[:] = np.eye(3, 5, dtype="i1")
        a = ds.createVariable("air", "f4", ("time", "y", "x"))
        a.units = "K"
        a[:] = np.arange(n * 15, dtype="f4").reshape(n, 3, 5) + 100 * t0
        b = ds.createVariable("count", "i2", ("time", "x"), fill_value=np.int16(-1))
        b[:] = np.arange(n * 5, dtype="i2").reshape(n, 5) + t0
        b[0, 0] = np.ma.masked
        p = ds.createVariable("packed", "i2", ("time", "y"))
        p.scale_factor = np.float32(0.5)
        p.add_offset = np.float32(10.0)
        p[:] = np.arange(n * 3).reshape(n, 3) * 0.5 + 10.0
        c = ds.createVariable("label", "S1", ("time", "nchar"))
        c[:] = netCDF4.stringtochar(np.array([f"r{t0 + i:02d}"[:3] for i in range(n)], "S3"))
    return path


def write_nc3_single(path: Path, fmt: str, t0: int, n: int) -> Path:
    """Exactly one record variable (records packed without padding), odd-sized records."""
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        ds.createVariable("x", "i4", ("x",))[:] = [1, 2, 3]
        v = ds.createVariable("level", "i2", ("time", "x"))  # 6-byte records, unpadded
        v[:] = np.arange(n * 3, dtype="i2").reshape(n, 3) + 100 * t0
    return path


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "mixed"])
def test_netcdf3_record_variables_concatenate_like_open_mfdataset(tmp_path: Path, fmt: str) -> None:
    lengths = [4, 1, 7, 3]
    fmts = ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET"] * 2 if fmt == "mixed" else [fmt] * 4
    paths, t0 = [], 0
    for i, (n, f) in enumerate(zip(lengths, fmts, strict=True)):
        paths.append(write_nc3(tmp_path / f"part{i}.nc", f, t0, n))
        t0 += n
    m = vzsql.scan(shuffled(paths))
    ours = m.to_xarray().load()
    # fixed variables (mask) are kept once, not broadcast along time: data_vars="minimal"
    ref = open_mf(paths, combine="by_coords", data_vars="minimal")
    xr.testing.assert_identical(ours, ref)
    # raw (undecoded) values too: packing and fill values pass through untouched
    raw = m.to_xarray(decode_cf=False).load()
    raw_ref = open_mf(paths, combine="by_coords", data_vars="minimal", decode_cf=False)
    for name in ("air", "count", "packed", "label"):
        np.testing.assert_array_equal(raw[name].values, raw_ref[name].values)
    assert ours.sizes["time"] == sum(lengths)
    air = m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "air"))
    assert air.num_rows == sum(lengths)  # one reference per record


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET"])
def test_netcdf3_single_record_variable_concatenates_in_given_order(
    tmp_path: Path, fmt: str
) -> None:
    paths = [write_nc3_single(tmp_path / f"s{i}.nc", fmt, i, n) for i, n in enumerate((5, 2, 4))]
    m = vzsql.scan([str(p) for p in paths], concat_dim="time")
    ours = m.to_xarray().load()
    ref = open_mf(paths, combine="nested", concat_dim="time", data_vars="minimal")
    xr.testing.assert_identical(ours, ref)
    offsets = (
        m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "level"))["offset"]
    ).to_pylist()
    assert offsets[1] - offsets[0] == 6  # unpadded: records are 6 bytes apart


def test_netcdf3_overlapping_record_files_are_refused(tmp_path: Path) -> None:
    a = write_nc3(tmp_path / "a.nc", "NETCDF3_CLASSIC", 0, 4)
    b = write_nc3(tmp_path / "b.nc", "NETCDF3_CLASSIC", 2, 4)
    with pytest.raises(InconsistentConcatError, match="overlap") as e:
        vzsql.scan([str(a), str(b)])
    assert "b.nc" in str(e.value)
