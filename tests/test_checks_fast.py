"""The fast chunk-row checks (vzsql/ops/check_fast.py) give exactly the rows of the reference
SQL (queries/checks/*.sql) on random broken manifests: several arrays of different ndim,
0-d arrays, rectilinear grids, grids short of or beyond the shape's dimensions, rows in C
order or shuffled, duplicate, missing, outside-grid, wrong-ndim and unknown-array rows,
inline chunks, overlapping byte ranges; chunk tables in several record batches and sliced."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vzsql
from vzsql.ops import check_fast, check_ranges
from vzsql.ops.check_fast import FAST_CHECKS, fast_chunk_checks
from vzsql.ops.checks import run_check
from vzsql.tables import CHUNKS_SCHEMA, Tables, empty


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    """Arrays (name -> chunk counts per dim) and their grid rows (rectilinear lengths)."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "s", "zz"]), min_size=1, max_size=4))
    arrays, grid = {}, []
    for name in dict.fromkeys(names):
        counts = draw(st.lists(st.integers(1, 4), max_size=3))
        arrays[name] = counts
        grid_counts = list(counts)
        quirk = draw(st.integers(0, 9))
        if quirk == 0 and grid_counts:  # a dimension without grid rows
            grid_counts.pop()
        elif quirk == 1:  # grid rows for a dimension the shape does not have
            grid_counts.append(draw(st.integers(1, 3)))
        for d, n in enumerate(grid_counts):
            lengths = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
            start = 0
            for c, length in enumerate(lengths):
                grid.append({"array": name, "dim": d, "chunk": c, "start": start, "length": length})
                start += length
    return {"arrays": arrays, "grid": grid}


def c_order(counts: list[int]) -> list[list[int]]:
    return [list(i) for i in itertools.product(*(range(n) for n in counts))]


@st.composite
def manifests(draw: st.DrawFn) -> Tables:
    lay = draw(layouts())
    arrays: dict[str, list[int]] = lay["arrays"]
    keys: list[tuple[str, list[int]]] = []
    for name in draw(st.permutations(list(arrays))):
        every = c_order(arrays[name])
        keep = draw(st.lists(st.booleans(), min_size=len(every), max_size=len(every)))
        keys += [(name, i) for i, k in zip(every, keep, strict=True) if k or draw(st.booleans())]
    for _ in range(draw(st.integers(0, 8))):  # duplicates, misfits, unknown arrays
        kind = draw(st.integers(0, 3))
        name = draw(st.sampled_from([*arrays, "unknown"] if kind == 3 else list(arrays)))
        ndim = len(arrays.get(name, [1]))
        if kind == 2:
            ndim = draw(st.integers(0, 4))
        index = draw(st.lists(st.integers(-1, 4), min_size=ndim, max_size=ndim))
        if kind == 0 and keys:
            name, index = draw(st.sampled_from(keys))
        keys.insert(draw(st.integers(0, len(keys))), (name, index))
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    cursor, last = [0, 0, 0], [0, 0, 0]
    per_array = draw(st.booleans())
    rows = []
    for name, index in keys:
        inline = draw(st.integers(0, 9)) == 0
        length = draw(st.integers(0, 6))
        # a file per array (long blocks of rows) or any file
        sid = sum(map(ord, name)) % 3 if per_array else draw(st.integers(0, 2))
        offset = cursor[sid] + draw(st.integers(0, 2))  # back to back, or a gap
        how = draw(st.integers(0, 9))
        if how == 0:
            offset = draw(st.integers(0, 40))  # anywhere: may overlap
        elif how == 1:
            offset = last[sid]  # the same offset as the file's previous chunk
        last[sid] = offset
        cursor[sid] = offset + length
        rows.append(
            {
                "array": name,
                "index": index,
                "source_id": None if inline else sid,
                "offset": None if inline else offset,
                "length": length,
                "data": b"x" if inline else None,
            }
        )
    chunks = pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA)
    layout = draw(st.integers(0, 2))
    if layout == 1 and chunks.num_rows > 2:  # several record batches
        cut = draw(st.integers(1, chunks.num_rows - 1))
        chunks = pa.Table.from_batches(
            [*chunks.slice(0, cut).to_batches(), *chunks.slice(cut).to_batches()]
        )
    elif layout == 2:  # a slice: list offsets do not start at 0
        pad = pa.Table.from_pylist(rows[:3], schema=CHUNKS_SCHEMA)
        chunks = pa.concat_tables([pad, chunks, pad]).combine_chunks()
        chunks = chunks.slice(pad.num_rows, len(rows))
    return Tables.from_mapping(
        {
            "sources": pa.table(
                {
                    "source_id": pa.array([0, 1, 2], pa.int32()),
                    "uri": ["file:///x", "file:///y", "file:///z"],
                    "format": ["raw"] * 3,
                }
            ),
            "arrays": pa.table({"array": list(arrays), "shape": list(arrays.values())}),
            "grid": pa.Table.from_pylist(lay["grid"]) if lay["grid"] else empty("grid"),
            "chunks": chunks,
        }
    )


