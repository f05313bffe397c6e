"""isel / sel: aligned selections as WHERE + re-based indices, byte arithmetic on
uncompressed chunks, clear errors for unaligned selections of compressed chunks."""

from __future__ import annotations

import numpy as np
import pytest

import vzsql
from tests.fixtures_series import MONTHS, daily_piece
from vzsql.errors import UnalignedSelectionError
from vzsql.ops.coords import read_array


def series(tmp_path, compress):
    parts, temps, start = [], [], 0
    for i, n in enumerate(MONTHS):
        t, temp = daily_piece(tmp_path / f"p{i}.raw", start, n, compress=compress)
        parts.append(vzsql.Manifest(t))
        temps.append(temp)
        start += n
    return vzsql.concat(parts, "time"), np.concatenate(temps)


@pytest.mark.parametrize(("a", "b"), [(0, 31), (31, 59), (10, 41), (0, 90), (89, 90)])
def test_aligned_isel_of_compressed_chunks(tmp_path, a, b):
    m, full = series(tmp_path, compress=True)
    sub = m.isel(time=slice(a, b))
    assert np.array_equal(read_array(sub.tables, "temp"), full[a:b])
    assert np.array_equal(read_array(sub.tables, "time"), np.arange(a, b))
    assert sub.check(stat=False).num_rows == 0
    assert np.array_equal(sub.to_xarray()["temp"].values, full[a:b])


@pytest.mark.parametrize(("a", "b"), [(3, 25), (30, 33), (5, 6), (0, 89)])
def test_unaligned_isel_of_uncompressed_chunks_by_byte_arithmetic(tmp_path, a, b):
    m, full = series(tmp_path, compress=False)
    sub = m.isel(time=slice(a, b))
    assert np.array_equal(read_array(sub.tables, "temp"), full[a:b])
    assert np.array_equal(sub.to_xarray()["temp"].values, full[a:b])


def test_unaligned_isel_of_compressed_chunks_names_nearest_boundary(tmp_path):
    m, _ = series(tmp_path, compress=True)
    with pytest.raises(UnalignedSelectionError, match="nearest boundary is 0") as e:
        m.isel(time=slice(3, 31))
    assert e.value.array == "temp"
    with pytest.raises(UnalignedSelectionError, match="nearest boundary is 31"):
        m.isel(time=slice(0, 33))


def test_sel_by_time_labels(tmp_path):
    m, full = series(tmp_path, compress=True)
    sub = m.sel(time=slice("2000-02-01", "2000-02-28"))
    assert np.array_equal(read_array(sub.tables, "temp"), full[31:59])
    ds = sub.to_xarray()
    assert str(ds["time"].values[0])[:10] == "2000-02-01" and ds.sizes["time"] == 28
    m2, full2 = series(tmp_path / "u", compress=False) if (tmp_path / "u").mkdir() is None else None
    sub2 = m2.sel(time=slice("2000-01-05", "2000-01-07"))
    assert np.array_equal(read_array(sub2.tables, "temp"), full2[4:7])
