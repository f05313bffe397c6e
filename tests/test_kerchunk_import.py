"""kerchunk import: exports come back as the same manifest; kerchunk's own refs read right.

Identity is checked with DuckDB anti-joins over the tables (sources compared by URI, JSON
columns compared as parsed JSON). ``attr_dtypes`` and ``scanned_at`` are not in kerchunk
references and are left out of the comparison.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import xarray as xr

import vzsql
from tests.fixtures_kerchunk import manifest, sample, tiny_tables  # noqa: F401
from vzsql.errors import ReferenceFormatError
from vzsql.manifest import Manifest

# rows of the left manifest with no equal row in the right one
ANTI_JOINS = {
    "sources": "SELECT uri, format, size, mtime, etag FROM a.sources "
    "EXCEPT SELECT uri, format, size, mtime, etag FROM b.sources",
    "arrays": 'SELECT "array", dims, shape, chunk_shape, dtype, json(fill_value), json(codecs), '
    'json(attrs) FROM a.arrays EXCEPT SELECT "array", dims, shape, chunk_shape, dtype, '
    "json(fill_value), json(codecs), json(attrs) FROM b.arrays",
    "grid": "SELECT * FROM a.grid EXCEPT SELECT * FROM b.grid",
    "chunks": 'SELECT c."array", c."index", s.uri, c."offset", c.length, c.data FROM a.chunks c '
    'LEFT JOIN a.sources s USING (source_id) EXCEPT SELECT c."array", c."index", s.uri, '
    'c."offset", c.length, c.data FROM b.chunks c LEFT JOIN b.sources s USING (source_id)',
    "groups": 'SELECT "group", json(attrs) FROM a.groups EXCEPT '
    'SELECT "group", json(attrs) FROM b.groups',
}


def assert_same_manifest(a: Manifest, b: Manifest) -> None:
    con = duckdb.connect()
    for prefix, m in (("a", a), ("b", b)):
        con.execute(f"CREATE SCHEMA {prefix}")
        for name in ("sources", "arrays", "grid", "chunks", "groups"):
            con.register(f"{prefix}_{name}", m.table(name))
            con.execute(f"CREATE VIEW {prefix}.{name} AS SELECT * FROM {prefix}_{name}")
    for name, sql in ANTI_JOINS.items():
        for left, right in (("a", "b"), ("b", "a")):
            q = sql.replace("a.", "L.").replace("b.", "R.")
            q = q.replace("L.", f"{left}.").replace("R.", f"{right}.")
            assert con.sql(q).fetchall() == [], (name, left)
        assert a.table(name).num_rows == b.table(name).num_rows, name


@pytest.mark.parametrize(
    ("fmt", "zarr_format", "name"),
    [("json", 2, "r.json"), ("json", 3, "r3.json"), ("parquet", 2, "r.parq")],
)
def test_export_import_identity(
    manifest: Manifest,  # noqa: F811
    tmp_path: Path,
    fmt: str,
    zarr_format: int,
    name: str,
) -> None:
    out = tmp_path / name
    manifest.to_kerchunk(out, format=fmt, zarr_format=zarr_format, record_size=5)
    back = vzsql.from_kerchunk(out)
    assert_same_manifest(manifest, back)
    assert (
        back.table("sources")["etag"].to_pylist() == manifest.table("sources")["etag"].to_pylist()
    )


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_tiny_identity_with_inline_data(tmp_path: Path, fmt: str) -> None:
    m = Manifest(tiny_tables())
    out = tmp_path / f"tiny.{fmt}"
    m.to_kerchunk(out, format=fmt, record_size=3)
    back = vzsql.from_kerchunk(out, check_sources=False)  # the sources are not reachable
    assert back.table("sources")["format"].to_pylist() == ["unknown", "unknown"]

    def uris_only(x: Manifest) -> Manifest:  # what an unreachable source can give back
        src = x.table("sources").select(["source_id", "uri"])
        fmt = pa.array(["?"] * src.num_rows)
        return Manifest(x.tables.with_tables(sources=src.append_column("format", fmt)))

    assert_same_manifest(uris_only(m), uris_only(back))


def test_import_kerchunk_single_hdf5(sample: Path, tmp_path: Path) -> None:  # noqa: F811
    """kerchunk's own output (inline data, base64 and text) reads back the original values."""
    from kerchunk.df import refs_to_dataframe
    from kerchunk.hdf import SingleHdf5ToZarr

    refs = SingleHdf5ToZarr(str(sample), inline_threshold=100).translate()
    path = tmp_path / "k.json"
    path.write_text(json.dumps(refs))
    m = vzsql.from_kerchunk(path)
    inline = m.sql("SELECT array FROM chunks WHERE data IS NOT NULL").fetchall()
    assert ("time",) in inline  # 56 bytes < 100: kerchunk inlined it
    # kerchunk moves _FillValue into the v2 fill_value (xarray's zarr v2 convention), so the
    # imported attributes carry no mask: compare the stored values
    expected = xr.open_dataset(sample, decode_cf=False)
    got = m.to_xarray(decode_cf=False)
    for name in ("air", "cnt", "be", "time", "s"):
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    refs_to_dataframe(refs, str(tmp_path / "k.parq"), record_size=4)
    from_parquet = vzsql.from_kerchunk(tmp_path / "k.parq")
    assert_same_manifest(m, from_parquet)


