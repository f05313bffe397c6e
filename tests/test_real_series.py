"""A real multi-file series shipped in a registry package: NEMO monthly ocean output.

iris-sample-data ships three monthly netCDF4 files written by NEMO/XIOS. Their unlimited
dimension ``time_counter`` holds the coordinate value 0 in *every* file; the instant of
each month is in the auxiliary coordinate ``time_centered`` (along ``time_counter``,
``standard_name: time``, 360-day calendar) and its bounds. xarray cannot combine them by
coordinates; its nested combine can. vzsql, given ``concat_dim="time_counter"``, orders the
files by ``time_centered`` (never by name), keeps the duplicated index as xarray does, warns
about it and reports it from ``check()`` as a warning. ``to_xarray()`` must be identical
(values, dtypes, attributes, coordinates) to the nested ``open_mfdataset``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pyarrow.compute as pc
import pytest
import xarray as xr

import vzsql
from vzsql.errors import ConcatWarning, InconsistentConcatError, VzsqlError

iris_sample_data = pytest.importorskip("iris_sample_data")
NEMO = sorted((Path(iris_sample_data.__file__).parent / "sample_data" / "NEMO").glob("*.nc"))
NESTED = {
    "combine": "nested",
    "concat_dim": "time_counter",
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
}


@pytest.fixture(scope="module")
def reference() -> xr.Dataset:
    with xr.open_mfdataset(NEMO, **NESTED) as ds:
        return ds.load()


@pytest.fixture(scope="module")
def combined() -> vzsql.Manifest:
    with pytest.warns(ConcatWarning, match="ordered by the auxiliary coordinate 'time_centered'"):
        return vzsql.combine([str(p) for p in NEMO[::-1]], concat_dim="time_counter")


def assert_same(ours: xr.Dataset, ref: xr.Dataset) -> None:
    xr.testing.assert_identical(ours, ref)
    # assert_identical compares values, attrs and coordinates; dtypes separately
    for name, var in ref.variables.items():
        assert ours[name].dtype == var.dtype, name
        assert ours[name].dims == var.dims, name


def test_the_package_ships_a_series_with_a_repeated_index():
    assert len(NEMO) == 3
    for p in NEMO:
        with netCDF4.Dataset(p) as ds:
            assert list(ds["time_counter"][:]) == [0.0]
            assert ds["time_centered"].dimensions == ("time_counter",)
    with pytest.raises(ValueError):  # xarray's by-coords combine gives up too
        xr.open_mfdataset(NEMO)


def test_combine_equals_nested_open_mfdataset(combined, reference):
    ours = combined.to_xarray().load()
    assert_same(ours, reference)
    assert list(ours["time_counter"].values) == [0.0, 0.0, 0.0]
    months = [t.month for t in ours["time_centered"].values]
    assert months == [1, 2, 3]  # given in reverse, ordered by time_centered
    assert ours["time_centered"].encoding["calendar"] == "360_day"


def test_scan_with_concat_dim_equals_combine(combined, reference):
    with pytest.warns(ConcatWarning):
        m = vzsql.scan([str(p) for p in NEMO], concat_dim="time_counter")
    assert_same(m.to_xarray().load(), reference)
    tos = pc.equal(m.table("chunks")["array"], "tos")
    assert (
        m.table("chunks").filter(tos).num_rows
        == combined.table("chunks")
        .filter(pc.equal(combined.table("chunks")["array"], "tos"))
        .num_rows
        == 3
    )


def test_check_reports_the_repeated_index_as_a_warning(combined):
    problems = combined.check()
    rows = problems.to_pylist()
    assert [(r["kind"], r["severity"], r["array"]) for r in rows] == [
        ("duplicate_coordinate_values", "warning", "time_counter")
    ]
    assert "3 of 3 values repeat" in rows[0]["detail"]
    combined.check(strict=True)  # a warning is not an error
    assert combined.check(stat=False).num_rows == 1  # inline coordinate: no file read


def test_without_concat_dim_the_refusal_says_what_to_pass():
    with pytest.raises(InconsistentConcatError, match="concat_dim='time_counter'") as e:
        vzsql.scan([str(p) for p in NEMO])
    assert "time_centered" in str(e.value)


def test_order_follows_time_not_file_names(tmp_path, reference):
    # copies named against time order: z = January, y = February, x = March
    renamed = [shutil.copy(p, tmp_path / f"{n}.nc") for p, n in zip(NEMO, "zyx", strict=True)]
    with pytest.warns(ConcatWarning):
        m = vzsql.combine(sorted(str(p) for p in renamed), concat_dim="time_counter")
    ours = m.to_xarray().load()
    np.testing.assert_array_equal(ours["tos"].values, reference["tos"].values)
    xr.testing.assert_identical(ours["time_centered"], reference["time_centered"])
    uris = m.table("sources")["uri"].to_pylist()
    tos = m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "tos"))
    by_index = sorted(zip(tos["index"].to_pylist(), tos["source_id"].to_pylist(), strict=True))
    assert [Path(uris[s]).name for _, s in by_index] == ["z.nc", "y.nc", "x.nc"]


def test_isel_of_the_combined_series(combined, reference):
    sub = combined.isel(time_counter=slice(1, 3)).to_xarray().load()
    assert_same(sub, reference.isel(time_counter=slice(1, 3)))
    with pytest.raises(VzsqlError, match="repeats values"):
        combined.sel(time_counter=slice(0.0, 0.0))


def write_month(path: Path, month: int, *, aux: float | None) -> Path:
    """A tiny NEMO-like file: ``time_counter = [0]``, optionally an auxiliary time."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time_counter", None)
        ds.createDimension("x", 4)
        ds.createVariable("time_counter", "f8", ("time_counter",))[:] = [0.0]
        v = ds.createVariable("tos", "f4", ("time_counter", "x"))
        v[:] = np.full((1, 4), month, "f4")
        if aux is not None:
            t = ds.createVariable("time_centered", "f8", ("time_counter",))
            t.standard_name = "time"
            t.units = "days since 2000-01-01"
            t[:] = [aux]
            v.coordinates = "time_centered"
    return path


def test_repeated_index_without_an_auxiliary_coordinate_is_refused(tmp_path):
    files = [str(write_month(tmp_path / f"m{i}.nc", i, aux=None)) for i in range(3)]
    with pytest.raises(InconsistentConcatError, match="no auxiliary coordinate"):
        vzsql.combine(files, concat_dim="time_counter")


def test_overlapping_auxiliary_coordinate_is_refused(tmp_path):
    files = [str(write_month(tmp_path / f"m{i}.nc", i, aux=a)) for i, a in enumerate((15, 45, 45))]
    with pytest.raises(InconsistentConcatError, match="time_centered") as e:
        vzsql.combine(files, concat_dim="time_counter")
    assert "overlap" in str(e.value)


def test_gap_in_the_auxiliary_coordinate_needs_allow_gaps(tmp_path):
    files = [
        str(write_month(tmp_path / f"m{i}.nc", i, aux=a)) for i, a in enumerate((15, 45, 75, 165))
    ]
    with pytest.raises(InconsistentConcatError, match="gap"):
        vzsql.combine(files, concat_dim="time_counter")
    with pytest.warns(ConcatWarning):
        m = vzsql.combine(files, concat_dim="time_counter", allow_gaps=True)
    ds = m.to_xarray().load()
    assert list(ds["tos"].values[:, 0]) == [0.0, 1.0, 2.0, 3.0]
