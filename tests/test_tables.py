"""The manifest tables: schema conformance and the Parquet folder round trip."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import vzsql
from vzsql.errors import ExportError, ManifestFormatError
from vzsql.tables import Tables


def small_tables() -> Tables:
    return Tables.from_mapping(
        {
            "sources": pa.table({"source_id": [0], "uri": ["file:///x.nc"], "format": ["hdf5"]}),
            "arrays": pa.table(
                {
                    "array": ["a"],
                    "dims": [["x"]],
                    "shape": [[4]],
                    "chunk_shape": [[2]],
                    "dtype": ["int16"],
                    "fill_value": ["0"],
                    "codecs": [
                        json.dumps([{"name": "bytes", "configuration": {"endian": "little"}}])
                    ],
                    "attrs": ["{}"],
                }
            ),
            "grid": pa.table(
                {
                    "array": ["a", "a"],
                    "dim": [0, 0],
                    "chunk": [0, 1],
                    "start": [0, 2],
                    "length": [2, 2],
                }
            ),
            "chunks": pa.table(
                {
                    "array": ["a", "a"],
                    "index": [[0], [1]],
                    "source_id": [0, 0],
                    "offset": [100, 104],
                    "length": [4, 4],
                }
            ),
        }
    )


def test_save_and_open_round_trip(tmp_path):
    m = vzsql.Manifest(small_tables())
    m.save(tmp_path / "m.vzm")
    back = vzsql.open_manifest(tmp_path / "m.vzm")
    for name in ("sources", "arrays", "grid", "chunks", "groups"):
        assert back.table(name).equals(m.table(name)), name
    assert back.info()["chunks"] == 2


def test_save_refuses_existing_without_overwrite(tmp_path):
    m = vzsql.Manifest(small_tables())
    m.save(tmp_path / "m.vzm")
    with pytest.raises(ExportError):
        m.save(tmp_path / "m.vzm")
    m.save(tmp_path / "m.vzm", overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_format_version_is_refused(tmp_path):
    vzsql.Manifest(small_tables()).save(tmp_path / "m.vzm")
    header = tmp_path / "m.vzm" / "manifest.json"
    doc = json.loads(header.read_text())
    doc["format_version"] = 99
    header.write_text(json.dumps(doc))
    with pytest.raises(ManifestFormatError, match="version 99"):
        vzsql.open_manifest(tmp_path / "m.vzm")


def test_conform_rejects_missing_required_column():
    with pytest.raises(ManifestFormatError, match="array"):
        Tables.from_mapping({"grid": pa.table({"dim": [0]})})


def test_sql_binds_parameters_with_quotes():
    m = vzsql.Manifest(small_tables())
    rows = m.sql("SELECT count(*) FROM chunks WHERE array = $a", {"a": "a' OR '1'='1"}).fetchall()
    assert rows == [(0,)]
    assert m.sql("SELECT count(*) FROM chunks WHERE array = $a", {"a": "a"}).fetchall() == [(2,)]


def test_user_sql_cannot_write_files(tmp_path):
    m = vzsql.Manifest(small_tables())
    with pytest.raises(vzsql.VzsqlError):
        m.sql(f"COPY chunks TO '{tmp_path / 'x.csv'}'").fetchall()
    assert not (tmp_path / "x.csv").exists()


def test_polars_and_arrow_views():
    m = vzsql.Manifest(small_tables())
    assert m.to_polars("chunks").height == 2
    assert m.table("sources").num_rows == 1


def test_array_column_unquoted_and_as_parameter_name():
    m = vzsql.Manifest(small_tables())
    rows = m.sql(
        "SELECT array, count(*) AS n FROM chunks WHERE array = $array GROUP BY array",
        {"array": "a"},
    ).fetchall()
    assert rows == [("a", 2)]
    assert m.sql("SELECT ARRAY[1, 2] AS x, 'array' AS s").fetchall() == [([1, 2], "array")]