@contextmanager
def few_runs(n: int) -> Iterator[None]:
    """Force the run-by-run (n large) or the per-row lookup (n = 0) way of computing keys,
    and (n = 0) the overlap search through blocks however short they are."""
    saved = check_fast._FEW_RUNS, check_ranges._ROWS_PER_BLOCK
    check_fast._FEW_RUNS = n
    check_ranges._ROWS_PER_BLOCK = min(n, 4)
    try:
        yield
    finally:
        check_fast._FEW_RUNS, check_ranges._ROWS_PER_BLOCK = saved


def same_rows(fast: pa.Table, ref: pa.Table) -> None:
    """Equal rows in the reference's (array, chunk) order; ties may come in any order."""
    assert fast.schema == ref.schema
    a, b = fast.to_pylist(), ref.to_pylist()
    assert [(r["array"], r["chunk"]) for r in a] == [(r["array"], r["chunk"]) for r in b]
    key = lambda r: tuple(str(v) for v in r.values())  # noqa: E731
    assert sorted(a, key=key) == sorted(b, key=key)


@pytest.mark.parametrize("runs", [64, 0])
@settings(max_examples=50, deadline=None)
@given(tables=manifests())
def test_fast_checks_equal_sql(tables: Tables, runs: int) -> None:
    m = vzsql.Manifest(tables)
    with few_runs(runs):
        fast = fast_chunk_checks(tables, FAST_CHECKS)
    assert set(fast) == set(FAST_CHECKS)  # these manifests all take the fast path
    for name in FAST_CHECKS:
        same_rows(fast[name], run_check(m, name))
    whole = m.check(stat=False)
    ref = pa.concat_tables(run_check(m, name) for name in vzsql.ops.checks.TABLE_CHECKS)
    assert sorted(map(str, whole.to_pylist())) == sorted(map(str, ref.to_pylist()))


