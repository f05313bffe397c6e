"""Format detection: Zarr stores by their contents (not only a ``.zarr`` suffix), kerchunk
reference sets routed to the kerchunk importer, DMR++ sidecars by their XML."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import vzsql
from vzsql.errors import UnsupportedFormatError
from vzsql.scanners import detect_format


def write_nc(path: Path) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("x", 6)
        v = ds.createVariable("v", "f4", ("x",), zlib=True)
        v[:] = np.arange(6, dtype="f4")
    return path


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_store_without_suffix_is_found_by_its_contents(
    tmp_path: Path, zarr_format: int
) -> None:
    store = tmp_path / "plain_folder"
    ds = xr.Dataset({"a": ("x", np.arange(10.0))}, coords={"x": np.arange(10)})
    ds.to_zarr(store, zarr_format=zarr_format, consolidated=zarr_format == 2)
    assert detect_format(store.as_uri()) == "zarr"
    ours = vzsql.scan(str(store)).to_xarray().load()
    xr.testing.assert_equal(ours, ds)


def test_single_zarr_array_folder(tmp_path: Path) -> None:
    arr = zarr.create_array(tmp_path / "arr", shape=(4,), chunks=(2,), dtype="i4", zarr_format=2)
    arr[:] = [1, 2, 3, 4]
    assert detect_format((tmp_path / "arr").as_uri()) == "zarr"


def test_other_folders_are_an_unsupported_format(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x.txt").write_text("hi")
    with pytest.raises(UnsupportedFormatError) as e:
        vzsql.scan(str(tmp_path / "f"))
    assert "f" in str(e.value) and "Zarr" in str(e.value)


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_kerchunk_reference_sets_are_imported_by_scan(tmp_path: Path, fmt: str) -> None:
    nc = write_nc(tmp_path / "a.nc")
    refs = tmp_path / ("refs.json" if fmt == "json" else "refs.parq")
    vzsql.scan(str(nc)).to_kerchunk(refs, format=fmt)
    assert detect_format(refs.as_uri()) == "kerchunk"
    m = vzsql.scan(str(refs))
    assert m.table("sources")["uri"].to_pylist() == [nc.as_uri()]
    np.testing.assert_array_equal(m.to_xarray()["v"].values, np.arange(6, dtype="f4"))


def test_dmrpp_sidecar_without_its_suffix(tmp_path: Path) -> None:
    from tests.test_scan_dmrpp import DIMS, write_dmrpp, write_h5

    h5 = write_h5(tmp_path / "data.h5")
    sidecar = write_dmrpp(h5, DIMS, href=h5.as_uri())
    copy = tmp_path / "sidecar.xml"
    shutil.copy(sidecar, copy)
    assert detect_format(copy.as_uri()) == "dmrpp"


def test_json_that_is_not_references_is_unsupported(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(UnsupportedFormatError):
        detect_format(p.as_uri())
