"""The set-based chunk checks (duplicate keys, missing chunks, overlapping ranges) equal a
brute-force Python reading of random broken manifests (duplicates, holes, indices outside
the grid, wrong dimensionality, overlapping and nested byte ranges, inline chunks), both as
their SQL (``run_check``) and through ``check()``'s fast path (vzsql/ops/check_fast.py)."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import vzsql
from vzsql.ops.checks import run_check
from vzsql.tables import Tables

ARRAYS = {"a": [3, 2], "b": [4], "s": []}  # chunk counts per dim ("s": 0-d)


def tables_with(chunks: list[dict[str, Any]]) -> Tables:
    grid = [
        {"array": name, "dim": d, "chunk": c, "start": c, "length": 1}
        for name, ns in ARRAYS.items()
        for d, n in enumerate(ns)
        for c in range(n)
    ]
    return Tables.from_mapping(
        {
            "sources": pa.table(
                {"source_id": [0, 1], "uri": ["file:///x", "file:///y"], "format": ["raw"] * 2}
            ),
            "arrays": pa.table({"array": list(ARRAYS), "shape": list(ARRAYS.values())}),
            "grid": pa.Table.from_pylist(grid),
            "chunks": pa.Table.from_pylist(chunks, schema=vzsql.tables.CHUNKS_SCHEMA),
        }
    )


@st.composite
def chunk_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(0, 14))):
        name = draw(st.sampled_from(list(ARRAYS)))
        ndim = len(ARRAYS[name]) if draw(st.integers(0, 5)) else draw(st.integers(0, 2))
        inline = draw(st.integers(0, 6)) == 0
        rows.append(
            {
                "array": name,
                "index": draw(st.lists(st.integers(-1, 4), min_size=ndim, max_size=ndim)),
                "source_id": None if inline else draw(st.integers(0, 1)),
                "offset": None if inline else draw(st.integers(0, 30)),
                "length": draw(st.integers(1, 8)),
                "data": b"x" if inline else None,
            }
        )
    return rows


def expected_missing(rows: list[dict[str, Any]]) -> set[tuple[str, tuple[int, ...]]]:
    present = {(r["array"], tuple(r["index"])) for r in rows}
    return {
        (name, idx)
        for name, ns in ARRAYS.items()
        for idx in itertools.product(*(range(n) for n in ns))
        if (name, idx) not in present
    }


def expected_duplicates(rows: list[dict[str, Any]]) -> dict[tuple[str, tuple[int, ...]], int]:
    counts: dict[tuple[str, tuple[int, ...]], int] = {}
    for r in rows:
        key = (r["array"], tuple(r["index"]))
        counts[key] = counts.get(key, 0) + 1
    return {k: n for k, n in counts.items() if n > 1}


def expected_overlaps(rows: list[dict[str, Any]]) -> list[tuple[str, tuple[int, ...]]]:
    """Chunks starting before an earlier chunk of their file (window order) has ended."""
    refs = [r for r in rows if r["data"] is None]
    key = lambda r: (r["source_id"], r["offset"], r["offset"] + r["length"], r["array"], r["index"])  # noqa: E731
    out = []
    refs.sort(key=key)
    for i, r in enumerate(refs):
        before = [p for p in refs[:i] if p["source_id"] == r["source_id"]]
        if before and max(p["offset"] + p["length"] for p in before) > r["offset"]:
            out.append((r["array"], tuple(r["index"])))
    return sorted(out)


@settings(max_examples=80, deadline=None)
@given(rows=chunk_rows())
def test_chunk_checks_equal_brute_force(rows: list[dict[str, Any]]) -> None:
    m = vzsql.Manifest(tables_with(rows))
    for fast in (False, True):  # the reference SQL, then check()'s fast path
        assert_brute_force(m, rows, fast)


def assert_brute_force(m: vzsql.Manifest, rows: list[dict[str, Any]], fast: bool) -> None:
    def run(name: str) -> pa.Table:
        return m.check(stat=False, checks=[name]) if fast else run_check(m, name)

    missing = run("missing_chunks").to_pylist()
    assert {(p["array"], tuple(p["chunk"])) for p in missing} == expected_missing(rows)
    assert len(missing) == len(expected_missing(rows))
    dups = run("duplicate_chunk_keys").to_pylist()
    assert {
        (p["array"], tuple(p["chunk"])): int(p["detail"].split()[0]) for p in dups
    } == expected_duplicates(rows)
    overlaps = run("overlapping_ranges").to_pylist()
    assert sorted((p["array"], tuple(p["chunk"])) for p in overlaps) == expected_overlaps(rows)
    assert all(" overlap chunk " in p["detail"] and p["source"] for p in overlaps)
