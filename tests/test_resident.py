"""Manifests whose chunk rows live in DuckDB's compressed storage (``storage="duckdb"``).

The same manifest held either way must answer the same: tables, user SQL (the README's
analytics queries), checks, values read through xarray, saved folders and kerchunk output.
It must hold fewer bytes per reference than Arrow, spill under a memory limit, and refuse
statements that would change it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr

import vzsql
from tests.test_readme_sql import NEMO, README_QUERIES
from vzsql.errors import QueryError
from vzsql.resident import ResidentChunks


@pytest.fixture(scope="module")
def nemo() -> vzsql.Manifest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vzsql.errors.ConcatWarning)
        return vzsql.combine([str(p) for p in NEMO], concat_dim="time_counter")


@pytest.fixture(scope="module")
def resident(nemo: vzsql.Manifest) -> vzsql.Manifest:
    return nemo.with_storage("duckdb")


def shuffled(m: vzsql.Manifest, seed: int = 0) -> vzsql.Manifest:
    """The same manifest with its chunk rows in a random order (saving must reorder them)."""
    chunks = m.tables.chunks
    order = np.random.default_rng(seed).permutation(chunks.num_rows)
    return vzsql.Manifest(m.tables.with_tables(chunks=chunks.take(pa.array(order))))


def test_tables_are_the_same(nemo, resident):
    assert resident.storage == "duckdb" and nemo.storage == "arrow"
    for name, table in nemo.tables.as_dict().items():
        assert resident.table(name).equals(table), name


@pytest.mark.parametrize("name", sorted(README_QUERIES))
def test_readme_queries_answer_the_same(nemo, resident, name):
    known = {"dim": "time_counter", "variable": "tos"}
    params = {k: v for k, v in known.items() if f"${k}" in README_QUERIES[name]} or None
    a = nemo.sql(README_QUERIES[name], params).to_arrow_table()
    b = resident.sql(README_QUERIES[name], params).to_arrow_table()
    # the same rows (ties of an ORDER BY may come in either order)
    keys = [
        (c, "ascending") for c in a.column_names if not pa.types.is_nested(a.schema.field(c).type)
    ]
    assert a.sort_by(keys).equals(b.sort_by(keys)), name
    if "gaps" not in name and "duplicate" not in name:  # those find no problem here
        assert a.num_rows > 0


def test_values_read_through_xarray(resident):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = xr.open_mfdataset(
            [str(p) for p in NEMO],
            combine="nested",
            concat_dim="time_counter",
            data_vars="minimal",
            coords="minimal",
            compat="override",
        ).load()
    got = resident.to_xarray().load()
    for name in expected.data_vars:
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)


def test_checks_and_info_agree(nemo, resident):
    assert resident.info() == nemo.info()
    assert resident.check(stat=False).equals(nemo.check(stat=False))
    # with stat: source checks and coordinate values read from the files, per array batch
    assert resident.check().equals(nemo.check())
    assert resident.check(checks=["duplicate_coordinate_values", "source_changed"]).equals(
        nemo.check(checks=["duplicate_coordinate_values", "source_changed"])
    )
    assert resident.stats().keys() == nemo.stats().keys()


def test_save_then_open_in_duckdb_restores_rows_and_order(nemo, tmp_path):
    m = shuffled(nemo)
    m.save(tmp_path / "m.vzm")
    loaded = vzsql.open_manifest(tmp_path / "m.vzm", storage="duckdb")
    assert loaded.storage == "duckdb"
    assert loaded.tables.chunks.equals(m.tables.chunks)  # original (shuffled) row order
    loaded.save(tmp_path / "again.vzm")
    again = vzsql.open_manifest(tmp_path / "again.vzm")
    for name, table in m.tables.as_dict().items():
        assert again.table(name).equals(table), name


@pytest.mark.parametrize("order", ["stored", "shuffled"])
@pytest.mark.parametrize("rows_per_file", [7, 1000])
def test_saving_from_duckdb_writes_the_same_files(
    nemo, tmp_path, monkeypatch, order, rows_per_file
):
    """Saved from DuckDB storage (a file at a time; a reorder is DuckDB's sort), the folder
    has the same files, rows and original positions as saved from Arrow."""
    from vzsql.persist import save_tables
    from vzsql.persist_chunks import storage_order

    m = shuffled(nemo)
    if order == "stored":  # rows already in the saved layout's order: files without `row`
        chunks = m.tables.chunks
        m = vzsql.Manifest(m.tables.with_tables(chunks=chunks.take(storage_order(chunks))))
    duck = m.with_storage("duckdb")
    save_tables(m.tables, tmp_path / "a.vzm", rows_per_file=rows_per_file)

    def refuse(self):
        raise AssertionError("save materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", refuse)
    save_tables(
        duck.tables_without_chunks(),
        tmp_path / "b.vzm",
        rows_per_file=rows_per_file,
        resident=duck.resident,
    )
    duck.save(tmp_path / "c.vzm")
    monkeypatch.undo()
    files = sorted(p.name for p in (tmp_path / "a.vzm" / "chunks").iterdir())
    assert len(files) == -(-m.info()["chunks"] // rows_per_file)
    assert files == sorted(p.name for p in (tmp_path / "b.vzm" / "chunks").iterdir())
    for f in files:
        a = pq.read_table(tmp_path / "a.vzm" / "chunks" / f)
        assert a.equals(pq.read_table(tmp_path / "b.vzm" / "chunks" / f)), f
        assert ("row" in a.column_names) == (order == "shuffled")
    header = json.loads((tmp_path / "b.vzm" / "manifest.json").read_text())
    assert header["rows"]["chunks"] == m.info()["chunks"]
    for path in ("b.vzm", "c.vzm"):
        back = vzsql.open_manifest(tmp_path / path)
        for name, table in m.tables.as_dict().items():
            assert back.table(name).equals(table), (path, name)


def test_kerchunk_output_is_the_same(nemo, resident, tmp_path, monkeypatch):
    """Written from DuckDB storage (rows read by the writers' SQL there, never materialised
    as Arrow), kerchunk JSON and Parquet equal those written from the Arrow manifest."""
    nemo.to_kerchunk(tmp_path / "a.json")
    nemo.to_kerchunk(tmp_path / "a.parq", format="parquet", record_size=7)

    def refuse(self):
        raise AssertionError("the export materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", refuse)
    resident.to_kerchunk(tmp_path / "b.json")
    resident.to_kerchunk(tmp_path / "b.parq", format="parquet", record_size=7)
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a.parq") for p in (tmp_path / "a.parq").rglob("*.*"))
    assert len(files) > 3
    assert files == sorted(
        p.relative_to(tmp_path / "b.parq") for p in (tmp_path / "b.parq").rglob("*.*")
    )
    for f in files:
        if f.name == ".zmetadata":
            assert (tmp_path / "a.parq" / f).read_text() == (tmp_path / "b.parq" / f).read_text()
        else:
            assert pq.read_table(tmp_path / "a.parq" / f).equals(
                pq.read_table(tmp_path / "b.parq" / f)
            ), f


def test_operations_on_resident_manifests(nemo, resident):
    a = nemo.isel(time_counter=slice(1, 3))
    b = resident.isel(time_counter=slice(1, 3))
    assert b.tables.chunks.equals(a.tables.chunks)
    pieces = [vzsql.scan(str(p)).with_storage("duckdb") for p in NEMO]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vzsql.errors.ConcatWarning)
        joined = vzsql.concat(pieces, "time_counter")
    assert joined.tables.chunks.num_rows == nemo.tables.chunks.num_rows
    assert (
        joined.check(stat=False)
        .filter(pa.compute.equal(joined.check(stat=False)["severity"], "error"))
        .num_rows
        == 0
    )


@pytest.mark.parametrize(
    "indexers",
    [
        {"time": slice(100, 200)},
        {"time": slice(3000, None), "lat": slice(64, 192)},
        {"lon": slice(0, 64)},
    ],
)
def test_isel_of_a_manifest_in_duckdb_reads_only_the_selected_rows(indexers, monkeypatch):
    """isel on DuckDB storage drops the rows outside the selected chunk ranges in DuckDB
    (never materialising every row as Arrow); the result equals isel over Arrow."""
    arrow = synthetic(200_000)
    duck = arrow.with_storage("duckdb")
    expected = arrow.isel(**indexers)

    def refuse(self):
        raise AssertionError("isel materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", refuse)
    got = duck.isel(**indexers)
    monkeypatch.undo()
    assert 0 < got.tables.chunks.num_rows < arrow.tables.chunks.num_rows
    for name, table in expected.tables.as_dict().items():
        assert got.table(name).equals(table), name


def test_sel_of_a_manifest_in_duckdb_reads_only_the_coordinate(tmp_path, monkeypatch):
    """sel reads the coordinate's rows from DuckDB, then selects as isel does."""
    from fixtures_icechunk import write_day

    days = [write_day(tmp_path / f"d{d}.nc", d) for d in range(4)]
    arrow = vzsql.scan([str(p) for p in days])
    duck = arrow.with_storage("duckdb")
    times = arrow.to_xarray().time.values
    want = arrow.sel(time=slice(times[2], times[5]))

    def refuse(self):
        raise AssertionError("sel materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", refuse)
    got = duck.sel(time=slice(times[2], times[5]))
    monkeypatch.undo()
    assert got.info()["chunks"] < arrow.info()["chunks"]
    for name, table in want.tables.as_dict().items():
        assert got.table(name).equals(table), name
    ref = xr.open_mfdataset(days, combine="by_coords").isel(time=slice(2, 6)).load()
    np.testing.assert_array_equal(got.to_xarray().t2m.values, ref.t2m.values)


def synthetic(n: int) -> vzsql.Manifest:
    from benchmarks.synthetic import synthetic_tables

    return vzsql.Manifest(synthetic_tables(n))


def test_fewer_bytes_per_reference_than_arrow():
    m = synthetic(400_000)
    refs = m.tables.chunks.num_rows
    arrow = m.memory_bytes() / refs
    duck = m.with_storage("duckdb").memory_bytes() / refs
    assert arrow > 40
    assert duck <= 24, duck
    assert duck < arrow / 2


def test_spills_to_the_temporary_directory_beyond_the_memory_limit(tmp_path):
    m = synthetic(2_000_000)
    query = 'SELECT "array", count(*), sum(length), max("offset") FROM chunks GROUP BY 1 ORDER BY 1'
    expected = m.sql(query).fetchall()
    small = m.with_storage("duckdb", memory_limit="24MB", temp_directory=str(tmp_path))
    assert small.sql(query).fetchall() == expected
    in_memory, spilled = small._resident.memory_bytes()  # type: ignore[union-attr]
    assert spilled > 0 and in_memory <= 24 * 2**20
    assert any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM chunks",
        "DROP TABLE resident.chunks",
        "UPDATE resident.chunks SET length = 0",
        "SELECT 1; INSERT INTO resident.chunks SELECT * FROM resident.chunks",
        "ATTACH ':memory:' AS other",
    ],
)
def test_statements_that_change_the_manifest_are_refused(resident, statement):
    before = resident.info()
    with pytest.raises(QueryError, match="read-only"):
        resident.sql(statement)
    assert resident.info() == before


