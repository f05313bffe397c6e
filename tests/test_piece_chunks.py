"""The vectorised chunk-row assembly of concat/stack (vzsql.ops.piece_chunks) against a
row-by-row reference (hypothesis): random pieces with several arrays and sources, rows of
arrays interleaved or grouped, null and short indices, inline rows, unknown source ids,
random plans (dropped pairs, shifts, leading indices). And the SQL it replaced
(queries/concat_chunks.sql over queries/remap_chunk_sources.sql) gives the same rows for a
real concatenation."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vzsql
from tests.fixtures_series import daily_piece
from vzsql.ops.concat import describe_pieces
from vzsql.ops.piece_chunks import assemble_chunks
from vzsql.ops.relations import query, renumber_sources, stack_pieces, union_sources
from vzsql.tables import Tables, conform

ARRAYS = ("a", "b", "c")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def piece(draw, number: int) -> Tables:
    """A piece: 0-3 sources (some shared with other pieces), chunk rows of random arrays."""
    n_sources = draw(st.integers(0, 3))
    uris = draw(
        st.lists(
            st.sampled_from([f"file:///f{k}" for k in range(6)]),
            min_size=n_sources,
            max_size=n_sources,
            unique=True,
        )
    )
    ids = draw(st.lists(st.integers(0, 5), min_size=len(uris), max_size=len(uris), unique=True))
    rows = []
    grouped = draw(st.booleans())
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(ARRAYS))
        ndim = ARRAYS.index(name) + 1
        index = draw(
            st.one_of(
                st.none(),
                st.lists(st.integers(0, 50), min_size=ndim, max_size=ndim),
                st.lists(st.integers(0, 50), min_size=0, max_size=ndim),  # malformed: short
            )
        )
        inline = draw(st.booleans())
        sid = None if inline else draw(st.sampled_from([*ids, 9]))  # 9: not a source here
        rows.append(
            {
                "array": name,
                "index": index,
                "source_id": sid,
                "offset": None if inline else draw(st.integers(0, 10**6)),
                "length": draw(st.integers(1, 100)),
                "data": b"x%d" % number if inline else None,
            }
        )
    if grouped:
        rows.sort(key=lambda r: r["array"])
    sources = conform(
        "sources",
        pa.table(
            {
                "source_id": pa.array(ids, pa.int32()),
                "uri": pa.array(uris, pa.string()),
                "format": pa.array(["raw"] * len(uris), pa.string()),
            }
        ),
    )
    chunks = conform(
        "chunks",
        pa.Table.from_pylist(
            rows, schema=conform("chunks", pa.table({"array": pa.array([], pa.string())})).schema
        ),
    )
    empty = Tables.empty()
    return Tables(sources, empty.arrays, empty.grid, chunks, empty.groups)


@st.composite
def case(draw):
    n = draw(st.integers(1, 4))
    parts = [draw(piece(i)) for i in range(n)]
    plan = []
    for p in range(n):
        for name in ARRAYS:
            if draw(st.booleans()):
                lead = draw(st.one_of(st.none(), st.integers(0, 7)))
                d = draw(st.one_of(st.none(), st.integers(0, 3)))
                plan.append(
                    {
                        "piece": p,
                        "array": name,
                        "d": d,
                        "shift": draw(st.integers(0, 99)),
                        "lead": lead,
                    }
                )
    schema = pa.schema(
        [
            ("piece", pa.int32()),
            ("array", pa.string()),
            ("d", pa.int16()),
            ("shift", pa.int64()),
            ("lead", pa.int32()),
        ]
    )
    return parts, pa.Table.from_pylist(plan, schema=schema)


def reference(parts, plan, source_map):
    """What assemble_chunks must return, computed row by row."""
    decided = {(r["piece"], r["array"]): r for r in plan.to_pylist()}
    new_id = {(r["piece"], r["old_id"]): r["source_id"] for r in source_map.to_pylist()}
    out = []
    for p, part in enumerate(parts):
        for row in part.chunks.to_pylist():
            rule = decided.get((p, row["array"]))
            if rule is None:
                continue
            index = row["index"]
            if index is not None:
                index = list(index)
                if rule["d"] is not None and rule["d"] < len(index):
                    index[rule["d"]] += rule["shift"]
                if rule["lead"] is not None:
                    index = [rule["lead"], *index]
            sid = row["source_id"]
            out.append({**row, "index": index, "source_id": new_id.get((p, sid))})
    return out


@SETTINGS
@given(case())
def test_assemble_chunks_equals_row_by_row(example):
    parts, plan = example
    pieces = stack_pieces(parts, ("sources",))
    _, source_map = renumber_sources(pieces)
    got = assemble_chunks(parts, plan, source_map)
    assert got.schema == conform("chunks", got).schema
    assert got.to_pylist() == reference(parts, plan, source_map)


def test_many_interleaved_runs_take_the_filter_path():
    """Rows of two arrays alternating: dropping one leaves a run per row (filter path)."""
    rows = [
        {
            "array": ARRAYS[k % 2],
            "index": [k] * (k % 2 + 1),
            "source_id": 0,
            "offset": k,
            "length": 1,
        }
        for k in range(200)
    ]
    sources = conform(
        "sources",
        pa.table({"source_id": pa.array([0], pa.int32()), "uri": ["file:///x"], "format": ["raw"]}),
    )
    empty = Tables.empty()
    part = Tables(
        sources,
        empty.arrays,
        empty.grid,
        conform("chunks", pa.Table.from_pylist(rows)),
        empty.groups,
    )
    plan = pa.table(
        {
            "piece": pa.array([0], pa.int32()),
            "array": ["b"],
            "d": pa.array([1], pa.int16()),
            "shift": [5],
            "lead": pa.nulls(1, pa.int32()),
        }
    )
    _, source_map = renumber_sources(stack_pieces([part], ("sources",)))
    got = assemble_chunks([part], plan, source_map)
    assert got.to_pylist() == reference([part], plan, source_map)
    assert got.num_rows == 100 and got["index"][0].as_py() == [1, 6]


def test_concat_chunks_equal_the_sql_of_before(tmp_path):
    """A real concatenation: the same chunk rows as the SQL path (order aside)."""
    parts = [daily_piece(tmp_path / f"p{i}.raw", 10 * i, 10, chunk=3)[0] for i in range(3)]
    m = vzsql.concat([vzsql.Manifest(p) for p in parts], "time", order_by_coords=False)
    pieces = describe_pieces(parts)
    _, chunks = union_sources(pieces)
    pieces["piece_chunks"] = chunks
    offsets = query("concat_offsets", pieces, {"dim": "time"})
    sql = query("concat_chunks", {**pieces, "offsets": offsets})

    def key(r):
        return (r["array"], r["index"], r["source_id"] or -1, r["offset"] or -1)

    ours = [r for r in m.table("chunks").to_pylist() if r["array"] != "time"]
    theirs = [r for r in sql.to_pylist() if r["array"] != "time"]
    assert sorted(ours, key=key) == sorted(theirs, key=key)
    assert len(ours) > 3
