"""netCDF classic scanner: vzsql's manifest reads the same values as netCDF4/xarray/scipy.

The manifest is materialised into a real Zarr v3 folder (zarr.json documents from
``vzsql.zarr_meta.hierarchy`` and each chunk's bytes copied from the file at offset/length),
then opened with zarr (raw values) and xarray (CF-decoded values) and compared with the
reference readers on the original file.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xarray as xr
import zarr
from fixtures_netcdf3 import (
    NETCDF4_FORMATS,
    materialise,
    write_mixed,
    write_one_record_var,
    write_scipy,
    write_scipy_one_record,
)

from vzsql.errors import CorruptSourceError, VzsqlError
from vzsql.scanners import detect_format
from vzsql.scanners.netcdf3 import scan_netcdf3
from vzsql.scanners.netcdf3_header import read_header
from vzsql.tables import Tables


def attr_value(value: Any, dtype: str | None) -> Any:
    """An attribute from the manifest JSON, with its recorded numpy dtype restored."""
    if dtype is None:
        return value
    arr = np.asarray(value, dtype=np.float64 if "f" in dtype else None).astype(dtype)
    return arr if arr.ndim else arr[()]


def assert_raw_equal(path: Path, tables: Tables, store: Path) -> None:
    """Every variable's raw (undecoded) values, dtype and attributes equal netCDF4's."""
    group = zarr.open_group(store, mode="r", zarr_format=3)
    arrays = {r["array"]: r for r in tables.arrays.to_pylist()}
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        ds.set_auto_chartostring(False)
        assert set(arrays) == set(ds.variables)
        for name, var in ds.variables.items():
            expected = var[...]
            # zarr returns a 0-d bytes value as a numpy scalar, which drops an empty S1's width
            got = np.asarray(group[name][...], dtype=group[name].dtype)
            assert got.dtype == expected.dtype.newbyteorder("="), name
            assert got.shape == expected.shape, name
            np.testing.assert_array_equal(got, expected, err_msg=name)
            assert list(arrays[name]["dims"]) == list(var.dimensions)
            attrs = json.loads(arrays[name]["attrs"])
            dtypes = json.loads(arrays[name]["attr_dtypes"])
            assert set(attrs) == set(var.ncattrs()), name
            for key in var.ncattrs():
                ref = var.getncattr(key)
                mine = attr_value(attrs[key], dtypes.get(key))
                if isinstance(ref, str | bytes):
                    assert mine == ref, (name, key)
                else:
                    assert np.asarray(mine).dtype == np.asarray(ref).dtype.newbyteorder("=")
                    np.testing.assert_array_equal(mine, ref)
        gattrs = json.loads(tables.groups["attrs"][0].as_py())
        assert set(gattrs) == set(ds.ncattrs())


def open_manifest_xarray(tables: Tables, store: Path) -> xr.Dataset:
    """The manifest as a decoded Dataset: through vzsql's store when it exists, else zarr."""
    try:
        from vzsql.manifest import Manifest

        return Manifest(tables).to_xarray()
    except ImportError:
        pass
    # zarr values + attributes with their recorded dtypes (float32 scale_factor...), CF-decoded
    group = zarr.open_group(store, mode="r", zarr_format=3)
    variables = {}
    for row in tables.arrays.to_pylist():
        attrs = json.loads(row["attrs"] or "{}")
        for key, dt in json.loads(row["attr_dtypes"] or "{}").items():
            attrs[key] = attr_value(attrs[key], dt)
        variables[row["array"]] = xr.Variable(row["dims"], group[row["array"]][...], attrs)
    return xr.decode_cf(xr.Dataset(variables))


