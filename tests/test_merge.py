"""merge: different variables on the same grid; conflicts are errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import vzsql
from tests.fixtures_series import Var, write_piece
from vzsql.errors import InconsistentConcatError
from vzsql.ops.coords import read_array


def piece(path, var, values, nt=6, time0=0):
    return vzsql.Manifest(
        write_piece(
            path,
            {
                "time": Var(
                    ("time",),
                    np.arange(time0, time0 + nt),
                    (nt,),
                    {"units": "days since 2000-01-01"},
                ),
                var: Var(("time", "x"), values, (3, 2), compress=True),
            },
        )
    )


def test_merge_two_variables(tmp_path):
    t = np.arange(12, dtype="f4").reshape(6, 2)
    h = -np.arange(12, dtype="f4").reshape(6, 2)
    m = vzsql.merge([piece(tmp_path / "t.raw", "temp", t), piece(tmp_path / "h.raw", "hum", h)])
    assert sorted(m.table("arrays")["array"].to_pylist()) == ["hum", "temp", "time"]
    assert np.array_equal(read_array(m.tables, "temp"), t)
    assert np.array_equal(read_array(m.tables, "hum"), h)
    assert m.info()["sources"] == 2
    assert m.check().num_rows == 0
    ds = m.to_xarray()
    assert np.array_equal(ds["hum"].values, h)


def test_merge_dimension_length_conflict(tmp_path):
    a = piece(tmp_path / "a.raw", "temp", np.zeros((6, 2), "f4"))
    b = piece(tmp_path / "b.raw", "hum", np.zeros((4, 2), "f4"), nt=4)
    with pytest.raises(InconsistentConcatError, match="dimension 'time' has different lengths"):
        vzsql.merge([a, b])


def test_merge_shared_coordinate_with_other_values_is_refused(tmp_path):
    a = piece(tmp_path / "a.raw", "temp", np.zeros((6, 2), "f4"))
    b = piece(tmp_path / "b.raw", "hum", np.zeros((6, 2), "f4"), time0=100)
    with pytest.raises(InconsistentConcatError, match="different values") as e:
        vzsql.merge([a, b])
    assert e.value.array == "time"


def test_combine_groups_by_variables_then_merges(tmp_path):
    pieces = [
        piece(tmp_path / "t1.raw", "temp", np.ones((6, 2), "f4")),
        piece(tmp_path / "t2.raw", "temp", 2 * np.ones((6, 2), "f4"), time0=6),
        piece(tmp_path / "h1.raw", "hum", 3 * np.ones((6, 2), "f4")),
        piece(tmp_path / "h2.raw", "hum", 4 * np.ones((6, 2), "f4"), time0=6),
    ]
    m = vzsql.combine(pieces)
    ds = m.to_xarray()
    assert ds.sizes["time"] == 12
    xr.testing.assert_equal(ds["hum"][:6], xr.full_like(ds["hum"][:6], 3.0))
    assert float(ds["temp"][7, 0]) == 2.0
