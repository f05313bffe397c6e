"""The HDF5/netCDF-4 scanner: chunk references, codecs, dims, attributes and errors.

Every fixture is a real file written by netCDF4 or h5py; values are checked by serving the
scanned tables through zarr and comparing with h5py's (and xarray's) reading of the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fixtures_hdf5 as fx
import h5py
import numpy as np
import pyarrow.compute as pc
import pytest

import vzsql
from vzsql.errors import (
    CorruptSourceError,
    SourceError,
    UnsupportedDtypeError,
    UnsupportedFilterError,
    UnsupportedFormatError,
    UnsupportedLayoutError,
)
from vzsql.scanners.hdf5 import scan_hdf5
from vzsql.tables import Tables

VALUE_FIXTURES: list[Callable[[Path], Path]] = [
    fx.write_nc_basic,
    fx.write_nc_compression,
    fx.write_h5_layouts,
    fx.write_h5_filters,
    fx.write_h5_filter_mask,
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hdf5")
    return {w.__name__: w(folder) for w in VALUE_FIXTURES}


@pytest.fixture(scope="module")
def scans(files: dict[str, Path]) -> dict[str, Tables]:
    return {name: scan_hdf5(str(path)) for name, path in files.items()}


def rows(tables: Tables, name: str) -> dict[str, dict[str, Any]]:
    return {r["array"]: r for r in tables.arrays.to_pylist()} if name == "arrays" else {}


@pytest.mark.parametrize("writer", [w.__name__ for w in VALUE_FIXTURES])
def test_values_equal_h5py(writer: str, files: dict[str, Path], scans: dict[str, Tables]) -> None:
    checked = fx.assert_matches_h5py(scans[writer], files[writer])
    assert len(checked) == scans[writer].arrays.num_rows > 0


@pytest.mark.parametrize("writer", ["write_nc_basic", "write_h5_filters", "write_h5_layouts"])
def test_chunk_refs_equal_get_chunk_info(
    writer: str, files: dict[str, Path], scans: dict[str, Tables]
) -> None:
    chunks = scans[writer].chunks.filter(scans[writer].chunks["source_id"].is_valid())
    got = {(r["array"], tuple(r["index"])): (r["offset"], r["length"]) for r in chunks.to_pylist()}
    expected = {}
    skipped: set[tuple[str, tuple[int, ...]]] = set()
    with h5py.File(files[writer], "r") as f:
        for name in scans[writer].arrays["array"].to_pylist():
            d = f[name]
            if d.chunks is None:
                if d.id.get_offset() is not None and d.dtype.kind != "O":
                    expected[(name, (0,) * d.ndim)] = (d.id.get_offset(), d.id.get_storage_size())
                continue
            for i in range(d.id.get_num_chunks()):
                info = d.id.get_chunk_info(i)
                idx = tuple(o // c for o, c in zip(info.chunk_offset, d.chunks, strict=True))
                if info.filter_mask == 0:
                    expected[(name, idx)] = (info.byte_offset, info.size)
                else:  # an optional filter was skipped (e.g. LZF did not shrink it)
                    skipped.add((name, idx))
    assert got == expected
    inline = scans[writer].chunks.filter(scans[writer].chunks["data"].is_valid()).to_pylist()
    assert skipped <= {(r["array"], tuple(r["index"])) for r in inline}


def test_codecs_follow_the_filter_pipeline(
    scans: dict[str, Tables], files: dict[str, Path]
) -> None:
    with h5py.File(files["write_nc_basic"], "r") as f:
        dcpl = f["temp"].id.get_create_plist()
        assert [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())] == [3, 2, 1]
    arrays = rows(scans["write_nc_basic"], "arrays")
    temp = json.loads(arrays["temp"]["codecs"])
    # netCDF-C puts fletcher32 first in the pipeline: codecs follow HDF5's order exactly
    assert [c["name"] for c in temp] == [
        "bytes",
        "numcodecs.fletcher32",
        "numcodecs.shuffle",
        "numcodecs.zlib",
    ]
    assert temp[0]["configuration"] == {"endian": "little"}
    assert temp[2]["configuration"] == {"elementsize": 4}
    assert json.loads(arrays["bigend"]["codecs"])[0]["configuration"] == {"endian": "big"}
    assert arrays["contig"]["codecs"] == '[{"name":"bytes","configuration":{"endian":"little"}}]'
    filters = rows(scans["write_h5_filters"], "arrays")
    names = {a: [c["name"] for c in json.loads(r["codecs"])][1:] for a, r in filters.items()}
    assert names["lzf"] == ["vzsql.hdf5_lzf"]
    assert names["lz4"] == ["vzsql.hdf5_lz4"]
    assert names["szip"] == ["vzsql.hdf5_szip"]
    assert names["zstd"] == ["zstd"]
    assert names["bzip2"] == ["numcodecs.bz2"]
    assert names["blosc"] == ["blosc"]
    blosc = json.loads(filters["blosc"]["codecs"])[1]["configuration"]
    assert blosc["cname"] == "zstd" and blosc["shuffle"] == "bitshuffle"


def test_dtypes_fill_values_and_layouts(scans: dict[str, Tables], files: dict[str, Path]) -> None:
    t = scans["write_nc_basic"]
    arrays = rows(t, "arrays")
    assert arrays["names"]["dtype"] == (
        '{"configuration": {"length_bytes": 1}, "name": "null_terminated_bytes"}'
    )
    assert arrays["labels"]["dtype"] == "string"
    assert json.loads(arrays["labels"]["codecs"]) == [{"name": "vlen-utf8", "configuration": {}}]
    # HDF5 fill value in the column; CF _FillValue stays an attribute
    assert arrays["packed"]["fill_value"] == "-32767"
    packed_attrs = json.loads(arrays["packed"]["attrs"])
    assert packed_attrs["_FillValue"] == -32767
    assert packed_attrs["scale_factor"] == pytest.approx(0.01)
    assert json.loads(arrays["packed"]["attr_dtypes"])["scale_factor"] == "<f4"
    assert arrays["temp"]["fill_value"] == "-999.0"
    # never-written contiguous variable: no chunk row (fill value)
    by_array = t.chunks.group_by("array").aggregate([("array", "count")]).to_pylist()
    counts = {r["array"]: r["array_count"] for r in by_array}
    assert "unwritten" not in counts
    assert counts["labels"] == 1
    assert counts["temp"] == 3 * 2 * 2
    lay = rows(scans["write_h5_layouts"], "arrays")
    assert lay["chunk_gt_shape"]["chunk_shape"] == [8] and lay["chunk_gt_shape"]["shape"] == [5]
    assert lay["zero_len"]["shape"] == [0, 4]
    assert lay["scalar"]["shape"] == [] and lay["scalar"]["chunk_shape"] == []
    assert lay["flags"]["dtype"] == "bool"
    assert lay["colour"]["dtype"] == "uint8"
    assert lay["unallocated"]["fill_value"] == "-1.5"
    assert lay["fill_chunked"]["fill_value"] == "9"
    lay_chunks = scans["write_h5_layouts"].chunks
    inline = lay_chunks.filter(lay_chunks["data"].is_valid())["array"].to_pylist()
    assert sorted(inline) == ["compact", "vlen_str"]
    grid = scans["write_h5_layouts"].grid
    g = grid.filter(pc.equal(grid["array"], "chunk_gt_shape")).to_pylist()
    assert [(r["start"], r["length"]) for r in g] == [(0, 5)]
    assert grid.filter(pc.equal(grid["array"], "scalar")).num_rows == 0


def test_dims_groups_and_attributes(scans: dict[str, Tables]) -> None:
    t = scans["write_nc_basic"]
    arrays = rows(t, "arrays")
    assert arrays["temp"]["dims"] == ["time", "lat", "lon"]
    assert arrays["time"]["dims"] == ["time"]  # coordinate variables name their own axis
    assert arrays["grp/depth"]["dims"] == ["depth"]
    assert arrays["names"]["dims"] == ["station", "strlen"]
    assert arrays["grp/salinity"]["dims"] == ["time", "depth", "lat"]
    assert "station" not in arrays and "strlen" not in arrays  # dimension-only datasets
    assert sorted(t.groups["group"].to_pylist()) == ["", "grp", "grp/sub"]
    root = json.loads(t.groups.filter(pc.equal(t.groups["group"], ""))["attrs"][0].as_py())
    assert root["title"] == "vzsql fixture"
    assert root["missing"] == "NaN"
    assert root["levels"] == [1, 2, 3]
    assert not {"_NCProperties", "_Netcdf4Dimid", "DIMENSION_LIST"} & set(root)
    assert "DIMENSION_LIST" not in json.loads(arrays["temp"]["attrs"])
    assert "CLASS" not in json.loads(arrays["lat"]["attrs"])
    root_dtypes = json.loads(
        t.groups.filter(pc.equal(t.groups["group"], ""))["attr_dtypes"][0].as_py()
    )
    assert root_dtypes == {"version": "<f4", "levels": "<i4", "missing": "<f8"}
    lay = rows(scans["write_h5_layouts"], "arrays")
    square = lay["square"]["dims"]
    assert len(set(square)) == 2 and all(d.startswith("phony_dim_") for d in square)
    assert lay["nested/deeper/v"]["dims"][0].startswith("phony_dim_")
    assert "nested/deeper" in scans["write_h5_layouts"].groups["group"].to_pylist()


def test_filter_mask_chunks_are_reencoded_inline(scans: dict[str, Tables]) -> None:
    chunks = scans["write_h5_filter_mask"].chunks.to_pylist()
    inline = sorted(tuple(r["index"]) for r in chunks if r["data"] is not None)
    assert inline == [(0, 0), (2, 1)]
    assert all(r["source_id"] == 0 for r in chunks if r["data"] is None)


def test_external_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fx.write_h5_external(tmp_path)
    monkeypatch.chdir(tmp_path)  # h5py resolves relative external names from the cwd
    t = scan_hdf5(str(path))
    fx.assert_matches_h5py(t, path)
    fmt = dict(zip(t.sources["uri"].to_pylist(), t.sources["format"].to_pylist(), strict=True))
    assert fmt[path.resolve().as_uri()] == "hdf5"
    assert sorted(u.rsplit("/", 1)[1] for u, f in fmt.items() if f == "raw") == [
        "ext_a.bin",
        "ext_b.bin",
        "ext_c.bin",
        "ext_one.bin",
    ]
    with pytest.raises(UnsupportedLayoutError, match="whole rows") as e:
        scan_hdf5(str(fx.write_h5_external_unaligned(tmp_path)))
    assert e.value.array == "bad"


def test_unsupported_inputs_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedLayoutError, match="virtual") as e:
        scan_hdf5(str(fx.write_h5_virtual(tmp_path)))
    assert e.value.array == "vds" and "virtual.h5" in str(e.value)
    with pytest.raises(UnsupportedFilterError) as f:
        scan_hdf5(str(fx.write_h5_scaleoffset(tmp_path)))
    assert f.value.filter_id == 6 and f.value.array == "so"
    with pytest.raises(UnsupportedDtypeError, match="compound"):
        scan_hdf5(str(fx.write_h5_compound(tmp_path)))


def test_corrupt_foreign_and_missing_files(tmp_path: Path) -> None:
    good = fx.write_nc_basic(tmp_path)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptSourceError, match=r"truncated\.nc"):
        scan_hdf5(str(truncated))
    damaged = tmp_path / "damaged.nc"
    damaged.write_bytes(data[:8] + b"\xff" * 200 + data[208:])
    with pytest.raises(CorruptSourceError, match=r"damaged\.nc"):
        scan_hdf5(str(damaged))
    foreign = tmp_path / "foreign.nc"
    foreign.write_bytes(b"just some text, not HDF5\n" * 10)
    with pytest.raises(UnsupportedFormatError, match=r"foreign\.nc"):
        scan_hdf5(str(foreign))
    with pytest.raises(SourceError, match=r"missing\.nc"):
        scan_hdf5(str(tmp_path / "missing.nc"))


def test_scan_dispatches_to_hdf5(files: dict[str, Path]) -> None:
    m = vzsql.scan(files["write_nc_basic"])
    src = m.table("sources").to_pylist()
    assert src[0]["format"] == "hdf5"
    st = os.stat(files["write_nc_basic"])
    assert src[0]["size"] == st.st_size and src[0]["mtime"] == st.st_mtime_ns
    assert src[0]["etag"] is not None


def test_codecs_found_by_zarr_without_importing_vzsql() -> None:
    code = (
        "import sys; from zarr.registry import get_codec_class\n"
        "names = ['vzsql.hdf5_lz4', 'vzsql.hdf5_lzf', 'vzsql.hdf5_szip']\n"
        "print([get_codec_class(n).__module__ for n in names]); "
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(["vzsql.codecs.hdf5"] * 3)


def _installed_hdf5_files() -> list[Path]:
    import site

    roots = [Path(p) for p in site.getsitepackages()]
    found = []
    for root in roots:
        for pattern in ("*.nc", "*.h5", "*.hdf5", "*.nc4", "*.he5"):
            for p in root.rglob(pattern):
                with open(p, "rb") as fh:
                    if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                        found.append(p)
    return sorted(found)


@pytest.mark.parametrize("path", _installed_hdf5_files(), ids=lambda p: p.name)
def test_real_files_from_installed_packages(path: Path) -> None:
    try:
        t = scan_hdf5(str(path))
    except UnsupportedDtypeError as e:  # e.g. h5py's compound test data: a clear error
        assert path.name in str(e)
        return
    assert fx.assert_matches_h5py(t, path)


XARRAY_CASES = [
    ("write_nc_basic", None),
    ("write_nc_basic", "grp"),
    ("write_nc_basic", "grp/sub"),
    ("write_nc_compression", None),
    ("write_h5_filters", None),
    ("write_h5_filter_mask", None),
    ("write_h5_layouts", None),
]


@pytest.mark.parametrize(("writer", "group"), XARRAY_CASES)
def test_to_xarray_equals_open_dataset(
    writer: str, group: str | None, files: dict[str, Path]
) -> None:
    pytest.importorskip("vzsql.xarray_backend")
    import xarray as xr

    path = files[writer]
    netcdf = writer.startswith("write_nc")
    ours = vzsql.scan(path).to_xarray(group=group)
    kwargs: dict[str, Any] = {} if netcdf else {"engine": "h5netcdf", "phony_dims": "sort"}
    with xr.open_dataset(path, group=group, **kwargs) as ref:
        assert set(ours.variables) == set(ref.variables)
        for name, var in ref.variables.items():
            got = ours[name]
            assert got.dtype == var.dtype, name
            if netcdf:
                assert got.dims == var.dims, name
            np.testing.assert_array_equal(got.values, var.values, err_msg=name)
        if netcdf:
            assert set(ours.attrs) == set(ref.attrs)


def test_remote_file_scans_like_local(
    request: pytest.FixtureRequest, files: dict[str, Path], scans: dict[str, Tables]
) -> None:
    try:
        s3 = request.getfixturevalue("s3")
    except pytest.FixtureLookupError:
        pytest.skip("no local S3 server fixture")
    path = files["write_nc_basic"]
    uri = s3.upload(path)
    remote = scan_hdf5(uri, storage_options=s3.storage_options)
    src = remote.sources.to_pylist()[0]
    assert src["uri"] == uri and src["format"] == "hdf5"
    assert src["size"] == path.stat().st_size and src["etag"]
    local = scans["write_nc_basic"]
    for name in ("arrays", "grid"):
        assert getattr(remote, name).equals(getattr(local, name))
    cols = ["array", "index", "offset", "length", "data"]
    assert remote.chunks.select(cols).equals(local.chunks.select(cols))


def test_external_storage_to_xarray_equals_h5netcdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Datasets in external raw files read back through the store like h5netcdf reads them."""
    import xarray as xr

    from tests.fixtures_hdf5 import write_h5_external

    path = write_h5_external(tmp_path)
    monkeypatch.chdir(tmp_path)  # HDF5 resolves relative external names from the cwd
    ours = vzsql.scan(path).to_xarray()
    with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort") as ref:
        assert set(ours.variables) == set(ref.variables)
        for name, var in ref.variables.items():
            assert ours[name].dtype == var.dtype, name
            np.testing.assert_array_equal(ours[name].values, var.values, err_msg=name)


def test_typed_errors_arrive_whole_from_isolated_scans(tmp_path: Path) -> None:
    """A scan in a child process raises the scanner's own error: class, file, array and
    extras (``filter_id``) as an in-process scan does, and it pickles whole."""
    import pickle

    import vzsql

    path = fx.write_h5_scaleoffset(tmp_path)
    with pytest.raises(UnsupportedFilterError) as direct:
        vzsql.scan(str(path), isolate=False)
    with pytest.raises(UnsupportedFilterError) as isolated:
        vzsql.scan(str(path), isolate=True)
    for e in (isolated.value, pickle.loads(pickle.dumps(direct.value))):
        assert str(e) == str(direct.value)
        assert (e.filter_id, e.array, e.source, e.detail) == (
            direct.value.filter_id,
            direct.value.array,
            direct.value.source,
            direct.value.detail,
        )