def test_bound_parameters_with_quotes(resident):
    q = "SELECT count(*) FROM chunks WHERE array = $a"
    assert resident.sql(q, {"a": "tos'; DROP TABLE chunks; --"}).fetchall() == [(0,)]
    assert resident.sql(q, {"a": "tos"}).fetchall()[0][0] > 0


def test_arrow_tables_are_materialised_only_while_held(resident):
    first = resident.tables.chunks
    assert resident.tables.chunks is first  # shared while somebody holds it
    del first
    assert resident.tables.chunks.num_rows == resident.info()["chunks"]


def test_a_memory_limit_too_small_is_a_clear_error(tmp_path):
    m = synthetic(1_000_000)
    with pytest.raises(vzsql.errors.StorageError, match="could not store"):
        m.with_storage("duckdb", memory_limit="2MB", temp_directory=str(tmp_path))


def test_unknown_storage_is_refused(nemo, tmp_path):
    with pytest.raises(ValueError, match="storage"):
        nemo.with_storage("sqlite")  # type: ignore[arg-type]
    nemo.save(tmp_path / "m.vzm")
    with pytest.raises(ValueError, match="storage"):
        vzsql.open_manifest(tmp_path / "m.vzm", storage="disk")  # type: ignore[arg-type]


def test_auto_storage_holds_large_saved_manifests_in_duckdb(nemo, tmp_path, monkeypatch):
    """``open_manifest`` (storage="auto", the default) picks DuckDB storage above
    ``AUTO_DUCKDB_ROWS`` chunk rows, read from the saved header; Arrow below."""
    nemo.save(tmp_path / "m.vzm")
    rows = nemo.info()["chunks"]
    assert vzsql.open_manifest(tmp_path / "m.vzm").storage == "arrow"
    monkeypatch.setattr(vzsql.manifest, "AUTO_DUCKDB_ROWS", rows - 1)
    big = vzsql.open_manifest(tmp_path / "m.vzm")
    assert big.storage == "duckdb"
    assert big.table("chunks").equals(nemo.table("chunks"))
    assert vzsql.open_manifest(tmp_path / "m.vzm", storage="arrow").storage == "arrow"
    monkeypatch.setattr(vzsql.manifest, "AUTO_DUCKDB_ROWS", rows)
    assert vzsql.open_manifest(tmp_path / "m.vzm").storage == "arrow"


