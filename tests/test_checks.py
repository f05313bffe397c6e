"""Consistency checks: each query in queries/checks/ is made to fire by breaking a manifest."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import vzsql
from tests.fixtures_series import MONTHS, daily_piece
from vzsql.errors import CheckFailedError, InconsistentConcatError
from vzsql.ops.checks import check_pieces


@pytest.fixture
def good(tmp_path):
    parts, start = [], 0
    for i, n in enumerate(MONTHS):
        t, _ = daily_piece(tmp_path / f"p{i}.raw", start, n)
        parts.append(vzsql.Manifest(t))
        start += n
    return vzsql.concat(parts, "time"), tmp_path


def kinds(problems: pa.Table) -> set[str]:
    return set(problems["kind"].to_pylist())


def with_chunks(m, chunks):
    return m.replace(chunks=chunks, validate=False)


def test_good_manifest_has_no_problems(good):
    m, _ = good
    assert m.check().num_rows == 0
    m.check(strict=True)


def test_source_missing(good):
    m, d = good
    os.remove(d / "p1.raw")
    p = m.check()
    assert kinds(p) >= {"source_missing"}
    assert any(s.endswith("p1.raw") for s in p["source"].to_pylist())
    with pytest.raises(CheckFailedError) as e:
        m.check(strict=True)
    assert e.value.problems.num_rows >= 1


def test_source_changed(good):
    m, d = good
    with open(d / "p2.raw", "ab") as f:
        f.write(b"more bytes")
    p = m.check()
    row = p.filter(pc.equal(p["kind"], "source_changed")).to_pylist()[0]
    assert row["source"].endswith("p2.raw") and "size" in row["detail"]


def test_range_past_eof(good):
    m, d = good
    with open(d / "p0.raw", "r+b") as f:
        f.truncate(50)
    assert "range_past_eof" in kinds(m.check())
    # recorded size, without looking at files
    ch = m.table("chunks")
    bad = ch.set_column(3, "offset", pc.add(ch["offset"], 10_000))
    assert "range_past_eof" in kinds(with_chunks(m, bad).check(stat=False))


def test_nonpositive_length(good):
    m, _ = good
    ch = m.table("chunks")
    lengths = ch["length"].to_pylist()
    lengths[0] = 0
    bad = ch.set_column(4, "length", pa.array(lengths, pa.int64()))
    assert "nonpositive_length" in kinds(with_chunks(m, bad).check(stat=False))


def test_duplicate_chunk_keys_and_overlap(good):
    m, _ = good
    ch = m.table("chunks")
    virtual = ch.filter(pc.is_valid(ch["source_id"]))
    bad = pa.concat_tables([ch, virtual.slice(0, 1)])
    assert {"duplicate_chunk_key", "overlapping_ranges"} <= kinds(
        with_chunks(m, bad).check(stat=False)
    )


def test_overlapping_ranges_of_different_chunks(good):
    m, _ = good
    ch = m.table("chunks")
    temp = pc.equal(ch["array"], "temp")
    offsets = ch["offset"].to_pylist()
    i, j = [k for k, t in enumerate(temp.to_pylist()) if t][:2]
    offsets[j] = offsets[i] + 1  # chunk j now starts inside chunk i (same file p0)
    bad = ch.set_column(3, "offset", pa.array(offsets, pa.int64()))
    p = with_chunks(m, bad).check(stat=False)
    assert "overlapping_ranges" in kinds(p)


def test_index_outside_grid(good):
    m, _ = good
    row = (
        m.table("chunks")
        .filter(pc.equal(m.table("chunks")["array"], "temp"))
        .slice(0, 1)
        .to_pylist()[0]
    )
    row["index"] = [99, 0]
    bad = pa.concat_tables(
        [m.table("chunks"), pa.Table.from_pylist([row], schema=m.table("chunks").schema)]
    )
    assert "index_outside_grid" in kinds(with_chunks(m, bad).check(stat=False))


def test_missing_chunk_is_info(good):
    m, _ = good
    ch = m.table("chunks")
    keep = pc.invert(
        pc.and_(pc.equal(ch["array"], "temp"), pc.equal(pc.list_element(ch["index"], 0), 4))
    )
    p = with_chunks(m, ch.filter(keep)).check(stat=False)
    assert p.to_pylist() == [
        {
            "kind": "missing_chunk",
            "severity": "info",
            "array": "temp",
            "chunk": [4, 0],
            "source": None,
            "detail": "no chunk: reads as the fill value",
        }
    ]
    with_chunks(m, ch.filter(keep)).check(strict=True, stat=False)  # info only: no raise


def test_unknown_source_and_grid_inconsistent(good):
    m, _ = good
    ch = m.table("chunks")
    sid = ch["source_id"].to_pylist()
    sid[1] = 77
    p = with_chunks(m, ch.set_column(2, "source_id", pa.array(sid, pa.int32()))).check(stat=False)
    assert "unknown_source" in kinds(p)
    g = m.table("grid")
    lengths = g["length"].to_pylist()
    lengths[0] += 1
    bad = m.replace(grid=g.set_column(4, "length", pa.array(lengths, pa.int64())), validate=False)
    assert "grid_inconsistent" in kinds(bad.check(stat=False))


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("units", "degC"),
        ("scale_factor", 2.0),
        ("add_offset", 1.0),
        ("_FillValue", -1.0),
        ("calendar", "noleap"),
    ],
)
def test_piece_disagreement_in_cf_attributes(tmp_path, attr, value):
    import json

    a, _ = daily_piece(tmp_path / "a.raw", 0, 10)
    b, _ = daily_piece(tmp_path / "b.raw", 10, 10)
    rows = b.arrays.to_pylist()
    for r in rows:
        if r["array"] == "temp":
            attrs = json.loads(r["attrs"])
            attrs[attr] = value
            r["attrs"] = json.dumps(attrs)
    b = b.with_tables(arrays=pa.Table.from_pylist(rows, schema=b.arrays.schema))
    p = check_pieces([vzsql.Manifest(a), vzsql.Manifest(b)], "time")
    assert kinds(p) == {f"disagree_{attr}"}
    with pytest.raises(InconsistentConcatError, match=attr):
        vzsql.concat([vzsql.Manifest(a), vzsql.Manifest(b)], "time")


@pytest.mark.parametrize("column", ["dtype", "codecs", "fill_value", "dims"])
def test_piece_disagreement_in_metadata(tmp_path, column):
    a, _ = daily_piece(tmp_path / "a.raw", 0, 10)
    b, _ = daily_piece(tmp_path / "b.raw", 10, 10)
    new = {
        "dtype": "float64",
        "codecs": '[{"name":"bytes","configuration":{"endian":"big"}}]',
        "fill_value": "1.0",
        "dims": ["time", "y"],
    }[column]
    rows = b.arrays.to_pylist()
    for r in rows:
        if r["array"] == "temp":
            r[column] = new
    b = b.with_tables(arrays=pa.Table.from_pylist(rows, schema=b.arrays.schema))
    p = check_pieces([vzsql.Manifest(a), vzsql.Manifest(b)], "time")
    assert f"disagree_{column}" in kinds(p)
    assert all(s.endswith("b.raw") for s in p["source"].to_pylist())


def test_replace_validates(good):
    m, _ = good
    ch = m.table("chunks")
    dropped = m.replace(chunks=ch.filter(pc.not_equal(ch["array"], "x")))
    assert "x" not in set(dropped.table("chunks")["array"].to_pylist())
    bad = ch.set_column(3, "offset", pc.add(ch["offset"], 1_000_000))
    with pytest.raises(CheckFailedError, match="range_past_eof"):
        m.replace(chunks=bad)
    with pytest.raises(vzsql.ManifestFormatError):
        m.replace(chunks=ch.drop_columns(["array"]))
    import polars as pl

    df = m.to_polars("sources").with_columns(pl.col("uri").str.replace("file://", "file://"))
    assert m.replace(sources=df).table("sources").num_rows == 3


def test_rename_sources(good):
    m, d = good
    moved = m.rename_sources(d.as_uri(), "s3://bucket/archive")
    uris = moved.table("sources")["uri"].to_pylist()
    assert all(u.startswith("s3://bucket/archive/p") for u in uris)
    assert moved.table("chunks").equals(m.table("chunks"))
    assert "source_missing" in kinds(moved.check(checks=["source_missing"]))
