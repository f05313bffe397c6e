"""Saved manifests (format version 2): round trips give back identical tables, v1 still reads.

Real manifests (HDF5 layouts with inline, 0-d and compact arrays; netCDF-4; netCDF3 record
variables, whose chunks interleave in the file), synthetic ones split into several files
or with rows out of storage order, and hypothesis-generated chunk tables with nulls,
ragged and null indices.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vzsql
from benchmarks.synthetic import synthetic_tables
from tests import fixtures_hdf5 as fx
from tests.fixtures_netcdf3 import write_mixed
from vzsql.errors import ManifestFormatError
from vzsql.persist import load_tables, save_tables
from vzsql.tables import TABLE_NAMES, Tables


def assert_same(a: Tables, b: Tables) -> None:
    for name in TABLE_NAMES:
        left, right = getattr(a, name), getattr(b, name)
        assert left.schema == right.schema, name
        assert left.equals(right), name


def round_trip(tables: Tables, path: Path, **kw: int) -> Tables:
    save_tables(tables, path, overwrite=True, **kw)
    return load_tables(path)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tables]:
    folder = tmp_path_factory.mktemp("real")
    return {
        "layouts": vzsql.scan(fx.write_h5_layouts(folder)).tables,
        "nc4": vzsql.scan(fx.write_nc_basic(folder)).tables,
        "compression": vzsql.scan(fx.write_nc_compression(folder)).tables,
        "nc3": vzsql.scan(write_mixed(folder / "mixed.nc", "NETCDF3_64BIT_OFFSET")).tables,
    }


@pytest.mark.parametrize("name", ["layouts", "nc4", "compression", "nc3"])
def test_real_manifests_round_trip(real: dict[str, Tables], name: str, tmp_path: Path) -> None:
    tables = real[name]
    back = round_trip(tables, tmp_path / "m.vzm")
    assert_same(tables, back)
    header = json.loads((tmp_path / "m.vzm" / "manifest.json").read_text())
    assert header["format_version"] == 2
    if name == "layouts":  # inline chunks and 0-d arrays made it through
        chunks = back.chunks.to_pylist()
        assert any(r["data"] is not None for r in chunks)
        assert any(r["index"] == [] for r in chunks)


def test_layouts_values_after_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    path = fx.write_h5_layouts(folder)
    back = round_trip(vzsql.scan(path).tables, tmp_path / "m.vzm")
    assert fx.assert_matches_h5py(back, path)


def test_synthetic_split_into_files(tmp_path: Path) -> None:
    tables = synthetic_tables(20_000)
    back = round_trip(tables, tmp_path / "m.vzm", rows_per_file=3_000)
    assert_same(tables, back)
    files = sorted((tmp_path / "m.vzm" / "chunks").glob("part-*.parquet"))
    assert len(files) == -(-tables.chunks.num_rows // 3_000)


def test_rows_out_of_storage_order_come_back_in_order(tmp_path: Path) -> None:
    tables = synthetic_tables(20_000)
    rng = np.random.default_rng(3)
    shuffled = tables.with_tables(
        chunks=tables.chunks.take(pa.array(rng.permutation(tables.chunks.num_rows)))
    )
    back = round_trip(shuffled, tmp_path / "m.vzm", rows_per_file=7_000)
    assert_same(shuffled, back)
    stored = pq.read_table(tmp_path / "m.vzm" / "chunks" / "part-00000.parquet")
    assert "row" in stored.column_names and "offset_gap" in stored.column_names


def test_synthetic_is_small_on_disk(tmp_path: Path) -> None:
    tables = synthetic_tables(300_000)
    save_tables(tables, tmp_path / "m.vzm")
    size = sum(f.stat().st_size for f in (tmp_path / "m.vzm").rglob("*") if f.is_file())
    assert size / tables.chunks.num_rows <= 3.0


def test_extra_columns_kept(tmp_path: Path) -> None:
    tables = synthetic_tables(5_000)
    chunks = tables.chunks.append_column("note", pa.array(["x"] * tables.chunks.num_rows))
    tables = Tables(**{**tables.as_dict(), "chunks": chunks})
    assert_same(tables, round_trip(tables, tmp_path / "m.vzm"))


def test_empty_manifest(tmp_path: Path) -> None:
    assert_same(Tables.empty(), round_trip(Tables.empty(), tmp_path / "m.vzm"))


def test_version_1_folder_still_reads(real: dict[str, Tables], tmp_path: Path) -> None:
    tables = real["layouts"]
    dest = tmp_path / "v1.vzm"
    dest.mkdir()
    for name in TABLE_NAMES:
        pq.write_table(getattr(tables, name), dest / f"{name}.parquet", compression="zstd")
    header = {"format": "vzsql-manifest", "format_version": 1, "rows": {}}
    (dest / "manifest.json").write_text(json.dumps(header))
    assert_same(tables, load_tables(dest))


def test_chunk_file_names_are_checked(tmp_path: Path) -> None:
    save_tables(synthetic_tables(2_000), tmp_path / "m.vzm")
    header_path = tmp_path / "m.vzm" / "manifest.json"
    header = json.loads(header_path.read_text())
    header["chunk_files"] = ["../../etc/passwd"]
    header_path.write_text(json.dumps(header))
    with pytest.raises(ManifestFormatError, match="chunk files"):
        load_tables(tmp_path / "m.vzm")


def test_missing_chunk_file_is_a_format_error(tmp_path: Path) -> None:
    save_tables(synthetic_tables(2_000), tmp_path / "m.vzm")
    shutil.rmtree(tmp_path / "m.vzm" / "chunks")
    with pytest.raises(ManifestFormatError, match="part-00000"):
        load_tables(tmp_path / "m.vzm")


# -- hypothesis: any chunk rows, nulls included ----------------------------------------------


@st.composite
def chunk_rows(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 40))
    rows = []
    for _ in range(n):
        inline = draw(st.booleans())
        ndim = draw(st.integers(0, 3))
        rows.append(
            {
                "array": draw(st.sampled_from(["a", "b", "grp/c"])),
                "index": draw(
                    st.one_of(
                        st.none(),
                        st.lists(st.integers(-2, 2**31 - 1), min_size=ndim, max_size=ndim),
                    )
                ),
                "source_id": None if inline else draw(st.one_of(st.none(), st.integers(0, 3))),
                "offset": None if inline else draw(st.one_of(st.none(), st.integers(-5, 2**40))),
                "length": draw(st.one_of(st.none(), st.integers(-1, 2**33))),
                "data": draw(st.binary(max_size=5)) if inline else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=vzsql.tables.CHUNKS_SCHEMA)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=chunk_rows(), per_file=st.integers(1, 50))
def test_any_chunk_rows_round_trip(tmp_path: Path, chunks: pa.Table, per_file: int) -> None:
    tables = Tables(**{**Tables.empty().as_dict(), "chunks": chunks})
    back = round_trip(tables, tmp_path / "h.vzm", rows_per_file=per_file)
    assert back.chunks.equals(chunks)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=chunk_rows(), per_file=st.integers(1, 50))
def test_any_chunk_rows_saved_from_duckdb_storage(
    tmp_path: Path, chunks: pa.Table, per_file: int
) -> None:
    """Rows in DuckDB storage are saved a file at a time (in order, or sorted by DuckDB):
    the same files as from Arrow, and loading gives the rows back in their order."""
    tables = Tables(**{**Tables.empty().as_dict(), "chunks": chunks})
    duck = vzsql.Manifest(tables, storage="duckdb")
    for name in ("a.vzm", "b.vzm"):
        shutil.rmtree(tmp_path / name, ignore_errors=True)
    save_tables(tables, tmp_path / "a.vzm", rows_per_file=per_file)
    save_tables(tables, tmp_path / "b.vzm", rows_per_file=per_file, resident=duck.resident)
    files = sorted(p.name for p in (tmp_path / "a.vzm" / "chunks").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b.vzm" / "chunks").iterdir())
    for f in files:
        a = pq.read_table(tmp_path / "a.vzm" / "chunks" / f)
        assert a.equals(pq.read_table(tmp_path / "b.vzm" / "chunks" / f)), f
    assert load_tables(tmp_path / "b.vzm").chunks.equals(chunks)
