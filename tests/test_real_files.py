"""Real files written by other people's software (the iris-sample-data package on PyPI).

For every netCDF file it ships (netCDF4/HDF5 and netCDF3), ``vzsql.scan(f).to_xarray()``
must be identical to ``xarray.open_dataset(f)``: values, masks, dtypes, coordinates and
attributes. Its GRIB2 file must equal cfgrib's reading.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

import vzsql

iris_sample_data = pytest.importorskip("iris_sample_data")
SAMPLES = Path(iris_sample_data.__file__).parent / "sample_data"
NC_FILES = sorted(SAMPLES.rglob("*.nc"))


def test_the_package_ships_both_netcdf_flavours():
    magics = {p.read_bytes()[:4] for p in NC_FILES}
    assert b"\x89HDF" in magics and any(m.startswith(b"CDF") for m in magics)
    assert len(NC_FILES) >= 10


@pytest.mark.parametrize("path", NC_FILES, ids=lambda p: p.name)
def test_netcdf_sample_equals_xarray(path: Path):
    expected = xr.open_dataset(path).load()
    got = vzsql.scan(path).to_xarray().load()
    xr.testing.assert_identical(got, expected)
    for name, var in expected.variables.items():
        assert got[name].dtype == var.dtype, name


def test_grib2_sample_equals_cfgrib():
    pytest.importorskip("cfgrib")
    path = SAMPLES / "polar_stereo.grib2"
    expected = xr.open_dataset(path, engine="cfgrib", indexpath="").load()
    got = vzsql.scan(path).to_xarray().load()
    expected.attrs.pop("history", None)  # cfgrib stamps the time of reading
    xr.testing.assert_identical(got, expected)


def test_saved_manifest_of_a_sample_opens_with_the_xarray_engine(tmp_path):
    path = SAMPLES / "A1B_north_america.nc"
    vzsql.scan(path).save(tmp_path / "a1b.vzm")
    got = xr.open_dataset(tmp_path / "a1b.vzm", engine="vzsql").load()
    xr.testing.assert_identical(got, xr.open_dataset(path).load())