def assert_decoded_equal(path: Path, tables: Tables, store: Path, engine: str) -> None:
    """CF-decoded values (masks, scale/offset, char arrays joined) equal xr.open_dataset's."""
    with xr.open_dataset(path, engine=engine) as ref:
        got = open_manifest_xarray(tables, store).load()
        assert set(got.data_vars) | set(got.coords) == set(ref.data_vars) | set(ref.coords)
        for name in ref.variables:
            r, g = ref[name], got[name]
            assert r.dims == g.dims, name
            if r.dtype.kind in "SUO":
                assert r.values.tolist() == g.values.tolist(), name
            else:
                np.testing.assert_array_equal(g.values, r.values, err_msg=name)


def chunks_of(tables: Tables, name: str) -> pa.Table:
    return tables.chunks.filter(pc.equal(tables.chunks["array"], name))


def scan_and_check(path: Path, tmp_path: Path, engine: str = "netcdf4") -> Tables:
    tables = scan_netcdf3(str(path))
    store = materialise(tables, tmp_path / "materialised.zarr")
    assert_raw_equal(path, tables, store)
    assert_decoded_equal(path, tables, store, engine)
    return tables


@pytest.mark.parametrize("fmt", NETCDF4_FORMATS)
def test_mixed_variables_all_formats(tmp_path: Path, fmt: str) -> None:
    path = write_mixed(tmp_path / "mixed.nc", fmt)
    assert detect_format(path.as_uri()) == "netcdf3"
    tables = scan_and_check(path, tmp_path)
    arrays = {r["array"]: r for r in tables.arrays.to_pylist()}
    # _FillValue wins; otherwise netCDF-C's default fill, which the partly written array shows
    assert json.loads(arrays["packed"]["fill_value"]) == -999
    assert json.loads(arrays["partial"]["fill_value"]) == pytest.approx(9.969209968386869e36)
    assert json.loads(arrays["packed"]["attr_dtypes"])["scale_factor"] == "<f4"
    # one chunk per record along time, one chunk for fixed variables
    n = chunks_of(tables, "rec_f4").num_rows
    assert n == 5
    assert chunks_of(tables, "fixed_f4").num_rows == 1
    assert tables.sources["format"].to_pylist() == ["netcdf3"]


@pytest.mark.parametrize("fmt", NETCDF4_FORMATS)
def test_zero_records(tmp_path: Path, fmt: str) -> None:
    path = write_mixed(tmp_path / "empty.nc", fmt, nrec=0)
    tables = scan_netcdf3(str(path))
    arrays = {r["array"]: r for r in tables.arrays.to_pylist()}
    assert arrays["rec_f8"]["shape"] == [0, 3, 5]
    assert chunks_of(tables, "rec_f8").num_rows == 0
    store = materialise(tables, tmp_path / "m.zarr")
    assert_raw_equal(path, tables, store)


@pytest.mark.parametrize("dtype", ["i1", "S1", "i2", "f4"])
@pytest.mark.parametrize("fmt", NETCDF4_FORMATS)
def test_single_record_variable_is_packed(tmp_path: Path, fmt: str, dtype: str) -> None:
    path = write_one_record_var(tmp_path / "one.nc", fmt, dtype)
    tables = scan_and_check(path, tmp_path)
    rows = chunks_of(tables, "v").to_pylist()
    step = np.diff([r["offset"] for r in rows])
    assert set(step.tolist()) == {3 * np.dtype(dtype).itemsize}  # no padding between records


@pytest.mark.parametrize("version", [1, 2])
def test_scipy_written_files(tmp_path: Path, version: int) -> None:
    scan_and_check(write_scipy(tmp_path / "s.nc", version), tmp_path, engine="scipy")


def test_scipy_single_record_variable(tmp_path: Path) -> None:
    scan_and_check(write_scipy_one_record(tmp_path / "s1.nc"), tmp_path, engine="scipy")


