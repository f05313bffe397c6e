"""Properties of the algebra over random series (hypothesis): random piece lengths, chunk
lengths per piece and compression, pieces given in random order.

- concat then isel of a piece's range equals that piece (also from DuckDB storage);
- concat is associative (same grid, chunks and values either way);
- check() on any manifest vzsql builds from good files is empty.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vzsql
from tests.fixtures_series import daily_piece
from vzsql.ops.coords import read_array

# (days, chunk length) per piece; all pieces of one series share the compression setting
piece_specs = st.lists(st.tuples(st.integers(1, 23), st.integers(1, 12)), min_size=1, max_size=4)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(d: Path, specs, compress, prefix="p"):
    pieces, temps, starts, start = [], [], [], 0
    for i, (n, chunk) in enumerate(specs):
        t, temp = daily_piece(d / f"{prefix}{i}.raw", start, n, chunk=chunk, compress=compress)
        pieces.append(vzsql.Manifest(t))
        temps.append(temp)
        starts.append(start)
        start += n
    return pieces, temps, starts


@SETTINGS
@given(specs=piece_specs, compress=st.booleans(), order=st.randoms(use_true_random=False))
def test_concat_then_isel_is_the_piece(specs, compress, order):
    with tempfile.TemporaryDirectory() as tmp:
        pieces, temps, starts = build(Path(tmp), specs, compress)
        shuffled = list(range(len(pieces)))
        order.shuffle(shuffled)
        m = vzsql.concat([pieces[i] for i in shuffled], "time")
        assert np.array_equal(read_array(m.tables, "temp"), np.concatenate(temps))
        assert m.check().num_rows == 0
        duck = m.with_storage("duckdb")  # isel there drops rows in DuckDB first: same result
        assert duck.check().equals(m.check())
        for k, (n, _) in enumerate(specs):
            sub = m.isel(time=slice(starts[k], starts[k] + n))
            in_duck = duck.isel(time=slice(starts[k], starts[k] + n))
            for name, table in sub.tables.as_dict().items():
                assert in_duck.table(name).equals(table), name
            assert np.array_equal(read_array(sub.tables, "temp"), temps[k])
            assert np.array_equal(
                read_array(sub.tables, "time"), np.arange(starts[k], starts[k] + n)
            )
            assert sub.check(stat=False).num_rows == 0


def _normalized(m: vzsql.Manifest):
    arrays = m.table("arrays").to_pylist()
    for r in arrays:
        codecs = json.loads(r["codecs"])
        for c in codecs:
            if "chunk_shapes" in (c.get("configuration") or {}):
                c["configuration"]["chunk_shapes"] = sorted(c["configuration"]["chunk_shapes"])
        r["codecs"] = codecs
    return arrays, m.table("grid"), m.table("chunks"), m.table("sources")["uri"].to_pylist()


@SETTINGS
@given(
    specs=st.lists(st.tuples(st.integers(1, 23), st.integers(1, 12)), min_size=3, max_size=3),
    compress=st.booleans(),
)
def test_concat_is_associative(specs, compress):
    with tempfile.TemporaryDirectory() as tmp:
        (a, b, c), temps, _ = build(Path(tmp), specs, compress)
        left = vzsql.concat([vzsql.concat([a, b], "time"), c], "time")
        right = vzsql.concat([a, vzsql.concat([b, c], "time")], "time")
        flat = vzsql.concat([a, b, c], "time")
        la, lg, lc, ls = _normalized(left)
        ra, rg, rc, rs = _normalized(right)
        fa, fg, fc, fs = _normalized(flat)
        assert la == ra == fa
        assert lg.equals(rg) and lg.equals(fg)
        assert lc.equals(rc) and lc.equals(fc)
        assert ls == rs == fs
        assert np.array_equal(read_array(left.tables, "temp"), np.concatenate(temps))


@SETTINGS
@given(specs=piece_specs, compress=st.booleans())
def test_check_is_empty_on_built_manifests(specs, compress):
    with tempfile.TemporaryDirectory() as tmp:
        pieces, _, _ = build(Path(tmp), specs, compress)
        for p in pieces:
            assert p.check().num_rows == 0
        m = vzsql.concat(pieces, "time")
        assert m.check().num_rows == 0
        other, _, _ = build(Path(tmp), specs, compress, prefix="q")
        stacked = vzsql.concat([m, vzsql.concat(other, "time")], "member", coords=[0, 1])
        assert stacked.check().num_rows == 0
