"""``vzsql.from_icechunk``: an exported manifest imports back identical (anti-joins empty);
native chunks written by zarr come back as inline bytes; tags and snapshots select history."""

from __future__ import annotations

import json
from pathlib import Path

import icechunk as ic
import numpy as np
import pyarrow as pa
import pytest
import zarr
from fixtures_icechunk import concat_time, scanned, write_day

import vzsql
from vzsql.catalog import connect
from vzsql.errors import SourceError
from vzsql.tables import TABLE_NAMES, Tables

JSON_COLUMNS = {"codecs", "attrs", "attr_dtypes", "fill_value", "dtype"}


def canonical(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:  # plain dtype names such as float32
        return text


def normalised(tables: Tables) -> Tables:
    """JSON text columns re-serialised canonically (key order and spacing are not data)."""
    out = {}
    for name in TABLE_NAMES:
        t = getattr(tables, name)
        for col in sorted(JSON_COLUMNS & set(t.column_names)):
            values = pa.array([canonical(v) for v in t[col].to_pylist()], pa.string())
            t = t.set_column(t.column_names.index(col), col, values)
        out[name] = t
    return Tables.from_mapping(out)


def anti_joins(a: Tables, b: Tables) -> dict[str, int]:
    """Rows of each table present on one side only (both directions), by all columns."""
    con = connect(Tables.empty())
    out = {}
    for name in TABLE_NAMES:
        con.register("a", getattr(a, name))
        con.register("b", getattr(b, name))
        cols = ", ".join(f'"{c}"' for c in getattr(a, name).column_names)
        n = con.execute(
            f"SELECT count(*) FROM ((SELECT {cols} FROM a EXCEPT ALL SELECT {cols} FROM b) "
            f"UNION ALL (SELECT {cols} FROM b EXCEPT ALL SELECT {cols} FROM a))"
        ).fetchall()[0][0]
        out[name] = int(n)
    return out


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    return [
        write_day(tmp_path / "a.nc", 0, nt=2, chunks=(2, 2, 3)),
        write_day(tmp_path / "b.nc", 2, nt=3, chunks=(3, 2, 3)),
    ]


def test_import_of_an_export_is_identical(tmp_path: Path, files: list[Path]) -> None:
    m = scanned(files[0])
    m.to_icechunk(tmp_path / "repo")
    back = vzsql.from_icechunk(tmp_path / "repo", branch="main")
    assert anti_joins(normalised(m.tables), normalised(back.tables)) == dict.fromkeys(
        TABLE_NAMES, 0
    )
    assert (
        back.table("chunks").filter(pa.compute.is_valid(back.table("chunks")["data"])).num_rows == 1
    )


def test_rectilinear_manifest_round_trips(tmp_path: Path, files: list[Path]) -> None:
    m = concat_time([scanned(f) for f in files])
    m.to_icechunk(tmp_path / "repo")
    back = vzsql.from_icechunk(tmp_path / "repo")
    assert anti_joins(normalised(m.tables), normalised(back.tables)) == dict.fromkeys(
        TABLE_NAMES, 0
    )


def test_tag_and_snapshot_select_history(tmp_path: Path, files: list[Path]) -> None:
    first = scanned(files[0])
    snap = first.to_icechunk(tmp_path / "repo", append_dim="time", tag="day-one")
    scanned(files[1]).to_icechunk(tmp_path / "repo", append_dim="time")
    by_tag = vzsql.from_icechunk(tmp_path / "repo", tag="day-one")
    by_snap = vzsql.from_icechunk(tmp_path / "repo", snapshot_id=snap)
    now = vzsql.from_icechunk(tmp_path / "repo")
    for old in (by_tag, by_snap):
        assert anti_joins(normalised(first.tables), normalised(old.tables)) == dict.fromkeys(
            TABLE_NAMES, 0
        )
    assert now.info()["sources"] == 2
    assert now.table("arrays").filter(pa.compute.equal(now.table("arrays")["array"], "t2m"))[
        "shape"
    ][0].as_py() == [5, 4, 5]


def test_native_chunks_written_by_zarr_become_inline_bytes(tmp_path: Path) -> None:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "native")))
    session = repo.writable_session("main")
    root = zarr.group(session.store, attributes={"title": "native"})
    values = np.arange(600, dtype="<i4").reshape(20, 30)
    a = root.create_array("grp/v", shape=values.shape, chunks=(8, 16), dtype="<i4", fill_value=-1)
    a[:] = values
    session.commit("native data")
    m = vzsql.from_icechunk(tmp_path / "native")
    chunks = m.table("chunks")
    assert chunks.num_rows == 3 * 2
    assert chunks["source_id"].null_count == chunks.num_rows  # all bytes, no references
    assert m.info()["sources"] == 0
    # the imported bytes decode to the values zarr wrote: copy them into a Zarr store
    m.to_zarr(tmp_path / "copy.zarr", progress=False)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "copy.zarr", path="grp/v")[:], values)
    groups = {r["group"]: json.loads(r["attrs"]) for r in m.table("groups").to_pylist()}
    assert groups[""] == {"title": "native"} and "grp" in groups
    grid = m.sql("SELECT dim, chunk, start, length FROM grid ORDER BY dim, chunk").fetchall()
    assert grid == [(0, 0, 0, 8), (0, 1, 8, 8), (0, 2, 16, 4), (1, 0, 0, 16), (1, 1, 16, 14)]


def test_foreign_virtual_refs_import_without_scan_record(tmp_path: Path, files: list[Path]) -> None:
    """Refs written by plain icechunk calls (no vzsql commit metadata) still import."""
    m = scanned(files[0])
    m.to_icechunk(tmp_path / "repo")
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    session.commit("someone else's commit", allow_empty=True)
    storage = ic.local_filesystem_storage(str(tmp_path / "bare"))
    bare = ic.Repository.create(storage, config=repo.config)
    s = bare.writable_session("main")
    zarr.group(s.store)
    src = s.store
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    doc = sync(repo.readonly_session("main").store.get("lat/zarr.json", default_buffer_prototype()))
    assert doc is not None
    sync(src.set("lat/zarr.json", doc))
    lat = (
        m.table("chunks").filter(pa.compute.equal(m.table("chunks")["array"], "lat")).to_pylist()[0]
    )
    src.set_virtual_ref(
        "lat/c/0", files[0].resolve().as_uri(), offset=lat["offset"], length=lat["length"]
    )
    s.commit("bare refs")
    back = vzsql.from_icechunk(tmp_path / "bare")
    src_row = back.table("sources").to_pylist()[0]
    assert src_row["uri"] == files[0].resolve().as_uri()
    assert src_row["format"] == "unknown" and src_row["etag"] is None
    row = back.table("chunks").to_pylist()[0]
    assert (row["offset"], row["length"]) == (lat["offset"], lat["length"])


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Icechunk repository"):
        vzsql.from_icechunk(tmp_path / "nowhere")