def test_c_ordered_rows_take_no_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows in C order per array: no sort, one missing chunk found from the count."""
    rows = [
        {"array": "v", "index": i, "source_id": 0, "offset": 10 * k, "length": 10}
        for k, i in enumerate(c_order([3, 4, 5]))
        if i != [1, 2, 3]
    ]
    rows += [
        {"array": "t", "index": [i], "source_id": 1, "offset": 4 * i, "length": 4} for i in range(7)
    ]
    grid = [
        {"array": name, "dim": d, "chunk": c, "start": c, "length": 1}
        for name, counts in {"v": [3, 4, 5], "t": [7]}.items()
        for d, n in enumerate(counts)
        for c in range(n)
    ]
    tables = Tables.from_mapping(
        {
            "sources": pa.table(
                {"source_id": [0, 1], "uri": ["file:///x", "file:///y"], "format": ["raw"] * 2}
            ),
            "arrays": pa.table({"array": ["v", "t"], "shape": [[3, 4, 5], [7]]}),
            "grid": pa.Table.from_pylist(grid),
            "chunks": pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA),
        }
    )

    def no_sort(keys: Any) -> None:
        raise AssertionError("sorted keys of C-ordered rows")

    monkeypatch.setattr(check_fast, "_sort_keys", no_sort)
    fast = fast_chunk_checks(tables, FAST_CHECKS)
    monkeypatch.undo()
    assert fast["missing_chunks"].to_pylist() == [
        {
            "kind": "missing_chunk",
            "severity": "info",
            "array": "v",
            "chunk": [1, 2, 3],
            "source": None,
            "detail": "no chunk: reads as the fill value",
        }
    ]
    assert all(fast[n].num_rows == 0 for n in FAST_CHECKS if n != "missing_chunks")


def test_null_index_falls_back_to_sql() -> None:
    """A null index (legal in the format) leaves the key checks to their SQL: same answer."""
    rows = [
        {"array": "t", "index": [0], "source_id": 0, "offset": 0, "length": 4},
        {"array": "t", "index": None, "source_id": 0, "offset": 2, "length": 4},
        {"array": "t", "index": [0], "source_id": 0, "offset": 8, "length": 4},
    ]
    tables = Tables.from_mapping(
        {
            "sources": pa.table({"source_id": [0], "uri": ["file:///x"], "format": ["raw"]}),
            "arrays": pa.table({"array": ["t"], "shape": [[2]]}),
            "grid": pa.Table.from_pylist(
                [{"array": "t", "dim": 0, "chunk": c, "start": c, "length": 1} for c in range(2)]
            ),
            "chunks": pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA),
        }
    )
    fast = fast_chunk_checks(tables, FAST_CHECKS)
    assert set(fast) == {"overlapping_ranges"}
    m = vzsql.Manifest(tables)
    for name in FAST_CHECKS:
        same_rows(m.check(stat=False, checks=[name]), run_check(m, name))
    kinds = set(m.check(stat=False)["kind"].to_pylist())
    assert {"duplicate_chunk_key", "overlapping_ranges", "missing_chunk"} <= kinds


@settings(max_examples=40, deadline=None)
@given(tables=manifests(), batch_rows=st.sampled_from([1, 3, 1000]))
def test_checks_of_a_manifest_in_duckdb_equal_arrow(tables: Tables, batch_rows: int) -> None:
    """Stored in DuckDB, a manifest is checked a batch of arrays at a time (one array per
    batch with ``batch_rows=1``), its rows streamed: the same problems as over Arrow."""
    from vzsql.ops.check_resident import resident_problems
    from vzsql.ops.checks import TABLE_CHECKS

    arrow = vzsql.Manifest(tables)
    duck = vzsql.Manifest(tables, storage="duckdb")
    found = resident_problems(duck, TABLE_CHECKS, None, stat=False, batch_rows=batch_rows)
    assert list(found) == list(TABLE_CHECKS)
    for name in TABLE_CHECKS:
        same_rows(found[name], arrow.check(stat=False, checks=[name]))
    same_rows(duck.check(stat=False), arrow.check(stat=False))  # ties in any order


def test_checking_a_manifest_in_duckdb_does_not_materialise_its_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vzsql.resident import ResidentChunks

    rows = [
        {"array": "v", "index": [i], "source_id": 0, "offset": 8 * i, "length": 10}
        for i in (0, 1, 1, 5)
    ]
    tables = Tables.from_mapping(
        {
            "sources": pa.table({"source_id": [0], "uri": ["file:///x"], "format": ["raw"]}),
            "arrays": pa.table({"array": ["v"], "shape": [[4]]}),
            "grid": pa.Table.from_pylist(
                [{"array": "v", "dim": 0, "chunk": c, "start": c, "length": 1} for c in range(4)]
            ),
            "chunks": pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA),
        }
    )
    expected = vzsql.Manifest(tables).check(stat=False)
    duck = vzsql.Manifest(tables, storage="duckdb")

    def refuse() -> None:
        raise AssertionError("check materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", lambda self: refuse())
    problems = duck.check(stat=False)
    same_rows(problems, expected)  # the two rows of chunk [1] may come in either order
    assert {"duplicate_chunk_key", "overlapping_ranges", "index_outside_grid"} <= set(
        problems["kind"].to_pylist()
    )