def test_v0_and_templates_and_gen(tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(bytes(range(256)) * 4)
    zarray = {"chunks": [2], "compressor": None, "dtype": "|u1", "fill_value": 0,
              "filters": None, "order": "C", "shape": [8], "zarr_format": 2}  # fmt: skip
    meta = {".zgroup": '{"zarr_format":2}', "v/.zarray": json.dumps(zarray),
            "v/.zattrs": '{"_ARRAY_DIMENSIONS":["x"]}'}  # fmt: skip
    v0 = dict(meta)
    v0.update({"v/0": [str(src), 0, 2], "v/1": "base64:" + base64.b64encode(b"\x05\x06").decode()})
    (tmp_path / "v0.json").write_text(json.dumps(v0))
    m0 = vzsql.from_kerchunk(tmp_path / "v0.json")
    v1 = {
        "version": 1,
        "templates": {"u": str(src)},
        "refs": {**meta, "v/0": ["{{u}}", 0, 2], "v/1": "\x05\x06"},
        "gen": [{"key": "v/{{i}}", "url": "{{u}}", "offset": "{{o}}", "length": "2",
                 "dimensions": {"i": {"start": 2, "stop": 4}, "o": [10]}}],
    }  # fmt: skip
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    m1 = vzsql.from_kerchunk(tmp_path / "v1.json")
    rows = m1.sql('SELECT "index", "offset", length, data FROM chunks ORDER BY "index"').fetchall()
    assert rows == [([0], 0, 2, None), ([1], None, 2, b"\x05\x06"), ([2], 10, 2, None),
                    ([3], 10, 2, None)]  # fmt: skip
    assert m0.sql("SELECT count(*) FROM chunks").fetchall() == [(2,)]
    assert m1.table("sources")["uri"].to_pylist() == [src.as_uri()]
    assert m1.table("sources")["size"].to_pylist() == [1024]
    # Zarr v2 reading rules (xarray's): .zarray's fill_value 0 is the CF _FillValue
    values = m1.to_xarray()["v"].values
    np.testing.assert_array_equal(values, [np.nan, 1, 5, 6, 10, 11, 10, 11])
    raw = m1.to_xarray(mask_and_scale=False)["v"].values
    np.testing.assert_array_equal(raw, [0, 1, 5, 6, 10, 11, 10, 11])


def _refs_file(tmp_path: Path, refs: dict[str, object], version: bool = True) -> Path:
    meta = {".zgroup": '{"zarr_format":2}', "v/.zattrs": '{"_ARRAY_DIMENSIONS":["x"]}',
            "v/.zarray": json.dumps({"chunks": [2], "compressor": None, "dtype": "<i2",
                                     "fill_value": 0, "filters": None, "order": "C",
                                     "shape": [4], "zarr_format": 2})}  # fmt: skip
    path = tmp_path / "refs.json"
    body = {**meta, **refs}
    path.write_text(json.dumps({"version": 1, "refs": body} if version else body))
    return path


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "small.bin"
    src.write_bytes(b"x" * 100)
    bad = tmp_path / "broken.json"
    bad.write_text('{"version": 1, "refs": {"a": [')
    with pytest.raises(ReferenceFormatError, match="not valid JSON"):
        vzsql.from_kerchunk(bad)
    cases = {
        "byte range ends past the end of the file": {"v/0": [str(src), 90, 20]},
        "unsupported reference URL": {"v/0": ["ftp://host/file.nc", 0, 4]},
        "belongs to no array": {"w/0": [str(src), 0, 4]},
        "does not match the array": {"v/0.1": [str(src), 0, 4]},
        "must be integers": {"v/0": [str(src), "0", 4]},
        "invalid base64": {"v/0": "base64:!!!"},
    }
    for message, refs in cases.items():
        with pytest.raises(ReferenceFormatError, match=message) as e:
            vzsql.from_kerchunk(_refs_file(tmp_path, refs))
        if message.startswith("byte range"):
            assert e.value.source == src.as_uri() and e.value.array == "v"
            assert e.value.chunk == (0,)
    (tmp_path / "refs.json").write_text('{"version": 7, "refs": {}}')
    with pytest.raises(ReferenceFormatError, match="unknown kerchunk reference version"):
        vzsql.from_kerchunk(tmp_path / "refs.json")
    ok = vzsql.from_kerchunk(_refs_file(tmp_path, {"v/0": [str(src), 96, 4]}, version=False))
    assert ok.sql('SELECT "offset", length FROM chunks').fetchall() == [(96, 4)]
    whole = vzsql.from_kerchunk(_refs_file(tmp_path, {"v/1": [str(src)]}))
    assert whole.sql('SELECT "offset", length FROM chunks').fetchall() == [(0, 100)]


def test_parquet_record_beyond_grid_is_an_error(tmp_path: Path) -> None:
    m = Manifest(tiny_tables())
    out = tmp_path / "t.parq"
    m.to_kerchunk(out, format="parquet", record_size=2)
    import pyarrow.parquet as pq

    t = pq.read_table(out / "label" / "refs.0.parq")  # label has 1 chunk slot
    rows = t.to_pylist()
    rows[1] = {"path": "s3://bucket/x", "offset": 0, "size": 3, "raw": None}
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), out / "label" / "refs.0.parq")
    with pytest.raises(ReferenceFormatError, match="beyond the array's chunk grid"):
        vzsql.from_kerchunk(out, check_sources=False)


