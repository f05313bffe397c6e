"""Concatenation: ordering by coordinates, padded middle chunks, variable chunk lengths,
refusals (same file twice, overlaps, gaps, CF packing), time units re-encoded, stacking,
and end to end against xarray on real netCDF4 files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pytest
import xarray as xr

import vzsql
from tests.fixtures_series import MONTHS, Var, daily_piece, write_nc_month, write_piece
from vzsql.errors import InconsistentConcatError
from vzsql.ops.coords import read_array


def monthly(tmp_path, lengths=MONTHS, chunk=10, compress=True, gap_after=None):
    parts, temps, start = [], [], 0
    for i, n in enumerate(lengths):
        t, temp = daily_piece(tmp_path / f"p{i}.raw", start, n, chunk=chunk, compress=compress)
        parts.append(vzsql.Manifest(t))
        temps.append(temp)
        start += n + (5 if gap_after == i else 0)
    return parts, temps


def test_concat_orders_by_coordinate_and_trims_padded_middle_chunks(tmp_path):
    parts, temps = monthly(tmp_path)
    m = vzsql.concat([parts[2], parts[0], parts[1]], dim="time")
    assert np.array_equal(read_array(m.tables, "temp"), np.concatenate(temps))
    assert np.array_equal(read_array(m.tables, "time"), np.arange(90))
    grid = m.table("grid").filter(
        pc.and_(pc.equal(m.table("grid")["array"], "temp"), pc.equal(m.table("grid")["dim"], 0))
    )
    assert grid["length"].to_pylist() == [10, 10, 10, 1, 10, 10, 8, 10, 10, 10, 1]
    assert grid["start"].to_pylist()[:5] == [0, 10, 20, 30, 31]
    codecs = json.loads(
        m.table("arrays").filter(pc.equal(m.table("arrays")["array"], "temp"))["codecs"][0].as_py()
    )
    assert codecs[0]["name"] == "vzsql.padded_bytes"
    # the time coordinate is one inline chunk
    t_chunks = m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "time"))
    assert t_chunks.num_rows == 1 and t_chunks["data"][0].as_py() is not None
    assert m.info()["sources"] == 3


def test_different_chunk_lengths_per_file(tmp_path):
    a, ta = daily_piece(tmp_path / "a.raw", 0, 30, chunk=10)
    b, tb = daily_piece(tmp_path / "b.raw", 30, 14, chunk=7)
    m = vzsql.concat([vzsql.Manifest(a), vzsql.Manifest(b)], "time")
    assert np.array_equal(read_array(m.tables, "temp"), np.concatenate([ta, tb]))
    ds = m.to_xarray()
    assert np.array_equal(ds["temp"].values, np.concatenate([ta, tb]))


def test_same_file_twice_is_refused(tmp_path):
    parts, _ = monthly(tmp_path, lengths=(31,))
    with pytest.raises(InconsistentConcatError, match="same file"):
        vzsql.concat([parts[0], parts[0]], "time")


def test_overlapping_coordinates_are_refused(tmp_path):
    a, _ = daily_piece(tmp_path / "a.raw", 0, 20)
    b, _ = daily_piece(tmp_path / "b.raw", 15, 20)
    with pytest.raises(InconsistentConcatError, match="overlap") as e:
        vzsql.concat([vzsql.Manifest(a), vzsql.Manifest(b)], "time")
    assert "b.raw" in str(e.value)


def test_gap_is_refused_unless_allowed(tmp_path):
    parts, _ = monthly(tmp_path, gap_after=0)
    with pytest.raises(InconsistentConcatError, match="gap"):
        vzsql.concat(parts, "time")
    m = vzsql.concat(parts, "time", allow_gaps=True)
    times = read_array(m.tables, "time")
    assert times[30] == 30 and times[31] == 36


def test_time_units_differing_per_file_are_reencoded(tmp_path):
    a, _ = daily_piece(tmp_path / "a.raw", 0, 31)
    # same instants continue, but file b counts days since 2000-02-01
    b, _ = daily_piece(tmp_path / "b.raw", 31, 29, units="days since 2000-02-01", unit_offset=31)
    m = vzsql.concat([vzsql.Manifest(b), vzsql.Manifest(a)], "time")
    attrs = json.loads(
        m.table("arrays").filter(pc.equal(m.table("arrays")["array"], "time"))["attrs"][0].as_py()
    )
    assert attrs["units"] == "days since 2000-01-01"
    assert np.array_equal(read_array(m.tables, "time"), np.arange(60))
    ds = m.to_xarray()
    expected = np.datetime64("2000-01-01") + np.arange(60).astype("timedelta64[D]")
    assert np.array_equal(ds["time"].values, expected.astype("datetime64[ns]"))


def test_different_scale_factor_is_refused_naming_files(tmp_path):
    def piece(name, start, scale):
        return vzsql.Manifest(
            write_piece(
                tmp_path / name,
                {
                    "time": Var(
                        ("time",),
                        np.arange(start, start + 4),
                        (4,),
                        {"units": "days since 2000-01-01"},
                    ),
                    "v": Var(("time",), np.arange(4, dtype="int16"), (4,), {"scale_factor": scale}),
                },
            )
        )

    with pytest.raises(InconsistentConcatError, match="scale_factor") as e:
        vzsql.concat([piece("a.raw", 0, 0.1), piece("b.raw", 4, 0.2)], "time")
    assert "a.raw" in str(e.value) and "b.raw" in str(e.value)


def test_stack_along_new_dimension(tmp_path):
    a, ta = daily_piece(tmp_path / "a.raw", 0, 12)
    b, _ = daily_piece(tmp_path / "b.raw", 0, 12)
    t_b = read_array(b, "temp")
    m = vzsql.concat([vzsql.Manifest(a), vzsql.Manifest(b)], "member", coords=[1, 2])
    stacked = read_array(m.tables, "temp")
    assert stacked.shape == (2, 12, 3)
    assert np.array_equal(stacked[0], ta) and np.array_equal(stacked[1], t_b)
    assert read_array(m.tables, "time").shape == (12,)
    assert list(read_array(m.tables, "member")) == [1, 2]


@pytest.mark.parametrize("chunk", [10, 7])
def test_netcdf4_months_match_open_mfdataset(tmp_path, chunk):
    start = 0
    paths = []
    for i, n in enumerate(MONTHS):
        p = tmp_path / f"m{i}.nc"
        write_nc_month(p, start, n, chunk=chunk)
        paths.append(p)
        start += n
    m = vzsql.combine(str(tmp_path / "m*.nc"))
    ds = m.to_xarray()
    with xr.open_mfdataset(paths, combine="by_coords") as ref:
        xr.testing.assert_identical(ds.load(), ref.load())
    assert m.check().num_rows == 0
    # the same through concat of single scans given in the wrong order
    m2 = vzsql.concat([vzsql.scan(p) for p in reversed(paths)], dim="time")
    xr.testing.assert_identical(m2.to_xarray().load(), ds)


def test_netcdf4_time_units_per_file(tmp_path):
    write_nc_month(tmp_path / "a.nc", 0, 31, units="days since 2001-01-01")
    write_nc_month(tmp_path / "b.nc", 31, 28, units="hours since 2001-02-01", unit_offset=0)
    # b's values must be hours since Feb 1: rewrite them
    import netCDF4

    with netCDF4.Dataset(tmp_path / "b.nc", "a") as ds:
        ds["time"][:] = np.arange(28) * 24.0
    m = vzsql.combine([str(tmp_path / "a.nc"), str(tmp_path / "b.nc")])
    got = m.to_xarray()["time"].values
    expected = (np.datetime64("2001-01-01") + np.arange(59).astype("timedelta64[D]")).astype(
        "datetime64[ns]"
    )
    assert np.array_equal(got, expected)


def test_netcdf4_scale_factor_per_file_refused(tmp_path):
    write_nc_month(tmp_path / "a.nc", 0, 31, scale_factor=0.01)
    write_nc_month(tmp_path / "b.nc", 31, 28, scale_factor=0.02)
    with pytest.raises(InconsistentConcatError, match="scale_factor") as e:
        vzsql.combine(str(tmp_path / "*.nc"))
    assert "a.nc" in str(e.value) and "b.nc" in str(e.value)


def two_shape_pieces(tmp_path, chunks_a, chunks_b, nx=3):
    """``temp(time, x)`` in two files whose stored chunk shapes differ (same grid along x)."""
    parts, temps = [], []
    pieces = (("a", 0, chunks_a), ("b", chunks_a[0], chunks_b))
    for name, t0, chunks in pieces:
        nt = chunks[0]
        temp = (np.arange(nt * nx, dtype="float32").reshape(nt, nx) + 100 * t0).astype("float32")
        tables = write_piece(
            tmp_path / f"{name}.raw",
            {
                "time": Var(("time",), np.arange(t0, t0 + nt, dtype="float64"), (nt,)),
                "temp": Var(("time", "x"), temp, chunks, compress=True),
            },
        )
        parts.append(vzsql.Manifest(tables))
        temps.append(temp)
    return parts, np.concatenate(temps)


def test_stored_shapes_of_equal_size_are_refused_in_advance(tmp_path):
    # [2, 6] and [3, 4] both hold 12 elements: the padded codec, which tells a chunk's stored
    # shape from its decoded size, could not tell them apart when reading
    from vzsql.codecs.padded import PaddedBytesCodec, PaddedChunkError

    parts, _ = two_shape_pieces(tmp_path, (2, 6), (3, 4))
    with pytest.raises(InconsistentConcatError, match=r"\[2, 6\].*\[3, 4\]") as e:
        vzsql.concat(parts, "time")
    assert e.value.array == "temp" and "a.raw" in str(e.value) and "b.raw" in str(e.value)
    with pytest.raises(PaddedChunkError, match="several"):  # what a read would have hit
        PaddedBytesCodec(chunk_shapes=[[2, 6], [3, 4]]).stored_shape(48, (2, 3), 4)


def test_stored_shapes_of_different_sizes_concatenate(tmp_path):
    parts, expected = two_shape_pieces(tmp_path, (2, 6), (4, 6))  # 12 and 24 elements
    m = vzsql.concat(parts[::-1], "time")
    np.testing.assert_array_equal(m.to_xarray()["temp"].values, expected)
    assert m.check().num_rows == 0


def test_different_chunk_grid_outside_the_concat_dim_is_refused(tmp_path):
    parts, _ = two_shape_pieces(tmp_path, (2, 3), (2, 2), nx=6)  # x chunks [3, 3] vs [2, 2, 2]
    with pytest.raises(InconsistentConcatError, match=r"chunks along x are \[2, 2, 2\]"):
        vzsql.concat(parts, "time")
