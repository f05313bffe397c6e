"""Every query of the algebra (queries/*.sql, queries/checks/, queries/stats/) runs at least
once, over the tables of a real concatenation. Other folders (export/, import/...) belong to
the writers and importers and are tested with them."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

import vzsql
from tests.fixtures_series import daily_piece
from vzsql.ops.checks import STAT_SCHEMA
from vzsql.ops.concat import describe_pieces
from vzsql.ops.relations import query
from vzsql.ops.stats import coordinate_values, itemsizes
from vzsql.queries import all_query_names, load_query

ALGEBRA_QUERIES = [
    n for n in all_query_names() if "/" not in n or n.split("/")[0] in ("checks", "stats")
]
PARAMS = {"dim": "time", "a": 0, "b": 10, "n_pieces": 2, "old": "file://", "new": "s3://b"}


@pytest.fixture(scope="module")
def relations(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    a, _ = daily_piece(d / "a.raw", 0, 31)
    b, _ = daily_piece(d / "b.raw", 31, 28)
    m = vzsql.concat([vzsql.Manifest(a), vzsql.Manifest(b)], "time")
    pieces = describe_pieces([a, b])
    t = m.tables.as_dict()
    t["arrays"] = t["arrays"].append_column(
        "pos", pa.array(range(t["arrays"].num_rows), pa.int64())
    )
    rel = {**t, **pieces}
    rel["source_map"] = query("union_sources", pieces)
    rel["offsets"] = query("concat_offsets", pieces, {"dim": "time"})
    rel["stacked"] = pa.table({"array": ["temp"]})
    rel["plan"] = query("subset_plan", t, {"dim": "time", "a": 0, "b": 10})
    rel["sliceable"] = pa.table(
        {"array": pa.array([], pa.string()), "row_bytes": pa.array([], pa.int64())}
    )
    rel["source_stats"] = STAT_SCHEMA.empty_table()
    rel["itemsizes"] = itemsizes(m.tables)
    rel["coverage"] = query("stats/coverage", t)
    cv = coordinate_values(m.tables)
    rel["coord_values"] = cv.append_column("piece", pa.array([0] * cv.num_rows, pa.int32()))
    rel["rechunk_arrays"] = pa.table(
        {"array": ["temp"], "d": pa.array([0], pa.int16()), "n": [7], "row_bytes": [12]}
    ).append_column("extent", pa.array([59], pa.int64()))
    return rel


def test_there_are_queries():
    names = ALGEBRA_QUERIES
    assert len(names) >= 35 and "checks/missing_chunks" in names and "stats/coverage" in names


@pytest.mark.parametrize("name", ALGEBRA_QUERIES)
def test_query_runs(relations, name):
    text = load_query(name)
    assert text.startswith("--"), "each query starts with a comment saying what it returns"
    body = "\n".join(line.split("--")[0] for line in text.splitlines())
    params = {p: PARAMS[p] for p in set(re.findall(r"\$([a-z_]+)", body))}
    out = query(name, relations, params)
    assert isinstance(out, pa.Table)