def test_kerchunk_made_refs_mask_like_zarr_v2_and_vzsql_exports_keep_dtypes(
    tmp_path: Path,
) -> None:
    """kerchunk moves _FillValue into .zarray: imports mask as xarray's reference reading
    does; a vzsql export carries attribute dtypes, so packed data still decodes to float32."""
    import netCDF4
    import xarray as xr
    from kerchunk.hdf import SingleHdf5ToZarr

    path = tmp_path / "packed.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 6)
        v = ds.createVariable("v", "i2", ("x",), fill_value=np.int16(-1), zlib=True)
        v.scale_factor = np.float32(0.5)
        v[:] = np.ma.masked_array(np.arange(6), mask=[1, 0, 0, 0, 1, 0])
    original = xr.open_dataset(path).load()

    refs = tmp_path / "kerchunk.json"
    refs.write_text(json.dumps(SingleHdf5ToZarr(str(path), inline_threshold=0).translate()))
    via_fsspec = xr.open_dataset(
        "reference://", engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": str(refs)}},
    ).load()  # fmt: skip
    imported = vzsql.from_kerchunk(refs).to_xarray().load()
    np.testing.assert_array_equal(imported["v"].values, via_fsspec["v"].values)
    np.testing.assert_array_equal(imported["v"].values, original["v"].values)

    exported = tmp_path / "vzsql.json"
    vzsql.scan(path).to_kerchunk(exported)
    back = vzsql.from_kerchunk(exported).to_xarray().load()
    xr.testing.assert_identical(back, original)
    assert back["v"].dtype == original["v"].dtype == np.float32
