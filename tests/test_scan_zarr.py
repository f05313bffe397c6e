"""Zarr v2/v3 stores as sources: the manifest reads the same values as ``zarr.open``.

Stores are written with zarr itself (v2 with filters/compressors/F order/big-endian/strings,
v3 with codecs, sharding, nested groups, missing chunks), scanned, materialised into a new
Zarr v3 folder from the manifest alone and compared array by array with the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import numcodecs
import numpy as np
import pyarrow.compute as pc
import pytest
import zarr
from fixtures_netcdf3 import materialise

import vzsql
from vzsql.errors import CorruptSourceError, SourceError
from vzsql.scanners import detect_format
from vzsql.scanners.zarr import scan_zarr
from vzsql.tables import Tables

RNG = np.random.default_rng(3)


def assert_same_arrays(original: Path, tables: Tables, tmp_path: Path) -> None:
    src = zarr.open_group(original, mode="r")
    dst = zarr.open_group(materialise(tables, tmp_path / "out.zarr"), mode="r", zarr_format=3)
    names = {p for p, n in src.members(max_depth=None) if isinstance(n, zarr.Array)}
    assert names == set(tables.arrays["array"].to_pylist())
    for name in names:
        a, b = src[name], dst[name]
        assert a.shape == b.shape, name
        if a.dtype.kind in "iufc":
            assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("="), name
        else:
            assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(b[...], a[...], err_msg=name)
        expected_attrs = dict(a.attrs)
        expected_attrs.pop("_ARRAY_DIMENSIONS", None)
        assert dict(b.attrs) == expected_attrs


def _write_v2(path: Path) -> Path:
    g = zarr.open_group(path, mode="w", zarr_format=2)
    g.attrs["title"] = "v2 store"
    a = g.create_array(
        "zlib_delta_f",
        shape=(9, 7),
        chunks=(4, 3),
        dtype=">i4",
        compressors=numcodecs.Zlib(level=1),
        filters=[numcodecs.Delta(dtype=">i4")],
        order="F",
        fill_value=None,
    )
    a[:] = RNG.integers(-1000, 1000, (9, 7))
    a.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
    a.attrs["units"] = "K"
    b = g.create_array(
        "blosc_f4",
        shape=(10, 10),
        chunks=(3, 4),
        dtype="<f4",
        compressors=numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE),
        fill_value=np.nan,
    )
    b[:6] = RNG.standard_normal((6, 10)).astype("f4")  # rows 6.. never written: missing chunks
    c = g.create_array(
        "gzip_u1", shape=(20,), chunks=(6,), dtype="u1", compressors=numcodecs.GZip(5)
    )
    c[:] = np.arange(20, dtype="u1")
    d = g.create_array(
        "nested_sep",
        shape=(4, 4),
        chunks=(2, 2),
        dtype="f8",
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    d[:] = RNG.standard_normal((4, 4))
    s = g.create_array("strings", shape=(5,), chunks=(2,), dtype=str)
    s[:] = np.array(["a", "bb", "", "dddd", "é"])
    sub = g.create_group("sub")
    sub.attrs["level"] = 2
    e = sub.create_array(
        "z", shape=(6,), chunks=(4,), dtype="i8", compressors=numcodecs.Zstd(level=2)
    )
    e[:] = np.arange(6) * 10**12
    z = g.create_array("scalar", shape=(), dtype="f4", compressors=None)
    z[...] = 2.5
    return path


def _write_v3(path: Path) -> Path:
    g = zarr.open_group(path, mode="w", zarr_format=3)
    g.attrs["title"] = "v3 store"
    a = g.create_array(
        "sharded",
        shape=(10, 12),
        chunks=(2, 3),
        shards=(4, 6),
        dtype="f4",
        dimension_names=["y", "x"],
    )
    a[:] = RNG.standard_normal((10, 12)).astype("f4")
    b = g.create_array(
        "bigendian",
        shape=(7,),
        chunks=(3,),
        dtype=">i2",
        serializer=zarr.codecs.BytesCodec(endian="big"),
        compressors=zarr.codecs.ZstdCodec(level=1),
    )
    b[:] = np.arange(7, dtype="i2")
    c = g.create_array("sparse", shape=(100,), chunks=(10,), dtype="i4", fill_value=-1)
    c[35:45] = 5
    d = g.create_array(
        "dotkeys",
        shape=(4, 4),
        chunks=(2, 2),
        dtype="u2",
        chunk_key_encoding={"name": "default", "separator": "."},
    )
    d[:] = np.arange(16, dtype="u2").reshape(4, 4)
    grp = g.create_group("grp")
    grp.attrs["x"] = [1, 2]
    e = grp.create_array("inner", shape=(3, 3), chunks=(3, 3), dtype="f8")
    e[:] = np.eye(3)
    return path


def test_zarr_v2_store(tmp_path: Path) -> None:
    path = _write_v2(tmp_path / "v2.zarr")
    assert detect_format(path.as_uri()) == "zarr"
    tables = scan_zarr(str(path))
    assert_same_arrays(path, tables, tmp_path)
    arrays = {r["array"]: r for r in tables.arrays.to_pylist()}
    assert arrays["zlib_delta_f"]["dims"] == ["y", "x"]
    codecs = json.loads(arrays["zlib_delta_f"]["codecs"])
    assert [c["name"] for c in codecs] == [
        "transpose",
        "numcodecs.delta",
        "bytes",
        "numcodecs.zlib",
    ]
    assert codecs[2]["configuration"]["endian"] == "big"
    assert json.loads(arrays["strings"]["codecs"])[0]["name"] == "vlen-utf8"
    # one sources row per chunk object, each referenced whole
    n_chunks = tables.chunks.num_rows
    assert tables.sources.num_rows == n_chunks
    assert pc.all(pc.equal(tables.chunks["offset"], 0)).as_py()
    assert tables.chunks["length"].equals(tables.sources["size"])
    # never-written chunks have no row
    blosc = tables.chunks.filter(pc.equal(tables.chunks["array"], "blosc_f4"))
    assert blosc.num_rows == 2 * 3  # rows 0-5 -> chunk rows 0,1 (of 4) x 3 chunk columns
    groups = {r["group"]: json.loads(r["attrs"]) for r in tables.groups.to_pylist()}
    assert groups[""] == {"title": "v2 store"} and groups["sub"] == {"level": 2}


def test_zarr_v2_consolidated(tmp_path: Path) -> None:
    path = _write_v2(tmp_path / "c.zarr")
    zarr.consolidate_metadata(path, zarr_format=2)
    assert_same_arrays(path, scan_zarr(str(path)), tmp_path)


def test_zarr_v3_store_with_shards(tmp_path: Path) -> None:
    path = _write_v3(tmp_path / "v3.zarr")
    tables = scan_zarr(path.as_uri())
    assert_same_arrays(path, tables, tmp_path)
    arrays = {r["array"]: r for r in tables.arrays.to_pylist()}
    assert arrays["sharded"]["chunk_shape"] == [4, 6]  # shards are the referenced chunks
    assert json.loads(arrays["sharded"]["codecs"])[0]["name"] == "sharding_indexed"
    sparse = tables.chunks.filter(pc.equal(tables.chunks["array"], "sparse"))
    assert sorted(i[0] for i in sparse["index"].to_pylist()) == [3, 4]


def test_zarr_root_array(tmp_path: Path) -> None:
    path = tmp_path / "root.zarr"
    a = zarr.create_array(path, shape=(5, 5), chunks=(2, 2), dtype="i2", zarr_format=2)
    a[:] = np.arange(25).reshape(5, 5)
    tables = scan_zarr(str(path))
    assert tables.arrays["array"].to_pylist() == ["data"]
    out = zarr.open_array(materialise(tables, tmp_path / "o.zarr") / "data", mode="r")
    np.testing.assert_array_equal(out[...], a[...])


def test_stale_chunks_beyond_grid_ignored(tmp_path: Path) -> None:
    path = tmp_path / "resized.zarr"
    a = zarr.create_array(path, shape=(10,), chunks=(2,), dtype="i4", zarr_format=3)
    a[:] = np.arange(10)
    a.resize((5,))
    tables = scan_zarr(str(path))
    assert sorted(i[0] for i in tables.chunks["index"].to_pylist()) == [0, 1, 2]


def test_missing_and_garbled_stores(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        scan_zarr(str(tmp_path / "nope.zarr"))
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{not json")
    with pytest.raises(CorruptSourceError, match=r"bad\.zarr"):
        scan_zarr(str(bad))


def test_s3_store_listing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same store on S3 (moto): one bulk listing gives the same chunk objects."""
    try:
        s3 = request.getfixturevalue("s3")  # tests/s3_server.py, registered by conftest
    except pytest.FixtureLookupError:
        pytest.skip("the s3 fixture (tests/s3_server.py) is not registered")
    path = _write_v3(tmp_path / "v3.zarr")
    local = scan_zarr(str(path))
    keys = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    for key in keys:
        s3.client.upload_file(str(path / key), s3.bucket, f"stores/v3.zarr/{key}")
    uri = s3.url("stores/v3.zarr")
    tables = scan_zarr(uri, storage_options=s3.storage_options)
    assert tables.chunks.num_rows == local.chunks.num_rows
    assert all(u.startswith(uri + "/") for u in tables.sources["uri"].to_pylist())
    assert all(tables.sources["etag"].to_pylist())
    key = lambda t: sorted(  # noqa: E731
        zip(
            t.chunks["array"].to_pylist(),
            map(tuple, t.chunks["index"].to_pylist()),
            t.chunks["length"].to_pylist(),
            strict=True,
        )
    )
    assert key(tables) == key(local)


def test_s3_store_not_named_zarr(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A Zarr store under an S3 prefix without the ``.zarr`` suffix is found by its listing
    (s3fs answers for the prefix with an empty directory entry, not an error)."""
    try:
        s3 = request.getfixturevalue("s3")
    except pytest.FixtureLookupError:
        pytest.skip("the s3 fixture (tests/s3_server.py) is not registered")
    path = _write_v3(tmp_path / "v3.zarr")
    for p in path.rglob("*"):
        if p.is_file():
            s3.client.upload_file(
                str(p), s3.bucket, f"plain/store/{p.relative_to(path).as_posix()}"
            )
    m = vzsql.scan(s3.url("plain/store"), storage_options=s3.storage_options)
    assert m.tables.chunks.num_rows == scan_zarr(str(path)).chunks.num_rows
    assert set(m.table("sources")["format"].to_pylist()) == {"zarr"}