def test_streaming_numrecs_is_computed_from_file_size(tmp_path: Path) -> None:
    path = write_mixed(tmp_path / "stream.nc", "NETCDF3_64BIT_OFFSET", nrec=4)
    expected = scan_netcdf3(str(path))
    raw = bytearray(path.read_bytes())
    raw[4:8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    got = scan_netcdf3(str(path))
    assert got.chunks.equals(expected.chunks)
    assert got.arrays.column("shape").equals(expected.arrays.column("shape"))


def _installed_netcdf3_files() -> list[Path]:
    site = Path(np.__file__).parents[1]
    found = []
    for root, _dirs, files in os.walk(site):
        for name in files:
            if name.endswith((".nc", ".cdf")):
                p = Path(root) / name
                with open(p, "rb") as f:
                    head = f.read(4)
                if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
                    found.append(p)
    return sorted(found)


def test_netcdf3_files_shipped_in_installed_packages(tmp_path: Path) -> None:
    files = _installed_netcdf3_files()
    assert files, "scipy ships netCDF3 test files; none found"
    checked = 0
    for path in files:
        try:
            with netCDF4.Dataset(path):
                pass
        except OSError:
            # deliberately broken files in test suites: vzsql must refuse them with a typed error
            with pytest.raises(VzsqlError):
                scan_netcdf3(str(path))
            continue
        dest = tmp_path / f"{checked}.zarr"
        tables = scan_netcdf3(str(path))
        assert_raw_equal(path, tables, materialise(tables, dest))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # xarray: "multiple fill values" in scipy's sample
            assert_decoded_equal(path, tables, dest, "netcdf4")
        shutil.rmtree(dest)
        checked += 1
    assert checked >= 3


# -- bad input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_mixed(tmp_path_factory.mktemp("nc3") / "good.nc", "NETCDF3_64BIT_OFFSET", 3)
    return path.read_bytes()


def _header_size(raw: bytes, tmp: Path) -> int:
    (tmp / "h.nc").write_bytes(raw)
    with open(tmp / "h.nc", "rb") as f:
        return read_header(f, "h.nc", len(raw)).header_size


def test_truncated_files_raise_corrupt_source(tmp_path: Path, good_file: bytes) -> None:
    hsize = _header_size(good_file, tmp_path)
    cuts = [0, 3, 4, 7, 20, hsize // 3, hsize // 2, hsize - 1, hsize + 10, len(good_file) - 1]
    for cut in cuts:
        path = tmp_path / f"cut{cut}.nc"
        path.write_bytes(good_file[:cut])
        with pytest.raises(CorruptSourceError) as info:
            scan_netcdf3(str(path))
        assert str(path) in str(info.value)
    # a cut inside the data names the variable whose bytes are missing
    path = tmp_path / "cutdata.nc"
    path.write_bytes(good_file[: len(good_file) - 1])
    with pytest.raises(CorruptSourceError) as info:
        scan_netcdf3(str(path))
    assert info.value.array is not None


def test_bad_magic_and_junk(tmp_path: Path, good_file: bytes) -> None:
    for name, raw in {
        "magic.nc": b"CDX" + good_file[3:],
        "version.nc": b"CDF\x03" + good_file[4:],
        "junk.nc": np.random.default_rng(0).bytes(5000),
        "empty.nc": b"",
    }.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(CorruptSourceError, match=name):
            scan_netcdf3(str(tmp_path / name))


def test_header_bit_flips_never_crash(tmp_path: Path, good_file: bytes) -> None:
    """Flipping any single header bit gives a typed error or a manifest, never another exception."""
    hsize = _header_size(good_file, tmp_path)
    rng = np.random.default_rng(1)
    positions = rng.choice(hsize * 8, size=300, replace=False)
    errors = 0
    path = tmp_path / "flip.nc"
    for bit in positions:
        raw = bytearray(good_file)
        raw[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(raw))
        try:
            tables = scan_netcdf3(str(path))
        except CorruptSourceError as e:
            assert str(path) in str(e)
            errors += 1
            continue
        # whatever survived must still be a consistent manifest within the file
        ends = np.asarray(tables.chunks["offset"]) + np.asarray(tables.chunks["length"])
        assert (ends <= len(raw)).all()
    assert errors > 50