def test_empty_manifest_in_duckdb(tmp_path: Path):
    m = vzsql.Manifest(vzsql.Tables.empty(), storage="duckdb")
    assert m.info()["chunks"] == 0
    m.save(tmp_path / "e.vzm")
    assert vzsql.open_manifest(tmp_path / "e.vzm", storage="duckdb").info()["chunks"] == 0


def test_cli_sql_with_duckdb_storage(nemo, tmp_path):
    from tests.fixtures_cli import run_vzsql

    nemo.save(tmp_path / "m.vzm")
    query = 'SELECT "array", count(*) AS n FROM chunks GROUP BY 1 ORDER BY 1'
    out = {}
    for storage in ("arrow", "duckdb"):
        r = run_vzsql("sql", str(tmp_path / "m.vzm"), query, "-f", "csv", "--storage", storage)
        assert r.returncode == 0, r.stderr
        out[storage] = r.stdout
    assert out["arrow"] == out["duckdb"] and "tos" in out["duckdb"]
    r = run_vzsql("sql", str(tmp_path / "m.vzm"), "DELETE FROM chunks", "--storage", "duckdb")
    assert r.returncode != 0 and "read-only" in r.stderr


@pytest.mark.parametrize("batch_rows", [1, 2, 5, 777])
def test_loading_in_batches_equals_loading_whole_files(nemo, tmp_path, batch_rows):
    """Decoding a stored file batch by batch (carrying byte runs across batches) gives the
    rows whole-file decoding gives; loading into DuckDB uses it."""
    from vzsql.persist import load_tables
    from vzsql.persist_chunks import iter_chunk_files

    pieces = [synthetic(3_000), shuffled(nemo, seed=batch_rows)]
    for i, m in enumerate(pieces):
        folder = tmp_path / f"m{i}.vzm"
        m.save(folder)
        files = sorted(p.name for p in (folder / "chunks").glob("part-*.parquet"))
        whole = list(iter_chunk_files(folder / "chunks", files))
        batched = list(iter_chunk_files(folder / "chunks", files, batch_rows))
        assert pa.concat_tables([t for t, _ in batched]).equals(
            pa.concat_tables([t for t, _ in whole])
        )
        rows = [r for _, r in batched]
        if whole[0][1] is not None:
            assert np.array_equal(np.concatenate(rows), whole[0][1])
        loaded = vzsql.open_manifest(folder, storage="duckdb")
        assert loaded.tables.chunks.equals(load_tables(folder).chunks)


@pytest.mark.parametrize("storage", ["arrow", "duckdb"])
def test_manifests_pickle_after_queries(nemo, storage):
    """A manifest whose connection is open (after sql/info) pickles for process pools and
    dask workers; it comes back with the same storage, tables and allow-list."""
    import pickle

    m = nemo.with_storage(storage)
    m.allow = nemo.allow
    before = m.sql("SELECT count(*) FROM chunks").fetchall()
    again = pickle.loads(pickle.dumps(m))
    assert again.storage == storage
    assert again.sql("SELECT count(*) FROM chunks").fetchall() == before
    for name, table in nemo.tables.as_dict().items():
        assert again.table(name).equals(table), name
    assert again.allow == m.allow
