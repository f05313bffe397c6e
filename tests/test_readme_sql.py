"""The README's "Analytics SQL you can adapt" examples run, and say true things, on a real
combined manifest: the NEMO monthly series shipped in iris-sample-data (three netCDF4
files combined along ``time_counter``).

``README_QUERIES`` holds the example text; if README.md has that section, its ``sql``
blocks must be these queries (whitespace aside), so the README cannot drift from what is
tested here. Each answer is checked against Arrow computations over the same tables.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import vzsql

iris_sample_data = pytest.importorskip("iris_sample_data")
NEMO = sorted((Path(iris_sample_data.__file__).parent / "sample_data" / "NEMO").glob("*.nc"))
README = Path(__file__).resolve().parents[1] / "README.md"

README_QUERIES = {
    "bytes_per_array_and_source": """
SELECT c.array, s.uri, count(*) AS chunks, sum(c.length) AS bytes
FROM chunks c JOIN sources s USING (source_id)
GROUP BY c.array, s.uri
ORDER BY bytes DESC
""",
    "chunk_size_distribution": """
SELECT array, count(*) AS chunks, min(length) AS smallest,
       quantile_disc(length, 0.5) AS median, max(length) AS largest,
       histogram(CAST(pow(2, floor(log2(length))) AS BIGINT)) AS power_of_two_buckets
FROM chunks
WHERE data IS NULL                      -- referenced chunks only, not inline ones
GROUP BY array
ORDER BY array
""",
    "compression_ratio": """
WITH itemsize(dtype, bytes) AS (
    VALUES ('int8', 1), ('uint8', 1), ('int16', 2), ('uint16', 2), ('int32', 4),
           ('uint32', 4), ('float32', 4), ('int64', 8), ('uint64', 8), ('float64', 8)
)
SELECT a.array, count(*) AS chunks, sum(c.length) AS stored_bytes,
       count(*) * list_product(a.chunk_shape) * i.bytes AS decoded_bytes,
       round(decoded_bytes / stored_bytes, 2) AS ratio
FROM arrays a
JOIN chunks c ON c.array = a.array
JOIN itemsize i ON i.dtype = a.dtype
GROUP BY a.array, a.chunk_shape, i.bytes
ORDER BY ratio DESC
""",
    "coverage_gaps_along_time": """
SELECT g.array, g.chunk AS time_chunk, g.start AS first_step, g.length AS steps
FROM grid g
JOIN arrays a ON a.array = g.array
WHERE a.dims[g.dim + 1] = $dim
  AND NOT EXISTS (
      SELECT 1 FROM chunks c
      WHERE c.array = g.array AND c.index[g.dim + 1] = g.chunk
  )
ORDER BY g.array, g.chunk
""",
    "duplicate_refs": """
SELECT s.uri, c."offset", c.length, count(*) AS refs,
       list(c.array || ' ' || CAST(c.index AS VARCHAR)) AS chunks
FROM chunks c JOIN sources s USING (source_id)
GROUP BY s.uri, c."offset", c.length
HAVING count(*) > 1
ORDER BY refs DESC
""",
    "largest_chunks": """
SELECT c.array, c.index, s.uri, c."offset", c.length
FROM chunks c JOIN sources s USING (source_id)
ORDER BY c.length DESC
LIMIT 5
""",
    "files_per_time_range": """
SELECT s.uri, min(g.start) AS first_step, max(g.start + g.length) - 1 AS last_step
FROM chunks c
JOIN sources s USING (source_id)
JOIN arrays a ON a.array = c.array
JOIN grid g ON g.array = c.array AND g.dim = list_position(a.dims, $dim) - 1
           AND g.chunk = c.index[g.dim + 1]
WHERE c.array = $variable
GROUP BY s.uri
ORDER BY first_step
""",
}


def run(m: vzsql.Manifest, name: str, **params: object) -> pa.Table:
    return m.sql(README_QUERIES[name], params or None).to_arrow_table()


@pytest.fixture(scope="module")
def nemo() -> vzsql.Manifest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vzsql.errors.ConcatWarning)
        return vzsql.combine([str(p) for p in NEMO], concat_dim="time_counter")


def tos_chunks(m: vzsql.Manifest) -> pa.Table:
    return m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "tos"))


def test_bytes_per_array_and_source(nemo):
    out = run(nemo, "bytes_per_array_and_source")
    tos = out.filter(pc.equal(out["array"], "tos"))
    assert tos.num_rows == 3  # one row per monthly file
    assert sorted(tos["bytes"].to_pylist()) == sorted(tos_chunks(nemo)["length"].to_pylist())
    # inline chunks have no source: the join leaves them out
    assert sum(int(b) for b in out["bytes"].to_pylist()) == nemo.info()["referenced_bytes"]


def test_chunk_size_distribution(nemo):
    out = {r["array"]: r for r in run(nemo, "chunk_size_distribution").to_pylist()}
    lengths = tos_chunks(nemo)["length"].to_pylist()
    assert out["tos"]["chunks"] == 3
    assert (out["tos"]["smallest"], out["tos"]["largest"]) == (min(lengths), max(lengths))
    assert sum(n for _, n in out["tos"]["power_of_two_buckets"]) == 3


def test_compression_ratio(nemo):
    out = {r["array"]: r for r in run(nemo, "compression_ratio").to_pylist()}
    tos = out["tos"]
    assert tos["decoded_bytes"] == 3 * 330 * 360 * 4  # float32 chunks of (1, 330, 360)
    assert tos["stored_bytes"] == sum(tos_chunks(nemo)["length"].to_pylist())
    assert tos["ratio"] == round(tos["decoded_bytes"] / float(tos["stored_bytes"]), 2) > 1
    stats = nemo.stats()["per_array"].to_pylist()
    assert {r["array"]: r["decoded_bytes"] for r in stats}["tos"] == tos["decoded_bytes"]


def test_coverage_gaps_along_time(nemo):
    assert run(nemo, "coverage_gaps_along_time", dim="time_counter").num_rows == 0
    chunks = nemo.table("chunks")
    february = pc.and_(
        pc.equal(chunks["array"], "tos"), pc.equal(pc.list_element(chunks["index"], 0), 1)
    )
    holed = nemo.replace(chunks=chunks.filter(pc.invert(february)), validate=False)
    gaps = run(holed, "coverage_gaps_along_time", dim="time_counter").to_pylist()
    assert [(g["array"], g["time_chunk"], g["first_step"]) for g in gaps] == [("tos", 1, 1)]


def test_duplicate_refs(nemo):
    assert run(nemo, "duplicate_refs").num_rows == 0
    chunks = nemo.table("chunks")
    first = tos_chunks(nemo).slice(0, 1)
    copy = first.set_column(
        first.schema.get_field_index("index"),
        "index",
        pa.array([[7, 0, 0]], first.schema.field("index").type),
    )
    doubled = nemo.replace(chunks=pa.concat_tables([chunks, copy]), validate=False)
    dup = run(doubled, "duplicate_refs").to_pylist()
    assert len(dup) == 1 and dup[0]["refs"] == 2
    assert dup[0]["offset"] == first["offset"][0].as_py()


def test_largest_chunks(nemo):
    out = run(nemo, "largest_chunks")
    expected = sorted(nemo.table("chunks")["length"].to_pylist(), reverse=True)[:5]
    assert out["length"].to_pylist() == expected


def test_files_per_time_range(nemo):
    out = run(nemo, "files_per_time_range", dim="time_counter", variable="tos").to_pylist()
    assert [(Path(r["uri"]).name, r["first_step"], r["last_step"]) for r in out] == [
        (p.name, i, i) for i, p in enumerate(NEMO)
    ]


def test_readme_section_matches_these_queries():
    text = README.read_text() if README.exists() else ""
    heading = "## Analytics SQL you can adapt"
    if heading not in text:
        pytest.skip("README has no analytics SQL section yet")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    norm = {" ".join(q.split()) for q in README_QUERIES.values()}
    assert blocks and all(" ".join(b.split()) in norm for b in blocks)
